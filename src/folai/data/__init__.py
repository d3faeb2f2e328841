"""Datasets: Greatest Hits, Walking The Maps, any folder of videos; chunking and splits.

``folai.data.chunks`` lists chunks (video, start, duration, target audio, prompt) for any stage;
``folai.data.timing`` turns them into stage-1 training examples (cached features + envelope targets);
``folai.data.synthetic`` generates clips whose sound is caused by visible impacts.
"""

from .chunks import (
    DATASETS,
    Chunk,
    ChunkDataset,
    GreatestHits,
    VideoFolder,
    WalkingTheMaps,
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
    "detect_dataset",
    "get_dataset",
    "greatest_hits_prompt",
    "split_items",
]
