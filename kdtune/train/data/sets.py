"""``particle_sets``: simulated jets as unordered sets of particles, embedded (no files).

A stand-in for the hls4ml LHC jet data (``jets_hls4ml``): five classes g, q, W, Z, t whose label is a
property of the set, not of the order. A jet has 1 (g, q), 2 (W, Z) or 3 (t) hard prongs in the (η, φ)
plane; its particles scatter around the prong axes, each prong carrying a share of the jet's pT.

* g: one prong, wide (σ = 0.10), many soft particles (multiplicity about 14);
* q: one prong, narrow (σ = 0.06), few hard particles (about 8);
* W, Z: two prongs at separation ΔR ~ N(0.30, 0.05) and N(0.40, 0.05) (their masses), pT shares z, 1-z
  with z ~ U(0.25, 0.75);
* t: three prongs at distances U(0.25, 0.5) from the centre, about 120° apart, Dirichlet(2, 2, 2) shares.

Within a prong, particle pT ∝ Exp(1)^h (h = 1.2 g, 2 q, 1.5 otherwise), rescaled to the prong's share.
Coordinates are relative to the pT-weighted jet axis. The particles are sorted by pT, descending, as in
the real data (an order an MLP can exploit), padded with zero rows up to ``n_particles``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from kdtune.train.data.base import DataInfo
from kdtune.train.data.corruptions import gather_rows
from kdtune.train.data.dataset import DATASETS, Dataset, EvalSetSpec

CLASSES = ("g", "q", "w", "z", "t")
PRONGS = torch.tensor([1, 1, 2, 2, 3])
SPREAD = torch.tensor([0.10, 0.06, 0.05, 0.05, 0.05], dtype=torch.float64)
MULTIPLICITY = torch.tensor([14.0, 8.0, 12.0, 12.0, 16.0], dtype=torch.float64)
HARDNESS = torch.tensor([1.2, 2.0, 1.5, 1.5, 1.5], dtype=torch.float64)
SEPARATION = {2: 0.30, 3: 0.40}  # class index → mean prong separation ΔR (W, Z)

SET_EVAL_SETS = {"test": EvalSetSpec("test"), "permuted": EvalSetSpec("permuted", "test", "permute_points")}
FEATURES = {
    "pt": "pT fraction of the jet",
    "eta": "Δη from the jet axis",
    "phi": "Δφ from the jet axis",
    "delta_r": "ΔR = sqrt(Δη² + Δφ²) from the jet axis",
    "log_pt": "log of the pT fraction (0 for padding)",
}


@dataclass
class Jets:
    """Generated jets: ``x`` (N×P×F, float32, sorted by pT), ``prong`` (N×P, the prong each particle came from, -1 for
    padding), ``n_prongs`` (N), ``axes`` (N×3×2 prong axes in (η, φ) before recentring, unused prongs at 0)."""

    x: torch.Tensor
    prong: torch.Tensor
    n_prongs: torch.Tensor
    axes: torch.Tensor


def _prong_layout(y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Prong axes (N×3×2) and pT shares (N×3, 0 for absent prongs) of jets with labels ``y``."""
    n = len(y)
    axes = torch.zeros(n, 3, 2, dtype=torch.float64)
    shares = torch.zeros(n, 3, dtype=torch.float64)
    shares[:, 0] = 1.0
    rot = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    two = (y == 2) | (y == 3)
    mean_sep = torch.where(y == 2, SEPARATION[2], SEPARATION[3])
    sep = (mean_sep + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)).clamp_min(0.1)
    z = 0.25 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    direction = torch.stack([rot.cos(), rot.sin()], 1)
    two_axes = torch.stack([-(1 - z)[:, None] * sep[:, None] * direction, z[:, None] * sep[:, None] * direction], 1)
    axes[two, :2] = two_axes[two]
    shares[two, 0], shares[two, 1] = z[two], 1 - z[two]
    three = y == 4
    angles = rot[:, None] + torch.arange(3, dtype=torch.float64) * 2 * math.pi / 3
    angles = angles + 0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    dist = 0.25 + 0.25 * torch.rand(n, 3, generator=g, dtype=torch.float64)
    axes[three] = (dist[..., None] * torch.stack([angles.cos(), angles.sin()], -1))[three]
    gam = -torch.rand(n, 3, 2, generator=g, dtype=torch.float64).clamp_min(1e-12).log().sum(-1)  # Gamma(2, 1)
    shares[three] = (gam / gam.sum(1, keepdim=True))[three]
    return axes, shares


def sample_jets(y: torch.Tensor, n_particles: int, features: Sequence[str], generator: torch.Generator) -> Jets:
    """Jets of classes ``y`` (indices into CLASSES) as the module says, with ``features`` per particle."""
    g, n, p = generator, len(y), n_particles
    n_prongs = PRONGS[y]
    axes, shares = _prong_layout(y, g)
    mult = (1 + torch.poisson(MULTIPLICITY[y] - 1, generator=g)).clamp(3, p).long()
    real = torch.arange(p)[None, :] < mult[:, None]
    prong = torch.multinomial(shares.float(), p, replacement=True, generator=g)  # ∝ the prong's pT share
    w = torch.rand(n, p, generator=g, dtype=torch.float64).clamp_min(1e-12).log().neg() ** HARDNESS[y][:, None]
    w = w * real
    per_prong = torch.zeros(n, 3, dtype=torch.float64).scatter_add(1, prong, w)
    pt = torch.where(real, w / per_prong.gather(1, prong).clamp_min(1e-12) * shares.gather(1, prong), 0.0)
    pt = pt / pt.sum(1, keepdim=True)
    pos = axes.gather(1, prong[..., None].expand(-1, -1, 2))
    pos = pos + SPREAD[y][:, None, None] * torch.randn(n, p, 2, generator=g, dtype=torch.float64)
    pos = (pos - (pt[..., None] * pos).sum(1, keepdim=True)) * real[..., None]  # relative to the pT-weighted axis
    order = pt.argsort(dim=1, descending=True, stable=True)
    pt, pos, real = pt.gather(1, order), gather_rows(pos, order), real.gather(1, order)
    prong = torch.where(real, prong.gather(1, order), -1)
    columns = {
        "pt": pt,
        "eta": pos[..., 0],
        "phi": pos[..., 1],
        "delta_r": pos.norm(dim=-1),
        "log_pt": torch.where(real, pt.clamp_min(1e-12).log(), 0.0),
    }
    x = torch.stack([columns[f] for f in features], -1).float()
    return Jets(x, prong, n_prongs, axes)


@DATASETS.register("particle_sets")
class ParticleSets(Dataset):
    """Simulated jets (the module docstring): ``n_train`` / ``n_test`` per class, ``n_particles``
    particles each with ``features`` (pt, eta, phi, delta_r, log_pt), generators seeded by ``seed``."""

    kind = "set"
    default_eval_sets = SET_EVAL_SETS

    def __init__(
        self,
        n_particles: int = 16,
        features: Sequence[str] = ("pt", "eta", "phi"),
        n_train: int = 1000,
        n_test: int = 300,
        seed: int = 0,
    ) -> None:
        if n_particles < 3:
            raise ValueError(f"n_particles must be >= 3, got {n_particles}")
        for name, v in (("n_train", n_train), ("n_test", n_test)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        unknown = [f for f in features if f not in FEATURES]
        if unknown or not features or len(set(features)) != len(features):
            raise ValueError(f"features must be distinct names of {', '.join(FEATURES)}; got {list(features)}")
        self.n_particles, self.features, self.n_train, self.n_test, self.seed = (
            n_particles, tuple(features), n_train, n_test, seed,
        )  # fmt: skip

    def describe(self) -> DataInfo:
        return DataInfo(
            "set", (self.n_particles, len(self.features)), len(CLASSES), (("classes", CLASSES), ("features", self.features))
        )

    def _split(self, per_class: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(len(CLASSES)).repeat_interleave(per_class)
        y = y[torch.randperm(len(y), generator=g)]
        return sample_jets(y, self.n_particles, self.features, g).x, y

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x_tr, y_tr = self._split(self.n_train, torch.Generator().manual_seed(2 * self.seed))
        x_te, y_te = self._split(self.n_test, torch.Generator().manual_seed(2 * self.seed + 1))
        return x_tr, y_tr, x_te, y_te
