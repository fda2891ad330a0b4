"""The encoder registry: name -> `Encoder` subclass (see model.py for the interface).

Why one registry over several modules: single-stream systems differ only in their embeddings (one
module, options in `ModelConfig`), two-stream ones in their layer plan (one module each), and a
style preset (styles.py) names an encoder here.
"""

from __future__ import annotations

from laitkit.pipeline.pretrain.encoders.lxmert import LxmertEncoder
from laitkit.pipeline.pretrain.encoders.pixel import PixelEncoder
from laitkit.pipeline.pretrain.encoders.single import SingleStreamEncoder
from laitkit.pipeline.pretrain.encoders.vilbert import VilbertEncoder
from laitkit.pipeline.pretrain.encoders.visualbert import VisualBertEncoder
from laitkit.pipeline.pretrain.model import Encoder

ENCODERS: dict[str, type[Encoder]] = {
    "single-stream": SingleStreamEncoder,
    "visualbert": VisualBertEncoder,
    "lxmert": LxmertEncoder,
    "vilbert": VilbertEncoder,
    "pixel": PixelEncoder,
}
