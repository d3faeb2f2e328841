"""The ``learned`` timing backend: the paper's video model on a trained checkpoint.

``LearnedTiming(checkpoint=RUN_OR_ID).estimate(video)`` extracts features with the encoder the
checkpoint was trained on (recorded in its config), predicts class probabilities over overlapping
windows, and decodes the argmax class of each envelope frame to RMS (mu-law expand) -> a mono
125 frames/s :class:`~folai.envelope.Envelope` covering the video.

Example (a tiny untrained checkpoint, as the tests do)::

    timing = LearnedTiming(checkpoint="runs/gh")        # run folder, .safetensors file or hub id
    result = timing.estimate("clip.mp4")
    result.envelope.save_csv("clip_envelope.csv")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..envelope import Envelope, EnvelopeConfig, classes_to_rms
from ..errors import FolaiError, WeightsUnavailableError
from . import TimingResult

log = logging.getLogger(__name__)

__all__ = ["LearnedTiming", "load_checkpoint", "resolve_checkpoint", "load_model"]


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """A run folder (best.safetensors, else last.safetensors), a .safetensors file, or a hub id
    ``owner/name`` (optionally ``owner/name:file.safetensors``, downloaded by huggingface_hub)."""
    p = Path(checkpoint)
    if p.is_dir():
        for name in ("best.safetensors", "last.safetensors", "model.safetensors"):
            if (p / name).is_file():
                return p / name
        raise WeightsUnavailableError(f"no checkpoint (best/last/model.safetensors) in the run folder {p}")
    if p.is_file():
        return p
    s = str(checkpoint)
    if s.count("/") == 1 and not s.startswith((".", "/")) and not p.suffix:
        repo, _, fname = s.partition(":")
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as e:  # pragma: no cover
            raise WeightsUnavailableError(f"checkpoint '{s}' looks like a hub id but huggingface_hub is missing ({e})") from e
        try:
            return Path(hf_hub_download(repo, fname or "model.safetensors"))
        except Exception as e:
            raise WeightsUnavailableError(
                f"checkpoint '{s}' is not a local run folder or file, and downloading it as a Hugging Face hub id "
                f"failed ({type(e).__name__}); check the path, or the id and your connection"
            ) from e
    raise WeightsUnavailableError(f"checkpoint not found: {checkpoint} (expected a run folder, a .safetensors file or a hub id)")


def load_checkpoint(checkpoint: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, resolved config) of a learned-timing checkpoint."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = resolve_checkpoint(checkpoint)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise WeightsUnavailableError(f"{path} is not a safetensors checkpoint ({e})") from None
    if "config" not in meta:
        raise WeightsUnavailableError(f"{path} has no folai config in its metadata; is it a 'folai train timing' checkpoint?")
    return load_file(str(path)), json.loads(meta["config"])


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """(VideoEnvelopeNet in eval mode, resolved config) from a checkpoint, loaded strictly."""
    from .model import VideoEnvelopeConfig, VideoEnvelopeNet

    sd, conf = load_checkpoint(checkpoint)
    model = VideoEnvelopeNet(VideoEnvelopeConfig.from_dict(conf["model"]))
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval(), conf


class LearnedTiming:
    """Timing backend ``learned``.

    checkpoint:      run folder, .safetensors file or hub id (see :func:`resolve_checkpoint`).
    device:          "cpu", "cuda", ... (default: CUDA when available).
    encoder_weights: weights for the feature encoder when the checkpoint's features came from
                     tcclip/clip (default: what was recorded at extraction time).
    flow:            override the optical flow method ("dis" / "raft"); default as at training.
    overlap:         window overlap for clips longer than the training window (0.5).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str | None = None,
        encoder_weights: str | None = None,
        flow: str | None = None,
        overlap: float = 0.5,
        flow_weights: str | None = None,
        **_: Any,
    ):
        if checkpoint is None:
            raise FolaiError("the learned timing backend needs a checkpoint (--checkpoint RUN_OR_ID)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise FolaiError(f"device '{device}' was asked for but no CUDA GPU is available; use --device cpu")
        self.checkpoint = str(checkpoint)
        self.model, self.config = load_model(checkpoint, self.device)
        self.overlap = overlap
        feats = self.config.get("features") or {}
        self.encoder_name = feats.get("encoder") or "flowstats"
        enc_cfg = json.loads(feats["encoder_config"]) if feats.get("encoder_config") else {}
        self.encoder_cfg = enc_cfg
        self.encoder_weights = encoder_weights or enc_cfg.get("weights")
        flow_cfg = json.loads(feats["flow"]) if feats.get("flow") else None
        self.flow_method = flow or (flow_cfg or {}).get("method") or "dis"
        self.flow_cfg = flow_cfg or {}
        self.flow_weights = flow_weights
        self._encoder = None
        self._flow = None
        env = self.config.get("envelope") or {}
        self.env_config = EnvelopeConfig(**env) if env else EnvelopeConfig()

    def _build_encoder(self):
        from .encoders import get_encoder
        from .features import get_flow

        if self._encoder is None:
            opts: dict[str, Any] = {}
            if self.encoder_name == "flowstats":
                opts["image_size"] = int(self.encoder_cfg.get("image_size", 128))
            else:
                opts.update(weights=self.encoder_weights, device=str(self.device),
                            streams=self.encoder_cfg.get("streams", "rgb+flow"))
                if self.encoder_name == "tcclip" and self.encoder_cfg.get("tcclip"):
                    tc = json.loads(self.encoder_cfg["tcclip"])
                    opts.update({k: tc[k] for k in ("num_frames", "context_tokens", "seed_token_a", "tome_r") if k in tc})
            self._encoder = get_encoder(self.encoder_name, **opts)
            if self._encoder.needs_flow:
                fopts = {"device": str(self.device)}
                if self.flow_method == "dis" and "preset" in self.flow_cfg:
                    fopts["preset"] = self.flow_cfg["preset"]
                if self.flow_method == "raft":
                    # the RAFT weights the features were extracted with: a file of the user's had
                    # been replaced at inference by torchvision's (a download, or a different
                    # flow than training saw; found by a review)
                    trained = self.flow_cfg.get("weights_sha256")
                    if self.flow_weights:
                        fopts["weights"] = self.flow_weights
                    elif trained:
                        raise WeightsUnavailableError(
                            f"the features of {self.checkpoint} were extracted with the RAFT weights "
                            f"{self.flow_cfg.get('weights')} (not torchvision's): pass that file with --flow-weights PATH"
                        )
                self._flow = get_flow(self.flow_method, **fopts)
                got = (self._flow.describe() or {}).get("weights_sha256") if self.flow_method == "raft" else None
                if self.flow_method == "raft" and got != self.flow_cfg.get("weights_sha256"):
                    log.warning("the RAFT weights differ from those the checkpoint's features were extracted with "
                                "(%s): the flow, and so the timing, may differ", self.flow_cfg.get("weights"))
        return self._encoder, self._flow

    def features(self, video: str | Path, roi=None, progress: bool = False) -> np.ndarray:
        """(T_video, D) features of ``video`` with the checkpoint's encoder."""
        from .features import extract_video_features

        enc, fl = self._build_encoder()
        return extract_video_features(video, enc, fl, fps=self.model.config.fps, roi=roi, progress=progress)

    def estimate(
        self,
        video: str | Path,
        *,
        roi: tuple[int, int, int, int] | None = None,
        progress: bool = True,
        prompt: str | None = None,  # unused: the learned model reads the picture only
    ) -> TimingResult:
        from ..paths import check_input
        from .model import predict_windows

        video = check_input(video, "video")
        feats = self.features(video, roi=roi, progress=progress)  # (T_video, D)
        probs = predict_windows(self.model, feats, overlap=self.overlap, device=self.device)  # (T_env, C)
        cls = probs.argmax(-1).numpy()
        rms = classes_to_rms(cls, self.env_config.mu)
        env = Envelope(np.clip(rms, 0.0, 1.0)[None], rate=self.model.config.env_rate, config=self.env_config)
        events = [t for t, _ in env.events()]
        return TimingResult(
            envelope=env,
            pan=None,
            info={"backend": "learned", "checkpoint": self.checkpoint, "encoder": self.encoder_name,
                  "video_frames": int(feats.shape[0]), "events": events},
        )
