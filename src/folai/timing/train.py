"""``folai train timing``: train the paper's video model on cached features.

Loss: cross-entropy of the per-frame class logits against the Gaussian label-smoothed targets
(SPEC); optimiser Adam; validation each epoch: loss, E-L1, acc@1/5/10, acc+-1/2.

A run folder holds::

    config.json        the resolved configuration (model, train, envelope, features, data)
    last.safetensors   the latest weights (+ the config in the file's metadata)
    best.safetensors   the weights with the lowest validation E-L1 so far
    state.pt           weights + optimiser + scheduler + epoch, for resuming after a kill
    log.csv            one row per epoch (TensorBoard events in tb/ too when tensorboard is installed)

Running the same command again on the same ``--out`` resumes after the last finished epoch.
Multi-GPU: ``accelerate launch --multi_gpu --num_processes N -m folai train timing ...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..envelope import EnvelopeConfig
from ..errors import FolaiError
from ..metrics.timing import TimingMetrics
from .model import PRESETS, VideoEnvelopeConfig, VideoEnvelopeNet, model_config

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "train_config", "train_timing", "save_checkpoint", "add_arguments", "run"]

CHECKPOINT_FORMAT = "folai-timing-learned-1"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``lr_schedule``: "constant", "exponential" (x ``lr_gamma`` per epoch)
    or "cosine" (to 0 over ``epochs``)."""

    epochs: int = 500
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_gamma: float = 0.999
    grad_clip: float | None = 1.0
    num_workers: int = 0
    seed: int = 0
    val_every: int = 1
    max_steps_per_epoch: int | None = None  # smoke tests only

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "exponential", "cosine"):
            raise FolaiError(f"unknown lr_schedule '{self.lr_schedule}'; choose constant, exponential or cosine")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise FolaiError("epochs and batch_size must be >= 1 and lr > 0")


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "10s": dict(epochs=500, batch_size=64, lr=1e-4),  # Greatest Hits (paper: Adam, batch 64, 500 epochs)
    "2s": dict(epochs=2500, batch_size=64, lr=1e-4, lr_schedule="exponential", lr_gamma=0.999),  # WTM fine-tune
    "tiny": dict(epochs=40, batch_size=16, lr=3e-3, lr_schedule="cosine"),
}


def train_config(name: str = "10s", **overrides: Any) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise FolaiError(f"unknown training preset '{name}'; choose one of: {', '.join(TRAIN_PRESETS)}")
    return TrainConfig(**{**TRAIN_PRESETS[name], **overrides})


def _from_dict(cls, d: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    bad = set(d) - names
    if bad:
        raise FolaiError(f"unknown {cls.__name__} keys {sorted(bad)}; known: {sorted(names)}")
    return cls(**d)


def load_config_arg(value: str) -> tuple[VideoEnvelopeConfig, TrainConfig]:
    """``--config``: a preset name (10s, 2s, tiny) or a JSON file {"preset": ..., "model": {...}, "train": {...}}."""
    if value in PRESETS:
        return model_config(value), train_config(value)
    p = Path(value)
    if not p.is_file():
        raise FolaiError(f"--config '{value}' is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise FolaiError(f"--config {p} is not valid JSON: {e}") from None
    preset = d.get("preset", "10s")
    m = model_config(preset, **d.get("model", {}))
    t = train_config(preset, **d.get("train", {}))
    return m, t


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, model: torch.nn.Module, config: dict[str, Any]) -> Path:
    """Weights as safetensors with the resolved config in the metadata (atomic)."""
    from safetensors.torch import save_file

    from ..paths import atomic_output

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(sd, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "config": json.dumps(config)})
    return path


def _atomic_torch_save(obj: Any, path: Path) -> None:
    from ..paths import atomic_output

    with atomic_output(path) as tmp:
        torch.save(obj, str(tmp))


class EpochSampler(torch.utils.data.Sampler):
    """A permutation that depends only on (seed, epoch): resuming reproduces the order."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _make_accelerator(device: str | None):
    try:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration
    except ImportError:
        return None
    kw: dict[str, Any] = {"dataloader_config": DataLoaderConfiguration(even_batches=False)}
    if device == "cpu":
        kw["cpu"] = True
    return Accelerator(**kw)


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # (B, T, C) logits vs (B, T, C) probability targets
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(0, 1))


def train_timing(
    train_ds,
    val_ds,
    out: str | Path,
    model_cfg: VideoEnvelopeConfig,
    train_cfg: TrainConfig,
    *,
    init: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out``; returns the last validation metrics (+ "epoch").

    train_ds / val_ds: :class:`folai.data.timing.TimingDataset` (or anything yielding the same dicts).
    init: a checkpoint (file or run folder) to fine-tune from; its model sizes are kept, the
          window ``duration`` comes from ``model_cfg``.
    """
    from tqdm.auto import tqdm

    from .learned import load_checkpoint

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.pt"
    resuming = state_path.is_file()
    if resuming:
        saved = json.loads((out / "config.json").read_text())
        old_model = VideoEnvelopeConfig.from_dict(saved["model"])
        old_train = _from_dict(TrainConfig, saved["train"])
        # options that differ from the run's were ignored without a word (a new --config, --lr or
        # --batch-size trained the old run on; found by a review): they are an error
        ignore = {"input_dim", "epochs", "num_workers", "max_steps_per_epoch"}
        new_m, old_m = model_cfg.to_dict(), old_model.to_dict()
        if init is not None:
            # a fine-tune's model is its --init checkpoint's (only the window comes from --config):
            # compared with the preset, its own command had been refused (found by a review)
            new_m = {"duration": new_m["duration"]}
        new_t, old_t = asdict(train_cfg), asdict(old_train)
        differ = [f"{k} {old[k]!r} -> {new[k]!r}" for new, old in ((new_m, old_m), (new_t, old_t))
                  for k in sorted(new) if k not in ignore and k in old and new[k] != old[k]]
        if differ:
            raise FolaiError(
                f"{out} is a run with other settings ({'; '.join(differ)}): it resumes only as it was started. "
                "Give a new --out, or --init RUN to fine-tune from it"
            )
        if old_train.epochs != train_cfg.epochs and old_train.lr_schedule == "cosine":
            # (its learning rate reaches 0 at the planned last epoch and then climbs again)
            raise FolaiError(
                f"{out}'s cosine schedule was planned for {old_train.epochs} epochs; it cannot be extended to "
                f"{train_cfg.epochs}. Fine-tune from it into a new --out with --init {out}"
            )
        if old_train.epochs != train_cfg.epochs:
            log.warning("resuming %s with epochs %d (was %d)", out, train_cfg.epochs, old_train.epochs)
        model_cfg = old_model
        train_cfg = TrainConfig(**{**old_t, "epochs": train_cfg.epochs, "num_workers": train_cfg.num_workers,
                                   "max_steps_per_epoch": train_cfg.max_steps_per_epoch})
        saved["train"]["epochs"] = train_cfg.epochs  # (config.json had kept the first run's)
    init_sd = None
    if init is not None and not resuming:
        init_sd, init_conf = load_checkpoint(init)
        model_cfg = VideoEnvelopeConfig.from_dict({**init_conf["model"], "duration": model_cfg.duration})
    if getattr(train_ds, "feature_dim", model_cfg.input_dim) != model_cfg.input_dim:
        if init_sd is not None or resuming:
            raise FolaiError(
                f"the features have {train_ds.feature_dim} dims but the model expects {model_cfg.input_dim}; "
                "extract features with the encoder the checkpoint was trained on"
            )
        model_cfg = VideoEnvelopeConfig.from_dict({**model_cfg.to_dict(), "input_dim": train_ds.feature_dim})
    n_env = getattr(train_ds, "n_env", model_cfg.n_env_frames)
    if n_env != model_cfg.n_env_frames:
        raise FolaiError(
            f"data chunks are {train_ds.duration} s but the model window is {model_cfg.duration} s; "
            "use the preset/--chunk-seconds that match"
        )
    env_cfg = getattr(train_ds, "envelope", EnvelopeConfig())
    resolved = {
        "format": CHECKPOINT_FORMAT,
        "model": model_cfg.to_dict(),
        "train": asdict(train_cfg),
        "envelope": asdict(env_cfg),
        "features": getattr(train_ds, "feature_info", {}),
        **(extra_config or {}),
    }

    acc = _make_accelerator(device)
    is_main = acc.is_main_process if acc else True
    dev = acc.device if acc else torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_cfg.seed)
        model = VideoEnvelopeNet(model_cfg)
    if init_sd is not None:
        model.load_state_dict(init_sd, strict=True)
        log.info("fine-tuning from %s", init)
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    if train_cfg.lr_schedule == "exponential":
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=train_cfg.lr_gamma)
    elif train_cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=train_cfg.epochs)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    start_epoch, best, step = 0, math.inf, 0
    if resuming:
        st = torch.load(str(state_path), map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start_epoch, best, step = int(st["epoch"]) + 1, float(st["best"]), int(st["step"])
        log.info("resuming %s after epoch %d", out, start_epoch)
        if is_main and old_train.epochs != train_cfg.epochs:
            from ..paths import atomic_output

            with atomic_output(out / "config.json") as tmp:
                tmp.write_text(json.dumps(saved, indent=2))
    elif is_main:
        from ..paths import atomic_output

        with atomic_output(out / "config.json") as tmp:
            tmp.write_text(json.dumps(resolved, indent=2))

    sampler = EpochSampler(len(train_ds), train_cfg.seed)
    bs = train_cfg.batch_size
    train_loader = torch.utils.data.DataLoader(
        train_ds, batch_size=bs, sampler=sampler, num_workers=train_cfg.num_workers, drop_last=len(train_ds) > bs
    )
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=bs, shuffle=False, num_workers=train_cfg.num_workers)
    if acc:
        model, opt, train_loader, val_loader = acc.prepare(model, opt, train_loader, val_loader)
    else:
        model = model.to(dev)

    writer = None
    if is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except Exception:  # tensorboard not installed: CSV only
            writer = None
    log_path = out / "log.csv"
    columns = ["epoch", "step", "lr", "train_loss", "val_loss", "el1", "acc@1", "acc@5", "acc@10", "acc+-1", "acc+-2", "seconds"]
    if is_main and not log_path.is_file():
        log_path.write_text(",".join(columns) + "\n")

    def reduce(vec: np.ndarray) -> np.ndarray:
        if acc is None or acc.num_processes == 1:
            return vec
        t = torch.as_tensor(vec, dtype=torch.float64, device=acc.device)
        return acc.reduce(t, reduction="sum").cpu().numpy()

    metrics: dict[str, Any] = {}
    ebar = tqdm(range(start_epoch, train_cfg.epochs), desc="epochs", unit="epoch", disable=not (progress and is_main))
    for epoch in ebar:
        t0 = time.time()
        sampler.set_epoch(epoch)
        if hasattr(train_loader, "set_epoch"):  # accelerate re-sets the sampler epoch from its own counter
            train_loader.set_epoch(epoch)
        model.train()
        losses = []
        for i, batch in enumerate(tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not (progress and is_main))):
            if train_cfg.max_steps_per_epoch is not None and i >= train_cfg.max_steps_per_epoch:
                break
            feats, targets = batch["features"].to(dev), batch["targets"].to(dev)
            logits = model(feats)  # (B, T_env, C)
            loss = _loss(logits, targets)
            opt.zero_grad(set_to_none=True)
            if acc:
                acc.backward(loss)
                if train_cfg.grad_clip:
                    acc.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            else:
                loss.backward()
                if train_cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        lr = opt.param_groups[0]["lr"]
        sched.step()
        row: dict[str, Any] = {"epoch": epoch, "step": step, "lr": lr,
                               "train_loss": float(np.mean(losses)) if losses else float("nan")}
        if (epoch + 1) % train_cfg.val_every == 0 or epoch == train_cfg.epochs - 1:
            metrics = evaluate(model, val_loader, dev, reduce)
            row.update({k: metrics[k] for k in columns if k in metrics})
        row["seconds"] = round(time.time() - t0, 3)
        if is_main:
            unwrapped = acc.unwrap_model(model) if acc else model
            if metrics and row.get("el1") is not None and row["el1"] < best:
                best = row["el1"]
                save_checkpoint(out / "best.safetensors", unwrapped, {**resolved, "epoch": epoch, "val": metrics})
            save_checkpoint(out / "last.safetensors", unwrapped, {**resolved, "epoch": epoch})
            _atomic_torch_save(
                {"model": unwrapped.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "epoch": epoch, "best": best, "step": step},
                state_path,
            )
            with log_path.open("a", newline="") as fh:
                csv.writer(fh).writerow([_fmt(row.get(c)) for c in columns])
            if writer is not None:
                for k, v in row.items():
                    if k not in ("epoch",) and v is not None:
                        writer.add_scalar(k, v, epoch)
            ebar.set_postfix({k: f"{row[k]:.4g}" for k in ("train_loss", "el1", "acc@5") if k in row})
        if acc:
            acc.wait_for_everyone()
    if writer is not None:
        writer.close()
    # (the last epoch trained: a run re-run with fewer --epochs than it has is not cut back)
    return {**metrics, "epoch": max(train_cfg.epochs, start_epoch) - 1}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device, reduce=None) -> dict[str, float]:
    """Validation loss and metrics over ``loader`` (SPEC definitions, see folai.metrics.timing)."""
    was = model.training
    model.eval()
    m = TimingMetrics()
    loss_sum, n = 0.0, 0
    for batch in loader:
        logits = model(batch["features"].to(device))
        loss_sum += float(_loss(logits, batch["targets"].to(device))) * logits.shape[0]
        n += logits.shape[0]
        m.update(logits, batch["classes"], batch["rms"])
    extra = np.array([loss_sum, n], dtype=np.float64)
    out = m.compute(reduce=reduce)
    if reduce is not None:
        extra = reduce(extra)
    out["val_loss"] = float(extra[0] / max(extra[1], 1))
    model.train(was)
    return out


# ----------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train the paper's video model (features -> 64 envelope classes per frame) on features cached "
        "by 'folai extract'. Re-running the same command resumes the run. Multi-GPU: "
        "accelerate launch --multi_gpu --num_processes N -m folai train timing ..."
    )
    from ..data.chunks import add_dataset_arguments

    p.add_argument("--features", required=True, help="feature folder written by 'folai extract' for --data")
    p.add_argument("--out", required=True, help="run folder (created; an existing run is resumed)")
    p.add_argument("--config", default="10s",
                   help="preset (10s: Greatest Hits, 2s: Walking The Maps fine-tune, tiny) or a JSON file "
                        '{"preset": ..., "model": {...}, "train": {...}} (default 10s)')
    p.add_argument("--init", metavar="CKPT", help="fine-tune from this checkpoint (file or run folder)")
    add_dataset_arguments(p, data_required=True)
    p.add_argument("--val-split", default="val", choices=["val", "test"], help="split validated each epoch (default val)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--seed", type=int, help="training seed (the split has --split-seed)")
    p.add_argument("--device", help="cpu to force the CPU (default: the accelerator accelerate picks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..data.chunks import dataset_from_args
    from ..data.timing import TimingDataset

    model_cfg, train_cfg = load_config_arg(args.config)
    over = {k: getattr(args, a) for k, a in [("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                                              ("num_workers", "num_workers"), ("seed", "seed")]
            if getattr(args, a, None) is not None}
    train_cfg = TrainConfig(**{**asdict(train_cfg), **over})
    tr_chunks = dataset_from_args(args, chunk_seconds=model_cfg.duration)
    va_chunks = dataset_from_args(args, args.val_split, chunk_seconds=model_cfg.duration)
    log.info("%s; %s", tr_chunks.summary(), va_chunks.summary())
    if args.split == "all":
        # (the validation split is part of what trains: its scores say nothing of unseen clips)
        log.warning("--split all trains on the %s split too: its validation figures are not held out", args.val_split)
    progress = not args.no_progress
    tr = TimingDataset(tr_chunks, args.features, fps=model_cfg.fps, progress=progress)
    if not len(va_chunks):
        # (a small dataset: "the dataset split has no chunks" did not say which split)
        raise FolaiError(f"the {args.val_split} split of {args.data} has no chunks ({len(tr_chunks)} train chunks): "
                         f"the dataset is too small to hold one out; add videos, or give --split-dir with your own "
                         f"{args.val_split}.txt")
    va = TimingDataset(va_chunks, args.features, fps=model_cfg.fps, progress=progress)
    res = train_timing(
        tr, va, args.out, model_cfg, train_cfg, init=args.init, device=args.device, progress=progress,
        extra_config={"data": {"dataset": tr_chunks.name, "root": str(Path(args.data).resolve()),
                               "chunk_seconds": model_cfg.duration, "split": args.split,
                               "split_seed": args.split_seed, "split_dir": args.split_dir}},
    )
    epochs = int(res.get("epoch", train_cfg.epochs - 1)) + 1  # (the last epoch's 0-based index + 1)
    n = f"{epochs} epoch{'' if epochs == 1 else 's'}"
    if "el1" not in res:  # a finished run re-run: nothing was trained or validated (it printed "nan")
        print(f"{args.out} has already trained {n}: nothing to do (raise --epochs over {epochs} to train more)")
        return 0
    print(
        f"trained {args.out}: {n}, val E-L1 {res['el1']:.4f}, "
        f"acc@1 {res.get('acc@1', float('nan')):.3f}, acc@5 {res.get('acc@5', float('nan')):.3f}, "
        f"acc@10 {res.get('acc@10', float('nan')):.3f}"
    )
    return 0
