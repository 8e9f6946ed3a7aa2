"""Data sets behind one registry; ``load_data`` builds (and caches per process) a trial's tensors."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch

from kdtune.train.data import agreement, digits, jets, linzen, mnist, modelnet, pointclouds, sets  # noqa: F401  (registrations)
from kdtune.train.data.base import DataBundle, DataInfo
from kdtune.train.data.dataset import DATASETS, EVAL_SOURCES, Dataset, DataSpec, EvalSetSpec

__all__ = [
    "DATASETS",
    "EVAL_SOURCES",
    "DataBundle",
    "DataInfo",
    "DataSpec",
    "EvalSetSpec",
    "data_fingerprint",
    "fingerprint_bundle",
    "load_data",
    "make_dataset",
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


def _hash_tensor(h: hashlib._Hash, name: str, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def fingerprint_bundle(bundle: DataBundle) -> str:
    """SHA-256 (first 16 hex digits) of every tensor of every split (inputs, labels, metadata), so a
    trial's id changes whenever the data actually loaded changes, even if its size does not."""
    h = hashlib.sha256()
    splits = {"train": bundle.train, "val": bundle.val, **{f"eval:{k}": v for k, v in bundle.evals.items()}}
    for name, split in splits.items():
        x = split.x if isinstance(split.x, dict) else {"x": split.x}
        for key in sorted(x):
            _hash_tensor(h, f"{name}.{key}", x[key])
        _hash_tensor(h, f"{name}.y", split.y)
        for key in sorted(split.meta):
            _hash_tensor(h, f"{name}.meta.{key}", split.meta[key])
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=64)  # short strings: every fold of a k-fold sweep (and a few sweeps) stays cached
def _fingerprint(spec: DataSpec, root: str | None) -> str:
    return fingerprint_bundle(_load_cpu(spec, root))


def data_fingerprint(spec: DataSpec, root: str | Path | None) -> str:
    """The fingerprint of the data ``spec`` loads from ``root`` (computed once per process)."""
    return _fingerprint(spec, str(root) if root else None)
