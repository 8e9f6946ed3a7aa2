"""MNIST from torchvision's on-disk layout (``<root>/MNIST/raw/*-ubyte[.gz]``), read without torchvision."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from kdtune.errors import DataError
from kdtune.train.data.dataset import DATASETS, ImageDataset

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def find_raw_dir(root: Path) -> Path:
    """The folder holding the IDX files: ``root/MNIST/raw``, ``root/raw`` or ``root`` itself."""
    for cand in (root / "MNIST" / "raw", root / "raw", root):
        if all(_find_file(cand, f) for f in FILES.values()):
            return cand
    raise DataError(
        f"{root}: no MNIST IDX files found; expected {', '.join(FILES.values())} (optionally .gz) "
        f"in {root / 'MNIST' / 'raw'} (torchvision's layout; `kdtune download mnist --data-dir {root}` fetches them)"
    )


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array; DataError naming the file if malformed."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise DataError(f"{path}: not an IDX uint8 file (magic {magic}, expected {IMAGE_MAGIC} or {LABEL_MAGIC})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"{path}: header says {dims} ({expected} bytes of data) but the file holds {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


@DATASETS.register("mnist")
class MNIST(ImageDataset):
    """MNIST, 60,000 train / 10,000 test, 28×28 grey images scaled to [0, 1]."""

    needs_root = True

    def check(self, root: Path | None) -> None:
        if root is None:
            raise DataError("data set 'mnist' needs a data folder: pass --data-dir (the folder holding MNIST/raw)")
        find_raw_dir(root)

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check(root)
        folder = find_raw_dir(root)  # type: ignore[arg-type]
        arrays = {k: read_idx(_find_file(folder, stem)) for k, stem in FILES.items()}  # type: ignore[arg-type]
        out = []
        for split in ("train", "test"):
            imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if imgs.ndim != 3 or labels.ndim != 1 or len(imgs) != len(labels):
                raise DataError(f"{folder}: {split} images {imgs.shape} do not match labels {labels.shape}")
            if labels.max() > 9:
                raise DataError(f"{folder}: {split} labels must be digits 0-9, found {int(labels.max())}")
            out += [torch.from_numpy(imgs.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))]
        x_tr, y_tr, x_te, y_te = out
        return x_tr, y_tr, x_te, y_te


def download_mnist(root: Path) -> Path:
    """Fetch MNIST into ``root/MNIST/raw`` with torchvision (an optional extra, imported only here)."""
    try:
        from torchvision.datasets import MNIST as TorchvisionMNIST
    except Exception as e:  # torchvision's PyPI build fails to import on some CPU-only machines
        raise DataError(f"downloading MNIST needs torchvision (pip install 'kdtune[download]'): {e}") from None
    TorchvisionMNIST(str(root), train=True, download=True)
    TorchvisionMNIST(str(root), train=False, download=True)
    return find_raw_dir(root)
