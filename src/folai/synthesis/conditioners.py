"""Semantic conditioners for stage 2: CLAP (audio or text -> 512-d) and SAO's duration tokens.

The frozen encoders live here; the trainable Linears that map their embeddings into the DiT's
cross-attention width are part of :class:`folai.synthesis.controlnet.EnvelopeControlNet`.

- :class:`ClapEncoder` wraps ``transformers.ClapModel`` (default ``laion/clap-htsat-unfused``):
  ``embed_audio`` takes mono 48 kHz waveforms, ``embed_text`` strings; both return (B, 512)
  L2-normalised embeddings (``.pooler_output`` of ``get_*_features`` in transformers >= 5, the
  tensor itself in older versions).
- :func:`duration_tokens` turns ``seconds_start`` / ``seconds_total`` into SAO's cross-attention
  tokens and its global (prepended) condition with the frozen ``StableAudioProjectionModel``.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import torch

from ..errors import FolaiError

log = logging.getLogger(__name__)

CLAP_DEFAULT = "laion/clap-htsat-unfused"
CLAP_SR = 48000


def _pooled(out) -> torch.Tensor:
    """get_*_features returns a tensor (transformers < 5) or an output object (>= 5)."""
    if isinstance(out, torch.Tensor):
        return out
    if getattr(out, "pooler_output", None) is not None:
        return out.pooler_output
    return out[0] if isinstance(out, (tuple, list)) else out


class ClapEncoder:
    """Frozen LAION-CLAP (transformers ClapModel): audio or text -> (B, 512), unit norm."""

    def __init__(self, model, feature_extractor=None, tokenizer=None):
        self.model = model.eval().requires_grad_(False)
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike = CLAP_DEFAULT, offline: bool = False) -> "ClapEncoder":
        from ..errors import require
        from ..weights import from_pretrained_or_explain

        transformers = require("transformers", "neural")
        model = from_pretrained_or_explain(transformers.ClapModel.from_pretrained, ref, what="CLAP", offline=offline)
        fe = from_pretrained_or_explain(transformers.ClapFeatureExtractor.from_pretrained, ref, what="CLAP feature extractor", offline=offline)
        tok = from_pretrained_or_explain(transformers.AutoTokenizer.from_pretrained, ref, what="CLAP tokenizer", offline=offline)
        return cls(model, fe, tok)

    def to(self, device=None, dtype=None) -> "ClapEncoder":
        self.model.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def embed_audio(self, waves: Sequence[np.ndarray]) -> torch.Tensor:
        """Mono waveforms at 48 kHz (each (N,) float) -> (B, 512) on the model's device."""
        if self.feature_extractor is None:
            raise FolaiError("this CLAP encoder has no feature extractor; load it with ClapEncoder.from_pretrained")
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        if any(w.size == 0 for w in waves):
            raise FolaiError("a CLAP reference clip is empty; give audio at least a few milliseconds long")
        inputs = self.feature_extractor(waves, sampling_rate=CLAP_SR, return_tensors="pt")
        p = next(self.model.parameters())
        feats = inputs["input_features"].to(p.device, p.dtype)
        kwargs = {}
        if "is_longer" in inputs:
            kwargs["is_longer"] = inputs["is_longer"].to(p.device)
        return _pooled(self.model.get_audio_features(input_features=feats, **kwargs)).float()

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Strings -> (B, 512) on the model's device."""
        if self.tokenizer is None:
            raise FolaiError("this CLAP encoder has no tokenizer; load it with ClapEncoder.from_pretrained")
        inputs = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        return _pooled(self.model.get_text_features(**inputs)).float()

    def embed_references(self, paths: Sequence[str | os.PathLike], max_seconds: float = 10.0) -> torch.Tensor:
        """Mean CLAP audio embedding of reference files (re-normalised) -> (1, 512)."""
        from ..media import read_audio

        waves = []
        for p in paths:
            a = read_audio(p, sr=CLAP_SR, channels=1, duration=max_seconds)
            waves.append(a[0])
        emb = self.embed_audio(waves).mean(dim=0, keepdim=True)
        return torch.nn.functional.normalize(emb, dim=-1)


def duration_tokens(
    projection_model, seconds_start: torch.Tensor, seconds_total: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAO duration conditioning.

    seconds_start, seconds_total: (B,) float seconds. Returns (cross tokens (B, 2, cond_dim),
    global condition (B, 1, 2 * cond_dim)) exactly as StableAudioPipeline.encode_duration builds them.
    """
    out = projection_model(start_seconds=seconds_start, end_seconds=seconds_total)
    s, e = out.seconds_start_hidden_states, out.seconds_end_hidden_states  # (B, 1, D) each
    return torch.cat([s, e], dim=1), torch.cat([s, e], dim=2)
