"""Random training-time augmentations, batched on the device (one call per batch)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdtune.data.corruptions import permute_points, shift_images
from kdtune.registry import Registry

Augmentation = Callable[..., torch.Tensor]
AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


@AUGMENTATIONS.register("translate")
def random_translate(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by its own integer offset in [-max_shift, max_shift] on each axis, zero fill."""
    d = torch.randint(-max_shift, max_shift + 1, (x.shape[0], 2), generator=generator, device=generator.device)
    return shift_images(x, d[:, 0], d[:, 1])


@AUGMENTATIONS.register("translate_points")
def random_translate_points(x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.2) -> torch.Tensor:
    """Move each point cloud (N×P×3) by its own vector, uniform in [-max_shift, max_shift]^3."""
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"translate_points moves point clouds (N×P×3), got inputs of shape {tuple(x.shape)}")
    v = (torch.rand(x.shape[0], 1, 3, generator=generator, device=generator.device) * 2 - 1) * max_shift
    return x + v.to(device=x.device, dtype=x.dtype)


@AUGMENTATIONS.register("permute")
def random_permute(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Put the points (or particles) of each example (N×P or N×P×F) in their own random order."""
    return permute_points(x, generator=generator)
