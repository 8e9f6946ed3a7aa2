"""Data sets given as fixed tensors (a training pool and a test set) of any input kind: points, sets."""

from __future__ import annotations

from pathlib import Path

import torch

from kdtune.train.data.base import DataBundle
from kdtune.train.data.dataset import Dataset, DataSpec, split_bundle


class ArrayDataset(Dataset):
    """A training pool and a test set as tensors; train/val (or a k-fold) by ``train_val_indices``,
    eval sets as corruptions of the test or val split, each with its own seeded generator."""

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train pool inputs, labels, test inputs, labels): float32 inputs, int64 labels."""
        raise NotImplementedError

    def build(self, spec: DataSpec, root: Path | None) -> DataBundle:
        x_tr, y_tr, x_te, y_te = self.load_arrays(root)
        info = self.describe()
        for what, x in (("training", x_tr), ("test", x_te)):
            if tuple(x.shape[1:]) != info.input_shape:
                raise ValueError(
                    f"{type(self).__name__} loaded {what} inputs of shape {tuple(x.shape[1:])}, described {info.input_shape}"
                )
        return split_bundle(info, spec, x_tr, y_tr, x_te, y_te)


def unit_sphere(x: torch.Tensor) -> torch.Tensor:
    """Standard point-cloud scaling (as for ModelNet): each cloud (N×P×3) centred on its mean and divided
    by its largest distance from it, so it fits the unit sphere and touches it."""
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=-1).amax(1).clamp_min(1e-12)[:, None, None]
