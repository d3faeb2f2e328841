"""LAION-CLAP through ``transformers.ClapModel`` (FAD-LC and the CLAP score).

Audio is resampled to 48 kHz and quantised to 16 bit (as fadtk does), then cut into 10 s windows:
- FAD-LC rows (``embed_audio``): windows every 1 s (fadtk's chunking), the last ones zero-padded;
  one 512-d projected embedding per window;
- the clip embedding (``embed_clip``, for the CLAP score): non-overlapping 10 s windows, each
  embedded (``ClapFeatureExtractor`` default ``repeatpad`` padding for a short window), unit-
  normalised and averaged. Windows are chosen here rather than by the feature extractor, whose
  ``rand_trunc`` crops long clips at random.
Text (``embed_text``) uses the model's tokenizer and ``get_text_features``.

Weights: a Hugging Face id (``laion/clap-htsat-unfused``, needs it in the local HF cache or
internet) or a local folder saved with ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import FolaiError, WeightsUnavailableError, require
from ..audio import resample
from ..cache import model_key
from .base import checkpoint_identity

SR = 48000
WINDOW_S = 10


def _quantise16(y: np.ndarray) -> np.ndarray:
    return (np.clip(y, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0


def _features(out):
    """transformers 4 returns a tensor from get_*_features, 5 an output object."""
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        return out.pooler_output
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


class LaionClapEmbedder:
    name = "laion-clap"
    sample_rate = SR

    def __init__(self, model, feature_extractor, tokenizer=None, device: str = "cpu", identity: str = "random"):
        self.model = model.eval().to(device)
        self.fe = feature_extractor
        self.tokenizer = tokenizer
        self.device = device
        self.key = model_key(self.name, sr=SR, weights=identity, window=WINDOW_S)

    def _embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        import torch

        feats = []
        for w in windows:
            inp = self.fe(w, sampling_rate=SR, return_tensors="pt", truncation="rand_trunc", padding="repeatpad")
            kwargs = {"input_features": inp["input_features"].to(self.device)}
            if "is_longer" in inp and getattr(self.model.config.audio_config, "enable_fusion", False):
                kwargs["is_longer"] = inp["is_longer"].to(self.device)
            with torch.inference_mode():
                feats.append(_features(self.model.get_audio_features(**kwargs)).float().cpu())
        return torch.cat(feats).numpy()

    def _prepare(self, y, sr):
        y = np.asarray(y, dtype=np.float32)
        y = y.mean(axis=0) if y.ndim == 2 else y
        y = _quantise16(resample(y, sr, SR))
        if y.size == 0:
            raise FolaiError("CLAP: empty audio")
        return y

    def embed_audio(self, y, sr) -> np.ndarray:
        """(n_windows, 512) rows for FAD-LC: 10 s windows every 1 s, zero-padded."""
        y = self._prepare(y, sr)
        n = WINDOW_S * SR
        windows = []
        for start in range(0, y.size, SR):
            w = y[start:start + n]
            windows.append(np.pad(w, (0, n - w.size)) if w.size < n else w)
        return self._embed_windows(windows)

    def embed_clip(self, y, sr) -> np.ndarray:
        """(512,) unit-normalised mean of the embeddings of non-overlapping 10 s windows."""
        y = self._prepare(y, sr)
        n = WINDOW_S * SR
        windows = [y[i:i + n] for i in range(0, y.size, n)]
        if len(windows) > 1 and windows[-1].size < SR:  # drop a sub-second tail
            windows = windows[:-1]
        e = self._embed_windows(windows)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        m = e.mean(axis=0)
        return m / max(float(np.linalg.norm(m)), 1e-12)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch

        if self.tokenizer is None:
            raise FolaiError("this CLAP model has no tokenizer, so it cannot embed a text prompt")
        tok = self.tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = _features(self.model.get_text_features(
                input_ids=tok["input_ids"].to(self.device),
                attention_mask=tok["attention_mask"].to(self.device) if "attention_mask" in tok else None,
            ))
        e = out.float().cpu().numpy()
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def load(weights: str, device: str = "cpu") -> LaionClapEmbedder:
    tr = require("transformers", "eval")
    src = str(weights)
    local = Path(src).expanduser()
    try:
        kw = {} if local.is_dir() else {"local_files_only": False}
        model = tr.ClapModel.from_pretrained(str(local) if local.is_dir() else src, **kw)
        fe = tr.ClapFeatureExtractor.from_pretrained(str(local) if local.is_dir() else src, **kw)
        try:
            tok = tr.AutoTokenizer.from_pretrained(str(local) if local.is_dir() else src, **kw)
        except Exception:
            tok = None
    except Exception as e:
        raise WeightsUnavailableError(
            f"cannot load the LAION-CLAP model {src!r} ({type(e).__name__}: {str(e)[:200]}); download it first "
            "(huggingface-cli download laion/clap-htsat-unfused) or pass a folder saved with save_pretrained"
        ) from e
    # (a local folder by its files' contents, as the other checkpoints: by its name, a re-saved
    # fine-tune reused the cached embeddings of the model saved there before)
    return LaionClapEmbedder(model, fe, tok, device, identity=checkpoint_identity(local) if local.is_dir() else src)
