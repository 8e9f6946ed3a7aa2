"""Data sets behind one registry; ``load_data`` builds (and caches per process) a trial's tensors."""

from __future__ import annotations

import functools
from pathlib import Path

from kdtune.data import agreement, digits, linzen, mnist  # noqa: F401  (registrations)
from kdtune.data.base import DataBundle, DataInfo, Inputs, Split, num_rows, take, to_device
from kdtune.data.dataset import DATASETS, Dataset, DataSpec, EvalSetSpec, ImageDataset

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataInfo",
    "DataSpec",
    "Dataset",
    "EvalSetSpec",
    "ImageDataset",
    "Inputs",
    "Split",
    "load_data",
    "make_dataset",
    "num_rows",
    "take",
    "to_device",
]


def make_dataset(spec: DataSpec) -> Dataset:
    """The registered data set ``spec.name`` built with its params."""
    return DATASETS.get(spec.name)(**dict(spec.params))


@functools.lru_cache(maxsize=4)
def _load_cpu(spec: DataSpec, root: str | None) -> DataBundle:
    return make_dataset(spec).build(spec, Path(root) if root else None)


@functools.lru_cache(maxsize=4)
def _load_on(spec: DataSpec, root: str | None, device: str) -> DataBundle:
    return _load_cpu(spec, root).to(device)


def load_data(spec: DataSpec, root: str | Path | None, device: str = "cpu") -> DataBundle:
    """The data of ``spec`` on ``device``; cached so a reused Ray actor loads it once."""
    return _load_on(spec, str(root) if root else None, str(device))
