"""The data-set interface and the shared pipeline of array data sets (train/val split, corrupted eval sets)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from kdtune.registry import Registry
from kdtune.train.data.base import DataBundle, DataInfo, Split, split_train_val
from kdtune.train.data.corruptions import CORRUPTIONS

EVAL_SOURCES = ("test", "val", "train")  # the splits an eval set can read


@dataclass(frozen=True)
class EvalSetSpec:
    """An evaluation set: a base split (``test``, ``val`` or ``train``, the split the model trains on) and a
    corruption applied to it."""

    name: str
    source: str = "test"
    corruption: str = "identity"
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class DataSpec:
    """Everything that determines a trial's data (the data folder is not part of it)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    val_size: float | int = 0.1
    split_seed: int = 0
    corruption_seed: int = 0
    eval_sets: tuple[EvalSetSpec, ...] = field(default_factory=tuple)
    folds: int = 1  # k > 1: k-fold cross-validation over the training pool; fold i is the validation split
    fold: int = 0  # which fold is held out (0 … folds-1)
    invariance: tuple[tuple[str, Any], ...] | None = None  # an augmentation (name and params) whose IM evaluation measures


def train_val_indices(n: int, spec: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) into a data set's training pool of ``n`` examples: a fixed random hold-out of
    ``spec.val_size``, or with ``spec.folds = k > 1`` the ``spec.fold``-th of k disjoint folds that together
    cover the pool (sizes differ by at most one), the other k-1 folds training. Shuffled by ``split_seed``."""
    if spec.folds <= 1:
        return split_train_val(n, spec.val_size, spec.split_seed)
    if not 0 <= spec.fold < spec.folds:
        raise ValueError(f"fold {spec.fold} is not one of the {spec.folds} folds 0..{spec.folds - 1}")
    if n < spec.folds:
        raise ValueError(f"{spec.folds} folds need at least {spec.folds} examples, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.split_seed))
    held = torch.zeros(n, dtype=torch.bool)
    held[perm[torch.arange(n) % spec.folds == spec.fold]] = True
    return (~held).nonzero().flatten(), held.nonzero().flatten()


class Dataset:
    """Base class of registered data sets. Subclasses take their params as keyword arguments."""

    kind: ClassVar[str] = "image"
    needs_root: ClassVar[bool] = False
    default_eval_sets: ClassVar[dict[str, EvalSetSpec]] = {}

    def describe(self) -> DataInfo:
        """Input shape and classes without loading anything (used to validate models up front)."""
        raise NotImplementedError

    def check(self, root: Path | None) -> None:
        """Raise DataError (one line) if the data cannot be read from ``root``; cheap, before any work."""

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(training pool inputs, labels, test inputs, labels): float32 inputs, int64 labels."""
        raise NotImplementedError

    def build(self, spec: DataSpec, root: Path | None) -> DataBundle:
        """Load the data and build train, val and every eval set: by default from :meth:`load_arrays`, train/val
        (or a k-fold) by ``train_val_indices``, eval sets as corruptions of the test, val or training split."""
        x_tr, y_tr, x_te, y_te = self.load_arrays(root)
        info = self.describe()
        for what, x in (("training", x_tr), ("test", x_te)):
            if tuple(x.shape[1:]) != info.input_shape:
                raise ValueError(
                    f"{type(self).__name__} loaded {what} inputs of shape {tuple(x.shape[1:])}, described {info.input_shape}"
                )
        return split_bundle(info, spec, x_tr, y_tr, x_te, y_te)


DATASETS: Registry[type[Dataset]] = Registry("data set")


def eval_seed(name: str, seed: int) -> int:
    """The seed of the generator that draws eval set ``name``'s corruption (or invariance copy)."""
    return (zlib.crc32(name.encode()) + 1_000_003 * seed) % (2**63)


def split_bundle(
    info: DataInfo, spec: DataSpec, x_tr: torch.Tensor, y_tr: torch.Tensor, x_te: torch.Tensor, y_te: torch.Tensor
) -> DataBundle:
    """A training pool and a test set → train and val (``train_val_indices``: a hold-out or a fold) and every
    eval set of ``spec``: the test, val or training split, corrupted with its own seeded generator."""
    tr_idx, val_idx = train_val_indices(len(y_tr), spec)
    train, val = Split(x_tr[tr_idx], y_tr[tr_idx]), Split(x_tr[val_idx], y_tr[val_idx])
    base = {"test": Split(x_te, y_te), "val": val, "train": train}
    evals: dict[str, Split] = {"val": val}
    for es in spec.eval_sets:
        src = base[es.source]
        if es.corruption == "identity":
            evals[es.name] = src
            continue
        gen = torch.Generator().manual_seed(eval_seed(es.name, spec.corruption_seed))
        evals[es.name] = Split(CORRUPTIONS.get(es.corruption)(src.x, generator=gen, **dict(es.params)), src.y)
    return DataBundle(info, train, val, evals)


class ImageDataset(Dataset):
    """Images in [0, 1] (N×C×H×W) with a fixed test split; OOD sets are corruptions of the test split."""

    kind = "image"
    num_classes: ClassVar[int] = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)
    default_eval_sets: ClassVar[dict[str, EvalSetSpec]] = {
        "test": EvalSetSpec("test"),
        "translated": EvalSetSpec("translated", "test", "translate", (("shift", 3),)),
        "scaled": EvalSetSpec("scaled", "test", "scale", (("factor", 0.7),)),
    }

    def describe(self) -> DataInfo:
        return DataInfo("image", self.image_shape, self.num_classes)
