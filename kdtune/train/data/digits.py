"""The embedded default: scikit-learn's bundled handwritten digits (8×8), no download needed."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from kdtune.train.data.dataset import DATASETS, EvalSetSpec, ImageDataset


@DATASETS.register("digits")
class Digits(ImageDataset):
    """sklearn ``load_digits``: 1,797 8×8 images (0-16 scaled to [0, 1]), zero-padded by ``pad`` px.

    A fixed ``test_fraction`` is held out with a fixed seed, so every sweep sees the same test set.
    The padding plays the role of MNIST's empty border, so translated digits stay on the canvas; the
    translation is 1 px (8% of the 12-px canvas, as MNIST-C's 3 px are 11% of 28).
    """

    default_eval_sets: ClassVar[dict[str, EvalSetSpec]] = {
        **ImageDataset.default_eval_sets,
        "translated": EvalSetSpec("translated", "test", "translate", (("shift", 1),)),
    }

    def __init__(self, pad: int = 2, test_fraction: float = 0.25) -> None:
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.pad, self.test_fraction = pad, test_fraction
        self.image_shape = (1, 8 + 2 * pad, 8 + 2 * pad)

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        images, target = _digits_arrays()
        x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = torch.nn.functional.pad(x, (self.pad,) * 4)
        y = torch.tensor(target, dtype=torch.int64)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(20150101))
        n_test = round(self.test_fraction * len(y))
        te, tr = perm[:n_test].sort().values, perm[n_test:].sort().values
        return x[tr], y[tr], x[te], y[te]


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images 1797×8×8, targets) of scikit-learn's digits, as ``load_digits`` returns them: read from its
    bundled CSV without importing scikit-learn (a second or two in every worker process), else through it."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)
