"""MNIST-C corruptions and image augmentations as batched tensor ops.

Follows google-research/mnist-c ``corruptions.py``: skimage ``warp`` with an inverse map,
bilinear interpolation, 0 outside the image, clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdtune.registry import Registry

Corruption = Callable[..., torch.Tensor]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Per-image integer shift with zero fill: ``out[n, :, r, c] = x[n, :, r + dy[n], c + dx[n]]``.

    ``x`` is N×C×H×W; the content of image n moves by (-dy[n], -dx[n]).
    """
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] + dy.to(x.device)[:, None]
    cols = torch.arange(w, device=x.device)[None, :] + dx.to(x.device)[:, None]
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = x[idx, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # N×H×W×C
    return (out * valid[..., None]).permute(0, 3, 1, 2).contiguous()


def bilinear_sample(x: torch.Tensor, src_r: torch.Tensor, src_c: torch.Tensor) -> torch.Tensor:
    """Sample N×C×H×W images at source coordinates ``(src_r, src_c)`` (each H'×W', shared by all images).

    Bilinear interpolation where neighbours outside the image count as 0 (skimage's constant mode).
    """
    _, _, h, w = x.shape
    r0, c0 = src_r.floor(), src_c.floor()
    fr, fc = src_r - r0, src_c - c0
    out = torch.zeros(x.shape[:2] + src_r.shape, dtype=x.dtype, device=x.device)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            rr, cc = (r0 + dr).long(), (c0 + dc).long()
            inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            weight = (wr * wc * inside).to(x.dtype)
            out += x[:, :, rr.clamp(0, h - 1), cc.clamp(0, w - 1)] * weight
    return out


@CORRUPTIONS.register("identity")
def identity(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The clean images."""
    return x.clone()


@CORRUPTIONS.register("translate")
def translate(x: torch.Tensor, shift: int = 3, generator: torch.Generator | None = None) -> torch.Tensor:
    """MNIST-C translate: every image moves by exactly ``shift`` px on both axes, a random sign per axis.

    As skimage ``warp(x, inverse_map=AffineTransform(translation=(dx, dy)))``: the content moves by
    (-dx, -dy). Severity 3 of MNIST-C is ``shift=3``.
    """
    n = x.shape[0]
    signs = torch.randint(0, 2, (n, 2), generator=generator) * 2 - 1
    dx, dy = shift * signs[:, 0], shift * signs[:, 1]
    return shift_images(x, dy, dx).clamp(0, 1)


@CORRUPTIONS.register("scale")
def scale(x: torch.Tensor, factor: float = 0.7, generator: torch.Generator | None = None) -> torch.Tensor:
    """MNIST-C scale: zoom by ``factor`` about the image centre, bilinear, 0 outside.

    Output pixel p reads the input at ``centre + (p - centre) / factor`` (centre (H-1)/2, (W-1)/2;
    13.5 on MNIST). Severity 3 of MNIST-C is ``factor=0.7``.
    """
    _, _, h, w = x.shape
    cr, cc = (h - 1) / 2, (w - 1) / 2
    r = torch.arange(h, dtype=torch.float64, device=x.device)
    c = torch.arange(w, dtype=torch.float64, device=x.device)
    src_r = (cr + (r - cr) / factor)[:, None].expand(h, w)
    src_c = (cc + (c - cc) / factor)[None, :].expand(h, w)
    return bilinear_sample(x, src_r, src_c).clamp(0, 1)


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def check_points(x: torch.Tensor, name: str) -> None:
    """Inputs that are point clouds: N×P×3."""
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} moves point clouds (N×P×3), got inputs of shape {tuple(x.shape)}")


@CORRUPTIONS.register("translate_points")
def translate_points(x: torch.Tensor, shift: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Every point of cloud n (N×P×3) moved by the same vector v_n: a uniformly random direction, length ``shift``."""
    check_points(x, "translate_points")
    v = torch.randn(x.shape[0], 3, generator=generator, device=_generator_device(generator), dtype=torch.float64)
    v = shift * v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return x + v.to(device=x.device, dtype=x.dtype)[:, None, :]


def random_order(n: int, p: int, generator: torch.Generator | None, non_identity: bool = False) -> torch.Tensor:
    """N×P indices, each row its own uniformly random permutation of 0 … P-1 (argsort of uniform keys); with
    ``non_identity`` uniform over the permutations other than the identity (P ≥ 2): rows drawn as the identity
    are drawn again (every other row is the plain draw's)."""
    if non_identity and p < 2:
        raise ValueError(f"a permutation other than the identity needs at least 2 points, got {p}")
    device = _generator_device(generator)
    order = torch.rand(n, p, generator=generator, device=device).argsort(1)
    if non_identity:
        same = torch.arange(p, device=device)
        while (fixed := (order == same).all(1)).any():
            order[fixed] = torch.rand(int(fixed.sum()), p, generator=generator, device=device).argsort(1)
    return order


def gather_rows(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``out[n, i] = x[n, order[n, i]]`` for inputs N×P or N×P×F (one gather, no Python loop)."""
    order = order.to(x.device)
    if x.dim() == 2:
        return x.gather(1, order)
    return x.gather(1, order.reshape(*order.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


def check_rows(x: torch.Tensor, name: str) -> None:
    """Inputs whose examples are rows to reorder: N×P or N×P×F."""
    if x.dim() < 2:
        raise ValueError(f"{name} reorders the rows of each example (N×P or N×P×F), got shape {tuple(x.shape)}")


@CORRUPTIONS.register("permute_points")
def permute_points(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The points (or particles) of each example (N×P×F) in their own random order other than the given one
    (uniform over the P! − 1 others; with P = 1 there is none, and the examples are returned as they are)."""
    check_rows(x, "permute_points")
    return gather_rows(x, random_order(x.shape[0], x.shape[1], generator, non_identity=x.shape[1] >= 2))
