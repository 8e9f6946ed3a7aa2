"""ModelNet40 point clouds (Wu et al. 2015) from either of its two common distributions, under ``--data-dir``:

* ``modelnet40_normal_resampled/`` (PointNet++): ``modelnet40_shape_names.txt`` (one class a line),
  ``modelnet40_train.txt`` / ``modelnet40_test.txt`` (one shape id a line, e.g. ``night_stand_0001``),
  and per-class folders of ``<id>.txt`` files, one point a line: ``x,y,z,nx,ny,nz`` (normals unused);
* ``modelnet40_ply_hdf5_2048/`` (PointNet, DGCNN): ``shape_names.txt``, ``train_files.txt`` /
  ``test_files.txt`` listing ``ply_data_train*.h5`` / ``ply_data_test*.h5`` (read by file name from the
  folder), each with ``data`` (N×2048×3) and ``label`` (N×1).

Each cloud is downsampled to ``n_points`` points (a random subset, seeded by ``seed``) and scaled as
usual (centred on its mean, its farthest point at distance 1). The test split is the test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtune.errors import DataError
from kdtune.train.data.base import DataInfo
from kdtune.train.data.dataset import DATASETS, Dataset
from kdtune.train.data.pointclouds import POINT_EVAL_SETS, unit_sphere
from kdtune.train.data.text import read_lines

TEXT_DIR, HDF5_DIR = "modelnet40_normal_resampled", "modelnet40_ply_hdf5_2048"
TEXT_FILES = {"names": "modelnet40_shape_names.txt", "train": "modelnet40_train.txt", "test": "modelnet40_test.txt"}
HDF5_FILES = {"names": "shape_names.txt", "train": "train_files.txt", "test": "test_files.txt"}
LAYOUTS = {"normal_resampled": (TEXT_DIR, TEXT_FILES), "hdf5": (HDF5_DIR, HDF5_FILES)}


def find_layout(root: Path, layout: str = "auto") -> tuple[str, Path]:
    """(layout, folder) of the ModelNet40 copy under ``root`` (its layout folder, or ``root`` itself)."""
    wanted = list(LAYOUTS) if layout == "auto" else [layout]
    for name in wanted:
        folder, files = LAYOUTS[name]
        for cand in (root / folder, root):
            if all((cand / f).is_file() for f in files.values()):
                return name, cand
    expected = " or ".join(f"{LAYOUTS[n][0]}/ ({', '.join(LAYOUTS[n][1].values())})" for n in wanted)
    raise DataError(f"{root}: no ModelNet40 found; expected {expected} under --data-dir")


def read_list(path: Path) -> list[str]:
    """The non-empty lines of a list file, stripped."""
    return [s.strip() for s in read_lines(path) if s.strip()]


def read_points_txt(path: Path) -> np.ndarray:
    """One ``x,y,z[,nx,ny,nz]`` file of the resampled layout as a P×3 float32 array (normals dropped)."""
    if not path.is_file():
        raise DataError(f"{path}: missing (listed in the split file)")
    try:
        a = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not comma-separated numbers x,y,z,nx,ny,nz ({str(e).splitlines()[0]})") from None
    if a.shape[1] not in (3, 6) or len(a) == 0:
        raise DataError(f"{path}: expected lines of 6 values x,y,z,nx,ny,nz (or 3), got {a.shape[1]} per line")
    return a[:, :3]


def import_h5py() -> Any:
    """The h5py module, imported on first use (an optional extra)."""
    try:
        import h5py
    except ImportError:
        raise DataError("reading HDF5 data files needs h5py: pip install 'kdtune[data]'") from None
    return h5py


def read_h5(path: Path, shapes: dict[str, tuple[int | None, ...]]) -> dict[str, np.ndarray]:
    """The named datasets of one HDF5 file; DataError naming the file if one is missing or misshapen
    (``shapes``: the expected trailing dimensions after N, ``None`` for any size)."""
    h5py = import_h5py()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for key, dims in shapes.items():
                if key not in f:
                    raise DataError(f"{path}: no dataset {key!r} (has {', '.join(f.keys()) or 'none'})")
                a = f[key][()]
                ok = a.ndim == len(dims) + 1 and all(d is None or a.shape[i + 1] == d for i, d in enumerate(dims))
                if not ok:
                    want = "×".join(["N", *("*" if d is None else str(d) for d in dims)])
                    raise DataError(f"{path}: dataset {key!r} has shape {a.shape}, expected {want}")
                out[key] = a
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path}: datasets hold different numbers of examples {lengths}")
    return out


def downsample(cloud: np.ndarray, n_points: int, g: torch.Generator, path: Path) -> torch.Tensor:
    """A random subset of ``n_points`` points of one cloud (P×3), as float32; DataError naming ``path``
    if the cloud has fewer."""
    if len(cloud) < n_points:
        raise DataError(f"{path}: a cloud holds {len(cloud)} points, fewer than n_points={n_points}")
    return torch.from_numpy(np.ascontiguousarray(cloud, dtype=np.float32))[torch.randperm(len(cloud), generator=g)[:n_points]]


@DATASETS.register("modelnet40")
class ModelNet40(Dataset):
    """ModelNet40 (the module docstring): 9,843 training and 2,468 test clouds of 40 classes."""

    kind = "points"
    needs_root = True
    default_eval_sets = POINT_EVAL_SETS

    def __init__(self, n_points: int = 1000, seed: int = 0, layout: str = "auto") -> None:
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        if layout not in ("auto", *LAYOUTS):
            raise ValueError(f"layout must be one of auto, {', '.join(LAYOUTS)}; got {layout!r}")
        self.n_points, self.seed, self.layout = n_points, seed, layout

    def describe(self) -> DataInfo:
        return DataInfo("points", (self.n_points, 3), 40)

    def check(self, root: Path | None) -> None:
        if root is None:
            raise DataError(
                f"data set 'modelnet40' needs a data folder: pass --data-dir (the folder holding {TEXT_DIR} or {HDF5_DIR})"
            )
        find_layout(root, self.layout)

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check(root)
        layout, folder = find_layout(root, self.layout)  # type: ignore[arg-type]
        files = LAYOUTS[layout][1]
        names = read_list(folder / files["names"])
        if len(names) != 40 or len(set(names)) != 40:
            raise DataError(f"{folder / files['names']}: expected 40 distinct class names, got {len(names)}")
        read = self._read_text if layout == "normal_resampled" else self._read_hdf5
        x_tr, y_tr = read(folder, folder / files["train"], names, torch.Generator().manual_seed(2 * self.seed))
        x_te, y_te = read(folder, folder / files["test"], names, torch.Generator().manual_seed(2 * self.seed + 1))
        return x_tr, y_tr, x_te, y_te

    def _read_text(self, folder: Path, listing: Path, names: list[str], g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = {n: i for i, n in enumerate(names)}
        ids = read_list(listing)
        if not ids:
            raise DataError(f"{listing}: lists no shapes")
        labels, paths = [], []
        for shape_id in ids:
            cls = shape_id.rsplit("_", 1)[0]
            if cls not in index:
                raise DataError(f"{listing}: shape {shape_id!r} is of no class in {TEXT_FILES['names']}")
            labels.append(index[cls])
            paths.append(folder / cls / f"{shape_id}.txt")
        x = torch.stack([downsample(read_points_txt(p), self.n_points, g, p) for p in paths])
        return unit_sphere(x.double()).float(), torch.tensor(labels, dtype=torch.int64)

    def _read_hdf5(self, folder: Path, listing: Path, names: list[str], g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        files = [folder / Path(s).name for s in read_list(listing)]
        if not files:
            raise DataError(f"{listing}: lists no HDF5 files")
        xs, ys = [], []
        for path in files:
            arrays = read_h5(path, {"data": (None, 3), "label": (1,)})
            labels = arrays["label"].reshape(-1).astype(np.int64)
            if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
                raise DataError(f"{path}: labels must be class indices 0-{len(names) - 1}, found {labels.min()}..{labels.max()}")
            xs += [downsample(cloud, self.n_points, g, path) for cloud in arrays["data"]]
            ys.append(torch.from_numpy(labels))
        return unit_sphere(torch.stack(xs).double()).float(), torch.cat(ys)
