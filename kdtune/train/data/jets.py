"""The hls4ml LHC jet data set, 150-particle version (Pierini et al. 2020, Zenodo 3602260), from files.

``--data-dir`` holds ``train/`` and ``val/`` as the two archives unpack (``hls4ml_LHCjet_150p_train`` and ``..._val``),
each a folder of ``.h5`` files with ``jetConstituentList`` (N×150×16 per-particle features, named in
``particleFeatureNames``, which lists a 17th, ``j1_pdgid``, that is not stored) and ``jets`` (N×59 jet features, named
in ``jetFeatureNames``, whose ``j_g, j_q, j_w, j_z, j_t`` columns are the one-hot labels; unnamed, they are the 5
columns before the last). ``val/`` is the test set; validation (or the k folds) come out of ``train/``.

Processed as Odagiu et al. (2024) do: particles with pT <= ``min_pt`` GeV are dropped (jets left with none are dropped),
the ``n_particles`` highest-pT particles are kept in descending pT order and zero rows pad the rest; the features are
``j1_pt``, ``j1_etarel``, ``j1_phirel`` (pT, η and φ relative to the jet axis) unless ``features`` names others; with
``norm: standard`` each feature is standardised by the mean and std of the real (non-padding) particles of ``train/``,
padding staying 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtune.errors import DataError
from kdtune.train.data.base import DataInfo
from kdtune.train.data.dataset import DATASETS, Dataset
from kdtune.train.data.modelnet import import_h5py
from kdtune.train.data.sets import CLASSES, SET_EVAL_SETS

PARTICLE_FEATURES = (
    "j1_px", "j1_py", "j1_pz", "j1_e", "j1_erel", "j1_pt", "j1_ptrel", "j1_eta",
    "j1_etarel", "j1_etarot", "j1_phi", "j1_phirel", "j1_phirot", "j1_deltaR", "j1_costheta", "j1_costhetarel",
)  # fmt: skip
LABELS = ("j_g", "j_q", "j_w", "j_z", "j_t")


def _names(f: Any, key: str) -> list[str] | None:
    if key not in f:
        return None
    raw = f[key][()]
    return [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(raw).reshape(-1)]


def read_jet_file(path: Path, features: Sequence[str], n_particles: int, min_pt: float) -> tuple[np.ndarray, np.ndarray]:
    """(particles N×n_particles×F float32, labels N int64) of one file, processed as the module says;
    DataError naming the file if a dataset is missing or misshapen or a named column is absent."""
    h5py = import_h5py()
    try:
        with h5py.File(path, "r") as f:
            for key in ("jetConstituentList", "jets"):
                if key not in f:
                    raise DataError(f"{path}: no dataset {key!r} (has {', '.join(f.keys()) or 'none'})")
            const, jets = f["jetConstituentList"][()], f["jets"][()]
            pnames, jnames = _names(f, "particleFeatureNames"), _names(f, "jetFeatureNames")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    if const.ndim != 3 or jets.ndim != 2 or len(const) != len(jets):
        raise DataError(
            f"{path}: jetConstituentList {const.shape} and jets {jets.shape} must be N×particles×features and N×columns"
        )
    pnames = pnames if pnames is not None else list(PARTICLE_FEATURES)
    if len(pnames) == const.shape[2] + 1 and "j1_pdgid" in pnames:  # as distributed: 17 names, pdgid not stored
        pnames.remove("j1_pdgid")
    if len(pnames) != const.shape[2]:
        raise DataError(f"{path}: jetConstituentList has {const.shape[2]} features per particle, {len(pnames)} named")
    if jnames is None:  # unnamed: the labels are the 5 columns before the last (j_undef), as distributed
        if jets.shape[1] < 6:
            raise DataError(f"{path}: jets has {jets.shape[1]} columns, too few to hold j_g … j_t")
        label_cols = list(range(jets.shape[1] - 6, jets.shape[1] - 1))
    elif len(jnames) != jets.shape[1]:
        raise DataError(f"{path}: jets has {jets.shape[1]} columns, {len(jnames)} named in jetFeatureNames")
    else:
        missing = [n for n in LABELS if n not in jnames]
        if missing:
            raise DataError(f"{path}: jetFeatureNames lacks the label columns {', '.join(missing)}")
        label_cols = [jnames.index(n) for n in LABELS]
    missing = [n for n in ("pt", *features) if f"j1_{n}" not in pnames]
    if missing:
        raise DataError(f"{path}: particleFeatureNames lacks {', '.join('j1_' + n for n in missing)}")
    cols = [pnames.index(f"j1_{n}") for n in features]
    pt = const[:, :, pnames.index("j1_pt")]
    order = np.argsort(-pt, axis=1, kind="stable")[:, :n_particles]
    kept_pt = np.take_along_axis(pt, order, 1)
    x = np.take_along_axis(const[:, :, cols], order[..., None], 1).astype(np.float32)
    real = kept_pt > min_pt
    x = x * real[..., None]
    if x.shape[1] < n_particles:
        x = np.pad(x, ((0, 0), (0, n_particles - x.shape[1]), (0, 0)))
    onehot = jets[:, label_cols]
    keep = real.any(1) & (onehot.sum(1) == 1)
    return x[keep], onehot[keep].argmax(1).astype(np.int64)


@DATASETS.register("jets_hls4ml")
class JetsHLS4ML(Dataset):
    """hls4ml LHC jets (the module docstring): 5 classes, ``n_particles`` particles with ``features``;
    ``max_jets`` > 0 keeps the first that many jets of each split (files in name order)."""

    kind = "set"
    needs_root = True
    default_eval_sets = SET_EVAL_SETS

    def __init__(
        self,
        n_particles: int = 16,
        features: Sequence[str] = ("pt", "etarel", "phirel"),
        min_pt: float = 2.0,
        max_jets: int = 0,
        norm: str = "standard",
    ) -> None:
        if not 1 <= n_particles <= 150:
            raise ValueError(f"n_particles must be in 1..150, got {n_particles}")
        known = [n.removeprefix("j1_") for n in PARTICLE_FEATURES]
        if not features or any(f not in known for f in features) or len(set(features)) != len(features):
            raise ValueError(f"features must be distinct names of {', '.join(known)}; got {list(features)}")
        if max_jets < 0:
            raise ValueError(f"max_jets must be >= 0 (0: all), got {max_jets}")
        if norm not in ("standard", "none"):
            raise ValueError(f"norm must be 'standard' or 'none', got {norm!r}")
        self.n_particles, self.features, self.min_pt, self.max_jets, self.norm = (
            n_particles, tuple(features), min_pt, max_jets, norm,
        )  # fmt: skip

    def describe(self) -> DataInfo:
        return DataInfo("set", (self.n_particles, len(self.features)), 5, (("classes", CLASSES), ("features", self.features)))

    @staticmethod
    def _files(root: Path, split: str) -> list[Path]:
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder (jets_hls4ml reads train/ and val/ under --data-dir)")
        files = sorted(p for p in folder.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())
        if not files:
            raise DataError(f"{folder}: no .h5 files")
        return files

    def check(self, root: Path | None) -> None:
        if root is None:
            raise DataError("data set 'jets_hls4ml' needs a data folder: pass --data-dir (the folder holding train/ and val/)")
        import_h5py()
        for split in ("train", "val"):
            self._files(root, split)

    def _read(self, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys, n = [], [], 0
        for path in self._files(root, split):
            x, y = read_jet_file(path, self.features, self.n_particles, self.min_pt)
            xs.append(x)
            ys.append(y)
            n += len(y)
            if self.max_jets and n >= self.max_jets:
                break
        x, y = np.concatenate(xs), np.concatenate(ys)
        if self.max_jets:
            x, y = x[: self.max_jets], y[: self.max_jets]
        return torch.from_numpy(x), torch.from_numpy(y)

    def load_arrays(self, root: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check(root)
        x_tr, y_tr = self._read(root, "train")  # type: ignore[arg-type]
        x_te, y_te = self._read(root, "val")  # type: ignore[arg-type]
        if self.norm == "standard":
            real = (x_tr != 0).any(-1)
            mean, std = x_tr[real].double().mean(0), x_tr[real].double().std(0).clamp_min(1e-12)

            def scale(x: torch.Tensor) -> torch.Tensor:
                return torch.where((x != 0).any(-1, keepdim=True), (x - mean) / std, 0.0).float()

            x_tr, x_te = scale(x_tr), scale(x_te)
        return x_tr, y_tr, x_te, y_te
