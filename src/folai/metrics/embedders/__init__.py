"""Embedders for the distribution metrics, written in this project with the parameter names of
their published checkpoints (so those load strictly):

- ``panns``: PANNs Wavegram-Logmel-Cnn14 (32 kHz; 2048-d) -> FAD-P
- ``msclap``: Microsoft CLAP 2023 audio encoder (HTSAT + projection; 44.1 kHz; 1024-d) -> FAD-C
- ``laion_clap``: LAION-CLAP through ``transformers.ClapModel`` (48 kHz; 512-d) -> FAD-LC, CLAP score
- ``vggish``: VGGish (16 kHz; 128-d per 0.96 s) -> FAVD audio side
- ``i3d``: I3D InceptionV1-3D, RGB stream (25 fps, 224 crop; 1024-d per 24-frame stack) -> FAVD video side

``get_embedder(name, weights, device)`` builds one from a checkpoint path or URL (a Hugging Face
id or folder for ``laion_clap``); without weights it raises
:class:`~folai.errors.WeightsUnavailableError` naming the file to get.
"""

from __future__ import annotations

import importlib

from ...errors import FolaiError, MissingDependencyError, WeightsUnavailableError

# name -> (module, what the user must provide)
REGISTRY: dict[str, tuple[str, str]] = {
    "panns": ("folai.metrics.embedders.panns",
              "FAD-P needs the PANNs checkpoint Wavegram_Logmel_Cnn14_mAP=0.439.pth (zenodo.org/record/3987831); "
              "pass --panns-weights PATH_OR_URL"),
    "msclap": ("folai.metrics.embedders.msclap",
               "FAD-C needs the Microsoft CLAP 2023 checkpoint CLAP_weights_2023.pth "
               "(huggingface.co/microsoft/msclap); pass --msclap-weights PATH_OR_URL"),
    "laion_clap": ("folai.metrics.embedders.laion_clap",
                   "FAD-LC and the CLAP score need a LAION-CLAP model for transformers.ClapModel "
                   "(e.g. laion/clap-htsat-unfused, downloaded beforehand); pass --clap-model HUB_ID_OR_FOLDER"),
    "vggish": ("folai.metrics.embedders.vggish",
               "FAVD needs the VGGish checkpoint vggish-10086976.pth (github.com/harritaylor/torchvggish releases); "
               "pass --vggish-weights PATH_OR_URL"),
    "i3d": ("folai.metrics.embedders.i3d",
            "FAVD needs the I3D RGB checkpoint i3d_rgb.pt (v-iashin/video_features, models/i3d/checkpoints); "
            "pass --i3d-weights PATH_OR_URL"),
}


def get_embedder(name: str, weights: str | None, device: str = "cpu"):
    """An embedder loaded from ``weights`` (path, URL, or hub id for laion_clap)."""
    if name not in REGISTRY:
        raise FolaiError(f"unknown embedder {name!r}; choose from {', '.join(REGISTRY)}")
    modname, needs = REGISTRY[name]
    if not weights:
        raise WeightsUnavailableError(needs)
    try:
        module = importlib.import_module(modname)
    except ImportError as e:
        raise MissingDependencyError(
            f"the {name} embedder needs PyTorch ({e}); install it with pip install 'folai[eval]'"
        ) from e
    return module.load(weights, device=device)
