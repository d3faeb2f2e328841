"""User-facing errors.

Every error a user can cause by bad input is a :class:`FolaiError` (or subclass) whose message is
one complete sentence: what was wrong, what was expected, what to do. The CLI prints it as one line
on stderr and exits non-zero; tracebacks only with ``--debug``.
"""


class FolaiError(Exception):
    """An error caused by input or environment, shown to the user without a traceback."""


class MediaError(FolaiError):
    """A media file is missing, unreadable, truncated, or lacks the needed stream."""


class EnvelopeFormatError(FolaiError):
    """An envelope file is malformed (message names the line and the problem)."""


class WeightsUnavailableError(FolaiError):
    """Model weights are needed but cannot be found or downloaded (message says what to get)."""


class MissingDependencyError(FolaiError):
    """An optional dependency is not installed (message gives the pip extra)."""


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"this feature needs the Python package '{module}' ({e}); install it with "
            f"pip install 'folai[{extra}]'"
        ) from e
