"""Shared pieces of the embedders: checkpoint resolution/loading and the embedder wrapper."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from ...errors import FolaiError, WeightsUnavailableError, require
from ...paths import atomic_output
from ..audio import resample
from ..cache import model_key

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("FOLAI_CACHE", Path.home() / ".cache" / "folai")) / "weights"


def resolve_checkpoint(source: str | os.PathLike, what: str) -> Path:
    """A local file for ``source``: an existing path, or a URL downloaded once into the cache."""
    s = str(source)
    if s.startswith(("http://", "https://")):
        name = Path(urllib.parse.urlparse(s).path).name or "checkpoint"
        dest = cache_root() / hashlib.sha256(s.encode()).hexdigest()[:12] / name
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s -> %s", s, dest)
        try:
            with atomic_output(dest) as tmp, urllib.request.urlopen(s, timeout=60) as r, open(tmp, "wb") as f:
                while True:
                    b = r.read(1 << 20)
                    if not b:
                        break
                    f.write(b)
        except OSError as e:
            raise WeightsUnavailableError(
                f"cannot download the {what} checkpoint from {s} ({e}); download it by hand and pass its path"
            ) from e
        return dest
    p = Path(s).expanduser()
    if not p.is_file():
        raise WeightsUnavailableError(f"{what} checkpoint not found: {p}; give the path of the downloaded file")
    return p


def load_state_dict(path: Path, what: str, subkey: str | None = None) -> dict:
    """State dict from .safetensors or a torch file (weights_only), optionally under ``subkey``."""
    torch = require("torch", "eval")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailableError(f"cannot read the {what} checkpoint {path}: {e}") from e
    if subkey and isinstance(sd, dict) and subkey in sd and isinstance(sd[subkey], dict):
        sd = sd[subkey]
    if not isinstance(sd, dict):
        raise WeightsUnavailableError(f"{path} is not a {what} state dict")
    return sd


def load_strict(module, sd: dict, what: str, rename: dict[str, str] | None = None, ignore=()) -> None:
    """Load ``sd`` into ``module`` strictly after an explicit renaming table; clear message on mismatch."""
    if rename:
        out = {}
        for k, v in sd.items():
            for a, b in rename.items():
                if k.startswith(a):
                    k = b + k[len(a):]
                    break
            out[k] = v
        sd = out
    sd = {k: v for k, v in sd.items() if not any(k.startswith(i) for i in ignore)}
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or bad:
        raise WeightsUnavailableError(
            f"the checkpoint does not match the {what} architecture: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shapes {bad[:5]} (is it the right file?)"
        )
    module.load_state_dict(sd, strict=True)


class AudioEmbedder:
    """Wraps an audio ``nn.Module`` that maps (B, N) waveforms at ``sample_rate`` to embeddings.

    ``embed_audio(y, sr)``: mono (N,) at rate ``sr`` -> (n, D) float32 rows (resampled first).
    Subclasses define ``_forward(wave (1, N) tensor) -> (n, D) tensor``.
    """

    name = "audio"
    sample_rate = 16000

    def __init__(self, model, device: str = "cpu", identity: str = "random"):
        self.model = model.eval().to(device)
        self.device = device
        self.key = model_key(self.name, sr=self.sample_rate, weights=identity, **self.key_options())

    def key_options(self) -> dict:
        return {}

    def embed_audio(self, y: np.ndarray, sr: int) -> np.ndarray:
        import torch

        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=0)
        y = resample(y, sr, self.sample_rate)
        with torch.inference_mode():
            out = self._forward(torch.from_numpy(y)[None].to(self.device))
        out = out.detach().float().cpu().numpy()
        if not np.isfinite(out).all():
            raise FolaiError(f"{self.name} produced NaN/inf embeddings; check the checkpoint")
        return out

    def _forward(self, wave):  # pragma: no cover - abstract
        raise NotImplementedError


#: checkpoint_identity's answers by (resolved path, size, mtime): a checkpoint is hashed once a run
_IDENTITIES: dict[tuple, str] = {}


def checkpoint_identity(path: Path) -> str:
    """What the embedding cache knows a checkpoint by: the SHA-256 of its bytes (of every file in
    it, for a folder). Its name and size had been used: a fine-tuned or re-downloaded checkpoint of
    the same architecture has the same size, and the cache gave the other one's embeddings
    (found by a review). About a second per GB, once per run."""
    from ...weights import content_sha256

    path = Path(path)
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = "sha256:" + content_sha256(path)[:32]
    return _IDENTITIES[key]
