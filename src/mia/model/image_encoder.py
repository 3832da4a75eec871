"""Image path (paper Sec. III-A, Fig. 4a): CNN, then a global and a part branch."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mia.model.backbones import build_backbone, stage_modules


class ImageEncoder(nn.Module):
    """Image -> (global feature I [B, D], part features P_1..P_n [B, n, D]).

    Global branch: global mean pool -> FC (``global_fc``) -> I.
    Part branch (PCB-style): 1x1 conv to ``part_channels`` (-> BN -> ReLU with ``part_bn``)
    -> mean pool over ``num_parts``
    equal horizontal stripes -> (if ``part_channels != embed_dim``) a shared linear map to
    the joint space (``part_proj``). See docs/MODEL.md, "Part dimensions".
    """

    def __init__(self, *, backbone: str, embed_dim: int, part_channels: int, num_parts: int,
                 small_width: int = 32, last_stride: int = 1, part_bn: bool = False):
        super().__init__()
        self.backbone, channels = build_backbone(backbone, small_width=small_width,
                                                 last_stride=last_stride)
        self.backbone_name = backbone
        self.num_parts = num_parts
        self.global_fc = nn.Linear(channels, embed_dim)
        self.part_conv = nn.Conv2d(channels, part_channels, kernel_size=1)
        self.part_bn = (nn.Sequential(nn.BatchNorm2d(part_channels), nn.ReLU(inplace=True))
                        if part_bn else nn.Identity())
        self.part_proj = (nn.Identity() if part_channels == embed_dim
                          else nn.Linear(part_channels, embed_dim))

    def num_stages(self) -> int:
        return len(stage_modules(self.backbone, self.backbone_name))

    def backbone_stages(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """CNN stages ``start .. stop - 1`` applied to ``x`` (images when start is 0)."""
        if start == 0 and stop is None:
            return self.backbone(x)
        for stage in stage_modules(self.backbone, self.backbone_name)[start:stop]:
            x = stage(x)
        return x

    def forward(self, images: Tensor, with_parts: bool = True,
                start_stage: int = 0) -> tuple[Tensor, Tensor | None]:
        """images [B, 3, H, W] (or the output of the first ``start_stage`` CNN stages) ->
        (I [B, D], P [B, n, D] or None)."""
        fmap = self.backbone_stages(images, start_stage)  # [B, C, h, w]
        global_ = self.global_fc(fmap.mean(dim=(2, 3)))
        if not with_parts:
            return global_, None
        stripes = F.adaptive_avg_pool2d(self.part_bn(self.part_conv(fmap)), (self.num_parts, 1))
        parts = self.part_proj(stripes.squeeze(-1).transpose(1, 2))  # [B, n, D]
        return global_, parts
