"""Evaluation report: values, seeded bootstrap 95% intervals, markdown (paper Table I shape) and JSON.

Bootstrap: clips are resampled with replacement ``n_boot`` times (``numpy.random.default_rng(seed)``);
a per-clip metric's interval is the 2.5/97.5 percentiles of the resampled means; a set-level
metric (FAD, FAVD) is recomputed from the resampled clips' embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# metric key -> (column title, higher is better, decimals)
METRICS: dict[str, tuple[str, bool, int]] = {
    "fad_p": ("FAD-P", False, 2),
    "fad_c": ("FAD-C", False, 1),
    "fad_lc": ("FAD-LC", False, 4),
    "e_l1": ("E-L1", False, 4),
    "clap": ("CLAP", True, 4),
    "favd": ("FAVD", False, 4),
    "clap_text": ("CLAP-text", True, 4),
    "onset_precision": ("onset P", True, 3),
    "onset_recall": ("onset R", True, 3),
    "onset_f1": ("onset F1", True, 3),
    "onset_ap": ("onset AP", True, 3),
    "env_e_l1": ("env E-L1", False, 4),
    "acc@1": ("acc@1", True, 3),
    "acc@5": ("acc@5", True, 3),
    "acc@10": ("acc@10", True, 3),
    "acc+-1": ("acc±1", True, 3),
    "acc+-2": ("acc±2", True, 3),
}
TABLE1 = ("fad_p", "fad_c", "fad_lc", "e_l1", "clap", "favd")
TIMING = ("onset_precision", "onset_recall", "onset_f1", "onset_ap", "clap_text")
ENVELOPE = ("env_e_l1", "acc@1", "acc@5", "acc@10", "acc+-1", "acc+-2")


@dataclass
class MetricResult:
    value: float
    ci95: tuple[float, float] | None
    n: int  # clips that entered the value

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": list(self.ci95) if self.ci95 else None, "n": self.n}


def bootstrap_mean(values: Sequence[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile 95% interval of the mean of ``values`` (None for fewer than 2 values)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass
class Report:
    system: str
    n_clips: int
    results: dict[str, MetricResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)   # metric -> why
    notes: list[str] = field(default_factory=list)
    per_clip: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "system": self.system,
            "n_clips": self.n_clips,
            "metrics": {k: v.to_json() for k, v in self.results.items()},
            "skipped": self.skipped,
            "notes": self.notes,
            "per_clip": self.per_clip,
            "config": self.config,
        }

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _cell(r: MetricResult | None, dec: int, ci: bool) -> str:
    if r is None:
        return "—"
    s = f"{r.value:.{dec}f}"
    if ci and r.ci95 is not None:
        s += f" [{r.ci95[0]:.{dec}f}, {r.ci95[1]:.{dec}f}]"
    return s


def markdown_table(reports: Sequence[Report], keys: Sequence[str] = TABLE1, ci: bool = True, title: str = "system") -> str:
    """One row per report, columns ``keys`` (default: paper Table I), cells 'value [lo, hi]'."""
    head = [title, "clips"] + [f"{METRICS[k][0]} {'↑' if METRICS[k][1] else '↓'}" for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rep in reports:
        row = [rep.system, str(rep.n_clips)] + [_cell(rep.results.get(k), METRICS[k][2], ci) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def markdown_report(reports: Sequence[Report], ci: bool = True) -> str:
    """Full markdown: Table I shape, then onset/CLAP-text and envelope tables when present, then notes."""
    parts = ["## Table I metrics", "", markdown_table(reports, TABLE1, ci)]
    for title, keys in (("Onsets", TIMING), ("Predicted envelopes", ENVELOPE)):
        present = [k for k in keys if any(k in r.results for r in reports)]
        if present:
            parts += ["", f"## {title}", "", markdown_table(reports, present, ci)]
    if ci:
        sets = any(k in r.results for r in reports for k in ("fad_p", "fad_c", "fad_lc", "favd"))
        parts += ["", "Cells: value [bootstrap 95% interval over clips]" + (
            "; FAD and FAVD are set-level values with no interval (resampling clips biases a Frechet distance "
            "upward)." if sets else ".")]
    notes = []
    for r in reports:
        for k, why in r.skipped.items():
            notes.append(f"- {r.system}: {METRICS.get(k, (k,))[0]} skipped: {why}")
        for n in r.notes:
            notes.append(f"- {r.system}: {n}")
    if notes:
        parts += ["", "## Notes", ""] + sorted(set(notes), key=notes.index)
    return "\n".join(parts) + "\n"
