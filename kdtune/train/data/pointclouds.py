"""``shapes``: labelled point clouds sampled from parametric surfaces and curves, embedded (no files).

Each example is one shape with its own random parameters (radii, aspect ratios, heights), ``n_points`` points drawn
independently from its surface (so in random order), Gaussian noise of std ``noise`` (on the shape's own scale, about
1), then the standard scaling used for ModelNet (centred on the mean, the farthest point at distance 1), then optionally
a uniformly random rotation (``rotate``) and a random translation, uniform in [-translate, translate]^3 (``translate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from kdtune.train.data.base import DataInfo
from kdtune.train.data.dataset import DATASETS, Dataset, EvalSetSpec

Sampler = Callable[[int, int, torch.Generator], torch.Tensor]


def _u(g: torch.Generator, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


def _directions(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Uniform unit vectors, ``shape``×3."""
    v = torch.randn(*shape, 3, generator=g, dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _pick(g: torch.Generator, weights: torch.Tensor, p: int) -> torch.Tensor:
    """N×P indices drawn for each example from its (unnormalised) weights N×K."""
    return torch.multinomial(weights.float(), p, replacement=True, generator=g)


def _triangles(g: torch.Generator, tri: torch.Tensor, p: int) -> torch.Tensor:
    """P points uniform on the surface of each example's triangle mesh ``tri`` (N×T×3 corners×3)."""
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]).norm(dim=-1)
    t = _pick(g, area, p)
    corners = tri[torch.arange(len(tri))[:, None], t]  # N×P×3×3
    a, b = _u(g, len(tri), p, 1), _u(g, len(tri), p, 1)
    fold = a + b > 1
    a, b = torch.where(fold, 1 - a, a), torch.where(fold, 1 - b, b)
    return corners[:, :, 0] + a * (corners[:, :, 1] - corners[:, :, 0]) + b * (corners[:, :, 2] - corners[:, :, 0])


def _box_mesh(half: torch.Tensor) -> torch.Tensor:
    """The 12 triangles of axis-aligned boxes with half-extents ``half`` (N×3)."""
    signs = torch.tensor([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=torch.float64) * 2 - 1
    faces = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    tris = [t for a, b, c, d in faces for t in ((a, b, c), (a, c, d))]
    return (signs[None] * half[:, None, :])[:, torch.tensor(tris)]


def _cylinder_parts(g: torch.Generator, r: torch.Tensor, h: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a cylinder's side (radius r, z in [-h, h]) and a uniform angle, both N×P."""
    return _u(g, len(r), p, low=-1.0, high=1.0) * h[:, None], _u(g, len(r), p, high=2 * math.pi)


def sphere(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Spheres of radius U(0.5, 1)."""
    return _directions(g, n, p) * _u(g, n, 1, 1, low=0.5, high=1.0)


def ellipsoid(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Ellipsoids with semi-axes 1, U(0.45, 0.75), U(0.2, 0.4) (points: scaled sphere directions)."""
    axes = torch.stack([torch.ones(n, dtype=torch.float64), _u(g, n, low=0.45, high=0.75), _u(g, n, low=0.2, high=0.4)], 1)
    return _directions(g, n, p) * axes[:, None, :]


def cube(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Cube surfaces, half-side U(0.5, 1)."""
    return _triangles(g, _box_mesh(_u(g, n, 1, low=0.5, high=1.0).expand(n, 3)), p)


def box(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Cuboid surfaces with half-extents 1, U(0.4, 0.7), U(0.1, 0.3)."""
    half = torch.stack([torch.ones(n, dtype=torch.float64), _u(g, n, low=0.4, high=0.7), _u(g, n, low=0.1, high=0.3)], 1)
    return _triangles(g, _box_mesh(half), p)


def cylinder(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Closed cylinders along z: radius U(0.3, 0.6), half-height U(0.6, 1); side and caps by area."""
    r, h = _u(g, n, low=0.3, high=0.6), _u(g, n, low=0.6, high=1.0)
    z, theta = _cylinder_parts(g, r, h, p)
    on_cap = _pick(g, torch.stack([2 * h, r], 1), p) == 1  # side 2πr·2h : caps 2πr²
    rho = torch.where(on_cap, r[:, None] * _u(g, n, p).sqrt(), r[:, None])
    z = torch.where(on_cap, h[:, None] * torch.sign(_u(g, n, p) - 0.5), z)
    return torch.stack([rho * theta.cos(), rho * theta.sin(), z], -1)


def cone(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Closed cones along z: base radius U(0.4, 0.8), height U(1, 1.6); side and base by area."""
    r, height = _u(g, n, low=0.4, high=0.8), _u(g, n, low=1.0, high=1.6)
    slant = (r**2 + height**2).sqrt()
    on_base = _pick(g, torch.stack([slant, r], 1), p) == 1  # side πr·s : base πr²
    t = _u(g, n, p).sqrt()  # side: distance from the apex, density ∝ t
    theta = _u(g, n, p, high=2 * math.pi)
    rho = torch.where(on_base, r[:, None] * _u(g, n, p).sqrt(), r[:, None] * t)
    z = torch.where(on_base, -height[:, None] / 2, height[:, None] * (0.5 - t))
    return torch.stack([rho * theta.cos(), rho * theta.sin(), z], -1)


def torus(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Tori in the xy plane: ring radius 1, tube radius U(0.2, 0.45); uniform in both angles."""
    r = _u(g, n, 1, low=0.2, high=0.45)
    phi, theta = _u(g, n, p, high=2 * math.pi), _u(g, n, p, high=2 * math.pi)
    rho = 1 + r * theta.cos()
    return torch.stack([rho * phi.cos(), rho * phi.sin(), r * theta.sin()], -1)


def pyramid(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Square pyramids: base half-side U(0.6, 1) at z = -height/2, apex on the z axis, height U(0.8, 1.5)."""
    a, height = _u(g, n, low=0.6, high=1.0), _u(g, n, low=0.8, high=1.5)
    zero = torch.zeros(n, dtype=torch.float64)
    base = [torch.stack([sx * a, sy * a, -height / 2], 1) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    apex = torch.stack([zero, zero, height / 2], 1)
    tris = [(base[i], base[(i + 1) % 4], apex) for i in range(4)] + [(base[0], base[1], base[2]), (base[0], base[2], base[3])]
    return _triangles(g, torch.stack([torch.stack(t, 1) for t in tris], 1), p)


def helix(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Springs along z: radius U(0.5, 0.8), U(2, 4) turns over a height of 2, a tube of std 0.04 around the curve."""
    radius, turns = _u(g, n, 1, low=0.5, high=0.8), _u(g, n, 1, low=2.0, high=4.0)
    t = _u(g, n, p)
    angle = 2 * math.pi * turns * t
    curve = torch.stack([radius * angle.cos(), radius * angle.sin(), 2 * t - 1], -1)
    return curve + 0.04 * torch.randn(n, p, 3, generator=g, dtype=torch.float64)


def capsule(n: int, p: int, g: torch.Generator) -> torch.Tensor:
    """Capsules along z: radius U(0.25, 0.45), a cylinder of half-length U(0.4, 0.8) between two hemispheres."""
    r, h = _u(g, n, low=0.25, high=0.45), _u(g, n, low=0.4, high=0.8)
    z, theta = _cylinder_parts(g, r, h, p)
    side = torch.stack([r[:, None] * theta.cos(), r[:, None] * theta.sin(), z], -1)
    d = _directions(g, n, p) * r[:, None, None]
    cap = d + torch.sign(d[..., 2:]) * torch.stack([torch.zeros_like(h), torch.zeros_like(h), h], 1)[:, None, :]
    on_cap = _pick(g, torch.stack([2 * h, 2 * r], 1), p) == 1  # side 2πr·2h : two hemispheres 4πr²
    return torch.where(on_cap[..., None], cap, side)


POINT_EVAL_SETS = {
    "test": EvalSetSpec("test"),
    "translated": EvalSetSpec("translated", "test", "translate_points", (("shift", 0.5),)),
    "permuted": EvalSetSpec("permuted", "test", "permute_points"),
}
SHAPES: dict[str, Sampler] = {
    f.__name__: f for f in (sphere, cube, cylinder, cone, torus, ellipsoid, box, pyramid, helix, capsule)
}


def unit_sphere(x: torch.Tensor) -> torch.Tensor:
    """Standard point-cloud scaling (as for ModelNet): each cloud (N×P×3) centred on its mean and divided
    by its largest distance from it, so it fits the unit sphere and touches it."""
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=-1).amax(1).clamp_min(1e-12)[:, None, None]


def random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    """N rotation matrices drawn uniformly (Haar) from SO(3): QR of Gaussian matrices, signs fixed."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    flip = torch.linalg.det(q) < 0
    q[flip, :, 0] = -q[flip, :, 0]
    return q


def sample_shapes(
    labels: torch.Tensor,
    names: Sequence[str],
    n_points: int,
    noise: float,
    generator: torch.Generator,
    rotate: bool = False,
    translate: float = 0.0,
) -> torch.Tensor:
    """Point clouds (N×n_points×3, float32) for ``labels`` (indices into ``names``), built as the module says."""
    x = torch.empty(len(labels), n_points, 3, dtype=torch.float64)
    for c, name in enumerate(names):
        idx = (labels == c).nonzero().flatten()
        if len(idx):
            x[idx] = SHAPES[name](len(idx), n_points, generator)
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    x = unit_sphere(x)
    if rotate:
        x = x @ random_rotations(len(x), generator).transpose(1, 2)
    if translate > 0:
        x = x + (torch.rand(len(x), 1, 3, generator=generator, dtype=torch.float64) * 2 - 1) * translate
    return x.float()


@DATASETS.register("shapes")
class Shapes(Dataset):
    """Point clouds of parametric shapes (the module docstring): ``n_train`` / ``n_test`` per class.

    ``shapes`` picks the classes (default: all of sphere, cube, cylinder, cone, torus, ellipsoid, box,
    pyramid, helix, capsule). The training pool and the test set come from generators seeded by ``seed``.
    """

    kind = "points"
    default_eval_sets = POINT_EVAL_SETS

    def __init__(
        self,
        n_points: int = 64,
        n_train: int = 150,
        n_test: int = 50,
        noise: float = 0.02,
        rotate: bool = False,
        translate: float = 0.0,
        seed: int = 0,
        shapes: Sequence[str] = tuple(SHAPES),
    ) -> None:
        for name, v in (("n_points", n_points), ("n_train", n_train), ("n_test", n_test)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if noise < 0 or translate < 0:
            raise ValueError(f"noise and translate must be >= 0, got {noise} and {translate}")
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown or len(set(shapes)) != len(shapes) or len(shapes) < 2:
            raise ValueError(f"shapes must be at least two distinct names of {', '.join(SHAPES)}; got {list(shapes)}")
        self.n_points, self.n_train, self.n_test = n_points, n_train, n_test
        self.noise, self.rotate, self.translate, self.seed = noise, rotate, translate, seed
        self.shapes = tuple(shapes)

    def describe(self) -> DataInfo:
        return DataInfo("points", (self.n_points, 3), len(self.shapes), (("classes", self.shapes),))

    def _split(self, per_class: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(len(self.shapes)).repeat_interleave(per_class)
        y = y[torch.randperm(len(y), generator=g)]
        return sample_shapes(y, self.shapes, self.n_points, self.noise, g, self.rotate, self.translate), y

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x_tr, y_tr = self._split(self.n_train, torch.Generator().manual_seed(2 * self.seed))
        x_te, y_te = self._split(self.n_test, torch.Generator().manual_seed(2 * self.seed + 1))
        return x_tr, y_tr, x_te, y_te
