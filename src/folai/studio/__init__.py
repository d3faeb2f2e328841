"""folai studio: a local web app to see, edit and hear the envelope before rendering.

``create_app(video=None, ...)`` builds the FastAPI app (API + the hand-made page in ``static/``);
``StudioServer`` runs it with uvicorn on a socket it binds itself (port 0 picks a free one), in the
foreground (``serve_forever``) or in a background thread (``start``/``stop``, used by the tests).
Needs the ``studio`` extra: ``pip install 'folai[studio]'``.
"""

from __future__ import annotations

from .server import StudioServer, is_loopback

__all__ = ["create_app", "StudioServer", "is_loopback"]


def create_app(*args, **kwargs):
    """See :func:`folai.studio.app.create_app`."""
    from .app import create_app as _create

    return _create(*args, **kwargs)
