"""Pixel-BERT: no detector; a CNN over the image bytes gives a grid of feature cells, a random
subset of which joins the caption in one transformer, trained end to end.

Why: Pixel-BERT learns visual features from pixels with the language model instead of taking a
detector's boxes. The backbone is a torchvision ResNet with random weights (never downloaded):
`tiny` (BasicBlock [1, 1, 1], stopping after the stride-16 stage: CPU tests), `resnet18`,
`resnet50`. Each cell of the last feature map is a "pixel" feature; its 7-d geometry is the cell's
box in the image, so the single-stream region embedder (feature + box, LayerNorm) embeds it.
Random pixel sampling (the paper keeps 100 of the feature map's pixels per image while training,
as a regulariser and to cut cost) keeps `pixel_samples` cells per image in training, all in eval.
The batch carries `image`: uint8 (B, 3, S, S), decoded by the data workers (data.py, `image_size`).
Regions here are cells, not `batch["features"]` rows: region objectives (MRFR, MRC) do not apply.
"""

from __future__ import annotations

import torch
from torch import nn

from laitkit.pipeline.pretrain.encoders.single import SingleStreamEncoder
from laitkit.pipeline.pretrain.model import Embedded, EncoderOutput, ModelConfig, RegionEmbedding

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def backbone(name: str) -> tuple[nn.Module, int]:
    """(trunk to the last kept stage, its channel count), random init."""
    from torchvision.models import resnet18, resnet50
    from torchvision.models.resnet import BasicBlock, ResNet

    if name == "tiny":
        net = ResNet(BasicBlock, [1, 1, 1, 1])
        return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3), 256
    if name == "resnet18":
        net, ch = resnet18(weights=None), 512
    elif name == "resnet50":
        net, ch = resnet50(weights=None), 2048
    else:
        raise ValueError(f"unknown pixel backbone {name!r}; known: tiny, resnet18, resnet50")
    return nn.Sequential(*list(net.children())[:-2]), ch


def cell_geometry(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(h*w, 7) boxes of the grid cells, normalised, in the same 7-d layout as region boxes."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    x1, y1 = xs.flatten().float() / w, ys.flatten().float() / h
    bw, bh = torch.full_like(x1, 1.0 / w), torch.full_like(y1, 1.0 / h)
    return torch.stack([x1, y1, x1 + bw, y1 + bh, bw, bh, bw * bh], 1)


class PixelEncoder(SingleStreamEncoder):
    def __init__(self, cfg: ModelConfig) -> None:
        if cfg.image_size <= 0:
            raise ValueError("the pixel encoder needs image_size > 0 (encoder_options: {image_size: ...})")
        super().__init__(cfg)
        self.cnn, channels = backbone(cfg.backbone)
        self.regions = RegionEmbedding(channels, cfg.hidden, cfg.dropout, geometry=True)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def pixels(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, C) cell features and (N, 7) geometry; N sampled while training."""
        if "image" not in batch:
            raise ValueError("the pixel encoder needs decoded images in the batch (pretrain image_size > 0)")
        x = (batch["image"].float() / 255.0 - self.mean) / self.std
        fmap = self.cnn(x)  # (B, C, h, w)
        b, c, h, w = fmap.shape
        cells = fmap.flatten(2).transpose(1, 2)  # (B, h*w, C)
        geom = cell_geometry(h, w, fmap.device)
        k = self.cfg.pixel_samples
        if self.training and 0 < k < h * w:
            idx = torch.rand(b, h * w, device=fmap.device).argsort(1)[:, :k]
            cells = cells.gather(1, idx[..., None].expand(-1, -1, c))
            return cells, geom[idx]
        return cells, geom.expand(b, -1, -1)

    def embed(self, batch: dict[str, torch.Tensor]) -> Embedded:
        cells, geom = self.pixels(batch)
        regions = self.regions(cells, geom, self.text.segment.weight[2])
        return Embedded(text=self.text(batch), regions=regions)

    def encode(self, emb: Embedded, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        t = emb.text.shape[1]
        cells = torch.ones(emb.regions.shape[:2], dtype=torch.bool, device=emb.regions.device)
        return self.run(emb, batch["text_mask"][:, :t], cells)
