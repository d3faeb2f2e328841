"""Evaluation metrics: timing (E-L1, onsets, acc@k), distributions (FAD, FAVD), semantics (CLAP).

- ``sync``: E-L1 and onset P/R/F1 exactly as the paper / shared bench define them
- ``onsets``: onset average precision, ``OnsetMetric`` (update/compute)
- ``envelopes``: predicted-envelope E-L1, acc@k, acc+-t (``EnvelopeMetric``)
- ``frechet``: stable Frechet distance, ``FrechetDistance`` (update/compute)
- ``embedders``: PANNs, MS-CLAP 2023, LAION-CLAP, VGGish, I3D (published checkpoint key names)
- ``cache``: per-file embedding cache (content hash + model key)
- ``pairing``: generated/reference/video files paired by clip id
- ``report``: bootstrap intervals, markdown (paper Table I shape) and JSON
- ``evaluate``: ``evaluate_pairs`` — what ``folai evaluate`` runs (see docs/evaluation.md)
"""
