"""Data loaders: the IDX reader on files the test writes, the digits default, the real MNIST copy."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from kdtune.errors import DataError
from kdtune.train.data import DATASETS, DataSpec, load_data, make_dataset
from kdtune.train.data.base import split_train_val
from kdtune.train.data.mnist import FILES, MNIST, read_idx

from .conftest import SHARED_DATA


def _write_idx(path: Path, arr: np.ndarray, magic: int, gz: bool = True) -> None:
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fake_mnist(root: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        _write_idx(raw / (FILES[f"{split}_images"] + sfx), rng.integers(0, 256, (n, 28, 28)), 2051, gz)
        _write_idx(raw / (FILES[f"{split}_labels"] + sfx), np.arange(n) % 10, 2049, gz)
    return raw


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_torchvision_layout(tmp_path, gz):
    _fake_mnist(tmp_path, gz=gz)
    x_tr, y_tr, x_te, _ = MNIST().load_arrays(tmp_path)
    assert x_tr.shape == (30, 1, 28, 28) and x_te.shape == (10, 1, 28, 28)
    assert x_tr.dtype == torch.float32 and x_tr.min() >= 0 and x_tr.max() <= 1
    assert y_tr.tolist() == [i % 10 for i in range(30)]


def test_idx_reader_names_the_file_on_a_bad_magic_number(tmp_path):
    p = tmp_path / "bad-idx"
    p.write_bytes(struct.pack(">I", 1234) + b"\0" * 8)
    with pytest.raises(DataError, match=r"bad-idx: not an IDX uint8 file \(magic 1234"):
        read_idx(p)


def test_idx_reader_names_the_file_when_data_is_truncated(tmp_path):
    p = tmp_path / "short.gz"
    _write_idx(p, np.zeros((3, 2, 2)), 2051)
    raw = gzip.decompress(p.read_bytes())[:-1]
    p.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=r"short.gz: header says \[3, 2, 2\]"):
        read_idx(p)


def test_missing_mnist_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no MNIST IDX files found"):
        MNIST().check(tmp_path)
    with pytest.raises(DataError, match="needs a data folder"):
        MNIST().check(None)


def test_validation_split_is_disjoint_deterministic_and_sized():
    tr, val = split_train_val(100, 0.2, seed=3)
    tr2, val2 = split_train_val(100, 0.2, seed=3)
    assert len(val) == 20 and len(tr) == 80
    assert set(tr.tolist()).isdisjoint(val.tolist()) and torch.equal(val, val2) and torch.equal(tr, tr2)
    assert not torch.equal(split_train_val(100, 0.2, seed=4)[1], val)
    assert len(split_train_val(100, 7, seed=0)[1]) == 7


def test_digits_default_needs_no_files_and_builds_every_eval_set():
    cls = DATASETS.get("digits")
    spec = DataSpec("digits", eval_sets=tuple(cls.default_eval_sets.values()))
    b = load_data(spec, None)
    assert b.info.input_shape == (1, 12, 12) and b.info.num_classes == 10
    assert len(b.train) + len(b.val) + len(b.evals["test"]) == 1797
    assert set(b.evals) == {"val", "test", "translated", "scaled"}
    assert torch.equal(b.evals["translated"].y, b.evals["test"].y)
    assert not torch.equal(b.evals["translated"].x, b.evals["test"].x)
    assert make_dataset(spec).describe() == b.info


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="needs ../shared/data/MNIST")
def test_real_mnist_label_counts_match_the_published_counts():
    x_tr, y_tr, _, y_te = MNIST().load_arrays(SHARED_DATA)
    assert y_tr.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert y_te.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x_tr.shape == (60000, 1, 28, 28)
