"""Random training-time augmentations, batched on the device (one call per batch)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdtune.data.corruptions import shift_images
from kdtune.registry import Registry

Augmentation = Callable[..., torch.Tensor]
AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


@AUGMENTATIONS.register("translate")
def random_translate(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by its own integer offset in [-max_shift, max_shift] on each axis, zero fill."""
    d = torch.randint(-max_shift, max_shift + 1, (x.shape[0], 2), generator=generator, device=generator.device)
    return shift_images(x, d[:, 0], d[:, 1])
