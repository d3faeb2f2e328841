"""Datasets: Greatest Hits, Walking The Maps, any folder of videos; chunking and splits.

``folai.data.chunks`` lists chunks (video, start, duration, target audio, prompt) for both stages;
``folai.data.timing`` turns them into stage-1 training examples (cached features + envelope targets);
``folai.synthesis.data_synth`` turns them into stage-2 examples (44.1 kHz stereo audio, envelope,
CAVP frames, prompt);
``folai.data.synthetic`` generates clips whose sound is caused by visible impacts.
"""

from .chunks import (
    DATASETS,
    Chunk,
    ChunkDataset,
    GreatestHits,
    VideoFolder,
    WalkingTheMaps,
    add_dataset_arguments,
    dataset_from_args,
    detect_dataset,
    get_dataset,
    greatest_hits_prompt,
    split_items,
)

__all__ = [
    "DATASETS",
    "Chunk",
    "ChunkDataset",
    "GreatestHits",
    "VideoFolder",
    "WalkingTheMaps",
    "add_dataset_arguments",
    "dataset_from_args",
    "detect_dataset",
    "get_dataset",
    "greatest_hits_prompt",
    "split_items",
]
