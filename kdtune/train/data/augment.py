"""Random training-time augmentations, batched on the device (one call per batch).

Each also draws the transformations of ``data.invariance`` (the copies IM compares with the originals): called
with ``non_identity=True`` it draws from its set of transformations without the identity, so every copy is
really transformed. That keyword is no setting of ``train.augment`` (training draws from the whole set,
identity included) and a ``data.invariance`` config holds it as ``non_identity: true``
(set when :mod:`kdtune.spec.sweepfile` reads ``data.invariance``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from kdtune.registry import Registry
from kdtune.train.data.base import DataInfo
from kdtune.train.data.corruptions import check_points, check_rows, gather_rows, random_order, shift_images

Augmentation = Callable[..., torch.Tensor]
AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
NON_IDENTITY = "non_identity"  # the keyword every augmentation usable as data.invariance takes (not a sweep setting)


@AUGMENTATIONS.register("translate")
def random_translate(
    x: torch.Tensor, generator: torch.Generator, max_shift: int = 2, *, non_identity: bool = False
) -> torch.Tensor:
    """Shift each image by its own integer offset (dy, dx), uniform on {-max_shift, …, max_shift}², zero fill;
    with ``non_identity`` uniform on that set without (0, 0) (every image moves by at least 1 px on some axis)."""
    if not non_identity:
        d = torch.randint(-max_shift, max_shift + 1, (x.shape[0], 2), generator=generator, device=generator.device)
        return shift_images(x, d[:, 0], d[:, 1])
    if max_shift < 1:
        raise ValueError(f"max_shift must be at least 1 to draw shifts other than (0, 0), got {max_shift}")
    side = 2 * max_shift + 1
    k = torch.randint(0, side * side - 1, (x.shape[0],), generator=generator, device=generator.device)
    k = k + (k >= side * side // 2)  # skip the centre of the side × side grid of shifts: (0, 0)
    return shift_images(x, k // side - max_shift, k % side - max_shift)


@AUGMENTATIONS.register("translate_points")
def random_translate_points(
    x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.2, *, non_identity: bool = False
) -> torch.Tensor:
    """Move each point cloud (N×P×3) by its own vector, uniform in [-max_shift, max_shift]^3 (with
    ``non_identity``: max_shift > 0, and a vector drawn exactly 0 is drawn again)."""
    check_points(x, "translate_points")
    if non_identity and not max_shift > 0:
        raise ValueError(f"max_shift must be > 0 to move the clouds, got {max_shift}")

    def draw(n: int) -> torch.Tensor:
        return (torch.rand(n, 1, 3, generator=generator, device=generator.device) * 2 - 1) * max_shift

    v = draw(x.shape[0])
    while non_identity and (zero := (v == 0).all(-1).flatten()).any():
        v[zero] = draw(int(zero.sum()))
    return x + v.to(device=x.device, dtype=x.dtype)


@AUGMENTATIONS.register("permute")
def random_permute(x: torch.Tensor, generator: torch.Generator, *, non_identity: bool = False) -> torch.Tensor:
    """Put the points (or particles) of each example (N×P or N×P×F) in their own random order, uniform over the
    P! orders; with ``non_identity`` over the P! − 1 orders other than the given one (P ≥ 2)."""
    check_rows(x, "permute")
    return gather_rows(x, random_order(x.shape[0], x.shape[1], generator, non_identity=non_identity))


def check_invariance(invariance: Mapping[str, Any], info: DataInfo, data_name: str) -> None:
    """Apply the ``data.invariance`` augmentation (its name and parameters) to two blank inputs of the data set's
    shape, so that parameters that fail only on data (e.g. a negative shift) or a transformation for other inputs
    fail before any training: a ValueError saying what fails."""
    params = dict(invariance)
    name = params.pop("name")
    if info.kind == "tokens":
        raise ValueError(f"needs inputs that {name} can transform; {data_name} has token sequences")
    x = torch.zeros(2, *info.input_shape)
    try:
        out = AUGMENTATIONS.get(name)(x, generator=torch.Generator().manual_seed(0), **params)
    except Exception as e:  # any error of the augmentation on blank inputs means a bad parameter or input kind
        shown = {k: v for k, v in params.items() if k != NON_IDENTITY}  # the sweep's settings, not the fixed keyword
        what = f"{name} with {shown or 'the defaults'}"
        raise ValueError(f"{what} fails on {data_name}'s inputs: {str(e).strip() or type(e).__name__}") from None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise ValueError(f"{name} does not keep the shape of {data_name}'s inputs {info.input_shape}")
