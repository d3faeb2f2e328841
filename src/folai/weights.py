"""Resolve and load model weights: a local file or folder, or a Hugging Face hub id.

Every failure a user can cause (a missing file, a gated hub model without a login, no network)
becomes a :class:`~folai.errors.WeightsUnavailableError` whose message says what to download and
how, never a bare traceback. Loading is strict: a state dict must match its module key for key and
shape for shape; any key renaming is written out as an explicit table (see
``folai.synthesis.sat_keys``) and applied with :func:`remap_state_dict`.

Example::

    >>> from folai.weights import is_local_ref
    >>> is_local_ref("stabilityai/stable-audio-open-1.0"), is_local_ref("./ckpt/model.safetensors")
    (False, True)
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import FolaiError, WeightsUnavailableError

log = logging.getLogger(__name__)

__all__ = [
    "is_local_ref",
    "resolve",
    "hub_error_message",
    "load_safetensors",
    "save_safetensors",
    "load_torch_checkpoint",
    "load_state_dict_strict",
    "remap_state_dict",
    "StateDictMismatch",
    "from_pretrained_or_explain",
]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".json")


class StateDictMismatch(FolaiError):
    """A checkpoint does not match the module it is loaded into (names the keys)."""


def is_local_ref(ref: str | os.PathLike) -> bool:
    """True when ``ref`` names a local path (it exists, or looks like a path rather than ``owner/name``)."""
    s = os.fspath(ref)
    if Path(s).expanduser().exists():
        return True
    if s.startswith(("/", ".", "~")) or s.endswith(_WEIGHT_SUFFIXES) or os.sep + os.sep in s:
        return True
    return not _HUB_ID.match(s)


def hub_error_message(repo_id: str, what: str, err: BaseException | None = None, gated: bool = False) -> str:
    """One complete message for a hub model that could not be fetched: what to get and how."""
    why = f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})" if err else ""
    login = (
        f" This model is gated: accept its licence at https://huggingface.co/{repo_id} and log in with "
        "`huggingface-cli login` (or set HF_TOKEN)."
        if gated
        else " If the model is gated, accept its licence on its hub page and log in with `huggingface-cli login`."
    )
    return (
        f"the {what} weights '{repo_id}' are not available offline and could not be downloaded{why}.{login} "
        f"To work offline, download them once with `huggingface-cli download {repo_id} --local-dir DIR` "
        f"and pass DIR instead of the hub id (no local folder named '{repo_id}' exists)."
    )


def resolve(
    ref: str | os.PathLike,
    *,
    what: str = "model",
    filenames: Sequence[str] | None = None,
    allow_patterns: Sequence[str] | None = None,
    offline: bool = False,
    gated: bool = False,
) -> Path:
    """Return a local path for ``ref`` (a file, a folder, or a hub id downloaded into the HF cache).

    ``filenames``: when ``ref`` is a folder or hub id, these files must exist in it (first found is
    not returned; the folder is). ``offline``: only use the local HF cache for hub ids.
    Raises WeightsUnavailableError with download / login instructions on any failure.
    """
    s = os.fspath(ref)
    if is_local_ref(s):
        p = Path(s).expanduser()
        if not p.exists():
            raise WeightsUnavailableError(
                f"the {what} weights were not found at {p}; check the path, or pass a hub id such as owner/name"
            )
        if p.is_dir() and filenames:
            missing = [f for f in filenames if not (p / f).exists()]
            if missing:
                raise WeightsUnavailableError(
                    f"the {what} folder {p} lacks {', '.join(missing)}; expected a folder holding {', '.join(filenames)}"
                )
        return p
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub comes with diffusers/transformers
        raise WeightsUnavailableError(
            f"loading '{s}' from the hub needs the package huggingface_hub; install it with pip install 'folai[neural]'"
        ) from e
    patterns = list(allow_patterns) if allow_patterns else (list(filenames) if filenames else None)
    try:
        path = Path(snapshot_download(s, allow_patterns=patterns, local_files_only=offline))
    except Exception as e:  # huggingface_hub raises many types (gated, 401, offline, not found, OSError)
        is_gated = gated or "gated" in type(e).__name__.lower() or "401" in str(e) or "403" in str(e)
        raise WeightsUnavailableError(hub_error_message(s, what, e, gated=is_gated)) from e
    if filenames:
        missing = [f for f in filenames if not (path / f).exists()]
        if missing:
            raise WeightsUnavailableError(
                f"the hub model '{s}' has no {', '.join(missing)}; is it the right repository for the {what}?"
            )
    return path


def from_pretrained_or_explain(
    loader: Callable[..., Any], ref: str | os.PathLike, *, what: str, gated: bool = False, offline: bool = False, **kwargs: Any
) -> Any:
    """Call ``loader(ref, **kwargs)`` (a diffusers/transformers ``from_pretrained``), turning failures into
    WeightsUnavailableError with instructions."""
    s = os.fspath(ref)
    if is_local_ref(s) and not Path(s).expanduser().exists():
        raise WeightsUnavailableError(
            f"the {what} weights were not found at {s}; check the path, or pass a hub id such as owner/name"
        )
    if offline and not is_local_ref(s):
        kwargs.setdefault("local_files_only", True)
    try:
        return loader(s, **kwargs)
    except (OSError, ValueError, EnvironmentError) as e:
        if is_local_ref(s):
            raise WeightsUnavailableError(
                f"the {what} weights at {s} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                "expected a diffusers/transformers folder with its config and weights"
            ) from e
        is_gated = gated or "gated" in str(e).lower() or "401" in str(e)
        raise WeightsUnavailableError(hub_error_message(s, what, e, gated=is_gated)) from e
    except Exception as e:
        name = type(e).__name__
        if "Hub" in name or "Repository" in name or "Gated" in name or "Entry" in name or "Offline" in name:
            raise WeightsUnavailableError(hub_error_message(s, what, e, gated=gated or "Gated" in name)) from e
        raise


# ----------------------------------------------------------------------------- state dicts


def content_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, or of a folder's files (each relative name, then its bytes, in
    sorted order): what caches know a checkpoint by, whatever its name or place."""
    import hashlib

    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict:
    """Read a ``.safetensors`` file into a dict of tensors."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.exists():
        raise WeightsUnavailableError(f"weights file not found: {p}")
    try:
        return load_file(str(p), device=device)
    except Exception as e:
        raise WeightsUnavailableError(f"{p} is not a readable safetensors file ({e})") from e


def save_safetensors(state: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write tensors to ``path`` atomically (contiguous copies, shared storage broken)."""
    from safetensors.torch import save_file

    from .paths import atomic_output

    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=dict(metadata or {}))
    return Path(path)


def load_torch_checkpoint(path: str | os.PathLike, unwrap: Iterable[str] = ("state_dict", "model")) -> dict:
    """Read a torch pickle checkpoint with ``weights_only=True`` and unwrap a nested ``state_dict``.

    Checkpoints whose pickle holds arbitrary objects are refused with advice (convert to safetensors).
    """
    import torch

    p = Path(path)
    if not p.exists():
        raise WeightsUnavailableError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        return load_safetensors(p)
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailableError(
            f"{p} could not be read as a weights-only torch checkpoint ({type(e).__name__}); if you trust the file, "
            "convert it once with: python -c \"import torch, safetensors.torch as s; "
            f"d=torch.load('{p}', weights_only=False); s.save_file(d.get('state_dict', d), 'converted.safetensors')\""
        ) from e
    for key in unwrap:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise WeightsUnavailableError(f"{p} does not hold a state dict (found {type(obj).__name__})")
    return obj


def remap_state_dict(
    state: Mapping[str, Any],
    table: Mapping[str, tuple[str, Callable[[Any], Any] | None]],
    ignore: Iterable[str] = (),
    what: str = "checkpoint",
) -> dict:
    """Apply an explicit key table ``{new_key: (source_key, transform or None)}``.

    Every source key must be consumed by the table or listed in ``ignore`` (exact keys, or prefixes
    ending in '.'); every table entry must find its source. Several new keys may read one source
    (e.g. a fused qkv weight split into q, k, v). Raises StateDictMismatch naming the keys otherwise.
    """
    ignore = list(ignore)

    def ignored(k: str) -> bool:
        return any(k == i or (i.endswith(".") and k.startswith(i)) for i in ignore)

    used: set[str] = set()
    out: dict = {}
    missing = []
    for new_key, (src, fn) in table.items():
        if src not in state:
            missing.append(src)
            continue
        used.add(src)
        out[new_key] = fn(state[src]) if fn is not None else state[src]
    unexpected = sorted(k for k in state if k not in used and not ignored(k))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} expected key(s) missing (e.g. {', '.join(sorted(set(missing))[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown key(s) (e.g. {', '.join(unexpected[:4])})")
        raise StateDictMismatch(f"the {what} does not have the expected layout: " + "; ".join(parts))
    return out


def load_state_dict_strict(module: Any, state: Mapping[str, Any], what: str = "checkpoint") -> None:
    """``module.load_state_dict(state, strict=True)`` with shape checks and a readable error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:4])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) (e.g. {'; '.join(shapes[:3])})")
        raise StateDictMismatch(f"the {what} does not match the model: " + "; ".join(parts))
    module.load_state_dict(dict(state), strict=True)
