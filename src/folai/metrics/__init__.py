"""Evaluation metrics: timing (E-L1, onsets, acc@k), distributions (FAD, FAVD), semantics (CLAP)."""
