"""Point-cloud and set data: the embedded generators against their definitions, the ModelNet40 and hls4ml
jet loaders on small files written here, k-fold splits, and the point/set corruptions and augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kdtune.errors import DataError
from kdtune.train.data import DATASETS, DataSpec, load_data
from kdtune.train.data.augment import AUGMENTATIONS, random_permute, random_translate_points
from kdtune.train.data.corruptions import CORRUPTIONS, permute_points, translate_points
from kdtune.train.data.jets import PARTICLE_FEATURES, JetsHLS4ML
from kdtune.train.data.modelnet import ModelNet40, find_layout
from kdtune.train.data.pointclouds import SHAPES, Shapes, random_rotations, sample_shapes
from kdtune.train.data.sets import CLASSES, ParticleSets, sample_jets

h5py = pytest.importorskip("h5py")


def _rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of one example (P×F) in lexicographic order: equal results ⇔ equal multisets."""
    x = x.double()
    for col in reversed(range(x.shape[1])):
        x = x[x[:, col].argsort(stable=True)]
    return x


def _distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise distances within each example, exactly (no matrix-product shortcut)."""
    return torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")


# ---------------------------------------------------------------- shapes


def test_shapes_are_reproducible_and_seeded():
    small = {"n_points": 32, "n_train": 3, "n_test": 2}
    a, b, c = (
        Shapes(seed=1, **small).load_arrays(None),
        Shapes(seed=1, **small).load_arrays(None),
        Shapes(seed=2, **small).load_arrays(None),
    )
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta, tb)
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[2][: len(a[0])])  # test set drawn apart from the training pool


def test_shapes_layout_labels_and_unit_sphere_scaling():
    ds = Shapes(n_points=40, n_train=4, n_test=2, shapes=["sphere", "torus", "helix"])
    assert ds.describe().kind == "points" and ds.describe().input_shape == (40, 3) and ds.describe().num_classes == 3
    x_tr, y_tr, x_te, y_te = ds.load_arrays(None)
    assert x_tr.shape == (12, 40, 3) and x_te.shape == (6, 40, 3) and x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert torch.bincount(y_tr).tolist() == [4, 4, 4] and torch.bincount(y_te).tolist() == [2, 2, 2]
    torch.testing.assert_close(x_tr.mean(1), torch.zeros(12, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(x_tr.norm(dim=-1).amax(1), torch.ones(12))


def test_a_noiseless_sphere_lies_on_a_sphere():
    x = sample_shapes(torch.zeros(5, dtype=torch.long), ["sphere"], 200, 0.0, torch.Generator().manual_seed(0)).double()
    for p in x:  # least-squares sphere |p|² = 2 c·p + k, then every |p - c| is the radius
        a = torch.cat([2 * p, torch.ones(len(p), 1, dtype=p.dtype)], 1)
        sol = torch.linalg.lstsq(a, (p**2).sum(1, keepdim=True)).solution
        r = (p - sol[:3, 0]).norm(dim=1)
        assert (r.max() - r.min()).item() < 1e-5


def test_a_noiseless_cube_has_every_point_on_a_face_of_a_cube():
    x = sample_shapes(torch.zeros(4, dtype=torch.long), ["cube"], 300, 0.0, torch.Generator().manual_seed(1)).double()
    lo, hi = x.amin(1), x.amax(1)  # N×3: the bounding box
    side = hi - lo
    torch.testing.assert_close(side, side[:, :1].expand(-1, 3), atol=1e-6, rtol=0)  # equal edges: a cube
    to_face = torch.minimum(x - lo[:, None], hi[:, None] - x).amin(-1)  # distance to the nearest face plane
    assert to_face.max().item() < 1e-6
    assert ((x > lo[:, None] + 0.05) & (x < hi[:, None] - 0.05)).all(-1).sum() == 0  # none inside


def test_noise_moves_points_off_the_surface():
    x = sample_shapes(torch.zeros(3, dtype=torch.long), ["cube"], 300, 0.05, torch.Generator().manual_seed(1)).double()
    lo, hi = x.amin(1), x.amax(1)
    assert torch.minimum(x - lo[:, None], hi[:, None] - x).amin(-1).median() > 0.005


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_samples_finite_distinct_points(name):
    x = sample_shapes(torch.zeros(2, dtype=torch.long), [name], 64, 0.0, torch.Generator().manual_seed(2))
    assert x.shape == (2, 64, 3) and torch.isfinite(x).all()
    assert _distances(x).add(torch.eye(64) * 9).amin() > 0  # no repeated points


def test_rotation_and_translation_are_rigid_motions_of_the_same_clouds():
    y = torch.arange(10) % len(SHAPES)
    names = list(SHAPES)
    plain = sample_shapes(y, names, 50, 0.01, torch.Generator().manual_seed(3))
    rotated = sample_shapes(y, names, 50, 0.01, torch.Generator().manual_seed(3), rotate=True)
    moved = sample_shapes(y, names, 50, 0.01, torch.Generator().manual_seed(3), translate=0.3)
    torch.testing.assert_close(_distances(rotated), _distances(plain), atol=1e-5, rtol=0)
    assert not torch.allclose(rotated, plain, atol=1e-3)
    shift = moved - plain
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), atol=1e-6, rtol=0)
    assert shift.abs().max() <= 0.3 + 1e-6 and shift.abs().max() > 0.01
    r = random_rotations(20, torch.Generator().manual_seed(0))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=r.dtype).expand(20, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(20, dtype=r.dtype))


@pytest.mark.parametrize("bad", [{"shapes": ["sphere", "blob"]}, {"shapes": ["sphere"]}, {"n_points": 0}, {"noise": -1.0}])
def test_shapes_rejects_bad_params_naming_them(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Shapes(**bad)


# ---------------------------------------------------------------- particle sets


def test_particle_sets_are_reproducible_and_seeded():
    a, b, c = (ParticleSets(n_train=4, n_test=2, seed=s).load_arrays(None) for s in (0, 0, 1))
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta, tb)
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (20, 16, 3) and a[0].dtype == torch.float32 and torch.bincount(a[1]).tolist() == [4] * 5


def test_jets_have_the_prongs_of_their_class_and_are_sorted_by_pt():
    y = torch.arange(5).repeat_interleave(400)
    jets = sample_jets(y, 16, ("pt", "eta", "phi", "delta_r"), torch.Generator().manual_seed(0))
    assert CLASSES == ("g", "q", "w", "z", "t")
    assert jets.n_prongs.tolist() == [1] * 800 + [2] * 800 + [3] * 400
    real = jets.prong >= 0
    assert (jets.prong < jets.n_prongs[:, None]).all()
    used = torch.zeros(len(y), 3, dtype=torch.long).scatter_add(1, jets.prong.clamp_min(0), real.long()) > 0
    assert (used.sum(1) <= jets.n_prongs).all()
    assert used[y == 4].sum(1).float().mean() > 2.5  # tops use all three prongs (almost always)
    pt = jets.x[..., 0]
    assert (pt[:, :-1] >= pt[:, 1:]).all()  # descending pT, padding (0) last
    torch.testing.assert_close(pt.sum(1), torch.ones(len(y)))
    assert (jets.x[~real] == 0).all() and (pt[real] > 0).all()
    torch.testing.assert_close(jets.x[..., 3], jets.x[..., 1:3].norm(dim=-1))  # ΔR from Δη, Δφ
    torch.testing.assert_close((jets.x[..., :1] * jets.x[..., 1:3]).sum(1), torch.zeros(len(y), 2), atol=1e-6, rtol=0)
    sep = (jets.axes[:, 0] - jets.axes[:, 1]).norm(dim=-1)
    assert abs(sep[y == 2].mean().item() - 0.30) < 0.01 and abs(sep[y == 3].mean().item() - 0.40) < 0.01
    assert (jets.axes[y < 2] == 0).all()
    assert real[y == 0].sum(1).float().mean() > real[y == 1].sum(1).float().mean() + 3  # gluons: more particles


def test_particle_sets_feature_choice_and_bad_params():
    ds = ParticleSets(n_particles=8, features=["log_pt", "delta_r"], n_train=2, n_test=1)
    assert ds.describe().kind == "set" and ds.describe().input_shape == (8, 2)
    assert ds.load_arrays(None)[0].shape == (10, 8, 2)
    with pytest.raises(ValueError, match="features must be distinct names of pt, eta, phi"):
        ParticleSets(features=["pt", "mass"])


# ---------------------------------------------------------------- k-fold splits


@pytest.mark.parametrize(
    "name,params", [("shapes", (("n_points", 8), ("n_train", 3), ("n_test", 1))), ("particle_sets", (("n_train", 5),))]
)
def test_k_folds_are_disjoint_and_cover_the_training_pool(name, params):
    pool = DATASETS.get(name)(**dict(params)).load_arrays(None)[0]
    key = {tuple(row.flatten().tolist()): i for i, row in enumerate(pool)}
    assert len(key) == len(pool)
    held: list[int] = []
    for fold in range(5):
        bundle = load_data(DataSpec(name, params, folds=5, fold=fold), None)
        val = [key[tuple(r.flatten().tolist())] for r in bundle.val.x]
        train = [key[tuple(r.flatten().tolist())] for r in bundle.train.x]
        assert sorted(val + train) == list(range(len(pool)))
        assert len(val) in (len(pool) // 5, len(pool) // 5 + 1)
        held += val
    assert sorted(held) == list(range(len(pool)))


def test_default_eval_sets_are_the_corrupted_test_set():
    cls = DATASETS.get("shapes")
    params = (("n_points", 16), ("n_train", 2), ("n_test", 2))
    b = load_data(DataSpec("shapes", params, eval_sets=tuple(cls.default_eval_sets.values())), None)
    test, moved, perm = b.evals["test"].x, b.evals["translated"].x, b.evals["permuted"].x
    shift = moved - test
    torch.testing.assert_close(shift.norm(dim=-1), torch.full(shift.shape[:2], 0.5))
    for a, p in zip(test, perm, strict=True):
        assert torch.equal(_rows(a), _rows(p))
    assert torch.equal(b.evals["permuted"].y, b.evals["test"].y)


# ---------------------------------------------------------------- corruptions and augmentations


def test_translate_points_moves_every_point_of_a_cloud_by_one_vector_of_the_given_length():
    x = torch.randn(30, 20, 3)
    out = translate_points(x, shift=0.7, generator=torch.Generator().manual_seed(0))
    v = out - x
    torch.testing.assert_close(v, v[:, :1].expand_as(v), atol=1e-6, rtol=0)
    torch.testing.assert_close(v[:, 0].norm(dim=-1), torch.full((30,), 0.7))
    assert torch.equal(out, translate_points(x, 0.7, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"N×P×3"):
        translate_points(torch.zeros(2, 5, 4))


@pytest.mark.parametrize("fn", [lambda x, g: permute_points(x, generator=g), lambda x, g: random_permute(x, generator=g)])
def test_permutation_keeps_each_examples_multiset_of_rows(fn):
    x = torch.randn(40, 16, 3)
    out = fn(x, torch.Generator().manual_seed(1))
    for a, b in zip(x, out, strict=True):
        assert torch.equal(_rows(a), _rows(b))
    assert (out != x).any(-1).any(-1).float().mean() > 0.9  # reordered (nearly) every example
    flat = torch.arange(12.0).reshape(2, 6)
    assert sorted(fn(flat, torch.Generator().manual_seed(0))[1].tolist()) == flat[1].tolist()


def test_random_translate_points_is_one_bounded_vector_per_cloud():
    x = torch.randn(200, 10, 3)
    out = random_translate_points(x, torch.Generator().manual_seed(2), max_shift=0.25)
    v = out - x
    torch.testing.assert_close(v, v[:, :1].expand_as(v), atol=1e-6, rtol=0)
    assert v.abs().max() <= 0.25 + 1e-6 and v.abs().amax(0).amin() > 0.2  # fills the cube, not a line
    assert AUGMENTATIONS.get("translate_points") is random_translate_points and AUGMENTATIONS.get("permute") is random_permute
    assert CORRUPTIONS.get("translate_points") is translate_points and CORRUPTIONS.get("permute_points") is permute_points


# ---------------------------------------------------------------- ModelNet40


def _names40() -> list[str]:
    return ["night_stand", "airplane", *[f"class{i:02d}" for i in range(38)]]


def _write_text_layout(root: Path, n: int = 50) -> tuple[Path, dict[str, np.ndarray]]:
    folder = root / "modelnet40_normal_resampled"
    folder.mkdir(parents=True)
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(_names40()) + "\n")
    rng = np.random.default_rng(0)
    clouds = {}
    for split, ids in (("train", ["night_stand_0001", "airplane_0001", "airplane_0002"]), ("test", ["class05_0003"])):
        (folder / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        for shape_id in ids:
            pts = rng.normal(size=(n, 6)).astype(np.float32) * 3 + 1
            (folder / shape_id.rsplit("_", 1)[0]).mkdir(exist_ok=True)
            np.savetxt(folder / shape_id.rsplit("_", 1)[0] / f"{shape_id}.txt", pts, fmt="%.6f", delimiter=",")
            clouds[shape_id] = np.loadtxt(folder / shape_id.rsplit("_", 1)[0] / f"{shape_id}.txt", delimiter=",")[:, :3]
    return folder, clouds


def _unit(points: np.ndarray) -> torch.Tensor:
    p = torch.from_numpy(points).double()
    p = p - p.mean(0)
    return p / p.norm(dim=1).max()


def test_modelnet_text_layout_scales_and_labels_every_shape(tmp_path):
    _, clouds = _write_text_layout(tmp_path)
    assert find_layout(tmp_path)[0] == "normal_resampled"
    x_tr, y_tr, x_te, y_te = ModelNet40(n_points=50).load_arrays(tmp_path)
    assert x_tr.shape == (3, 50, 3) and x_te.shape == (1, 50, 3) and x_tr.dtype == torch.float32
    assert y_tr.tolist() == [0, 1, 1] and y_te.tolist() == [7]
    for got, shape_id in zip([*x_tr, *x_te], clouds, strict=True):  # all points kept: the scaled cloud, reordered
        torch.testing.assert_close(_rows(got), _rows(_unit(clouds[shape_id])), atol=1e-5, rtol=0)
    small = ModelNet40(n_points=20, seed=3).load_arrays(tmp_path)[0]
    assert small.shape == (3, 20, 3) and torch.equal(small, ModelNet40(n_points=20, seed=3).load_arrays(tmp_path)[0])
    assert not torch.equal(small, ModelNet40(n_points=20, seed=4).load_arrays(tmp_path)[0])
    torch.testing.assert_close(small.norm(dim=-1).amax(1), torch.ones(3))


def test_modelnet_text_layout_malformed_file_names_it(tmp_path):
    folder, _ = _write_text_layout(tmp_path)
    with pytest.raises(DataError, match=r"night_stand_0001\.txt: a cloud holds 50 points, fewer than n_points=60"):
        ModelNet40(n_points=60).load_arrays(tmp_path)
    bad = folder / "airplane" / "airplane_0002.txt"
    bad.write_text("0.1,0.2,0.3,0,0,1\n0.1,zz,0.3,0,0,1\n")
    with pytest.raises(DataError) as e:
        ModelNet40(n_points=1).load_arrays(tmp_path)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    bad.unlink()
    with pytest.raises(DataError, match=r"airplane_0002\.txt: missing"):
        ModelNet40(n_points=1).load_arrays(tmp_path)


def _write_hdf5_layout(root: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    folder = root / "modelnet40_ply_hdf5_2048"
    folder.mkdir(parents=True)
    (folder / "shape_names.txt").write_text("\n".join(_names40()) + "\n")
    rng = np.random.default_rng(1)
    data = rng.normal(size=(5, 64, 3)).astype(np.float32)
    labels = np.array([[3], [0], [39], [3], [12]], dtype=np.uint8)
    for name, rows in (
        ("ply_data_train0.h5", slice(0, 2)),
        ("ply_data_train1.h5", slice(2, 4)),
        ("ply_data_test0.h5", slice(4, 5)),
    ):
        with h5py.File(folder / name, "w") as f:
            f["data"], f["label"] = data[rows], labels[rows]
    (folder / "train_files.txt").write_text(
        "data/modelnet40_ply_hdf5_2048/ply_data_train0.h5\ndata/modelnet40_ply_hdf5_2048/ply_data_train1.h5\n"
    )
    (folder / "test_files.txt").write_text("data/modelnet40_ply_hdf5_2048/ply_data_test0.h5\n")
    return folder, data, labels


def test_modelnet_hdf5_layout(tmp_path):
    _, data, _ = _write_hdf5_layout(tmp_path)
    assert find_layout(tmp_path) == ("hdf5", tmp_path / "modelnet40_ply_hdf5_2048")
    x_tr, y_tr, x_te, y_te = ModelNet40(n_points=64).load_arrays(tmp_path)
    assert x_tr.shape == (4, 64, 3) and x_te.shape == (1, 64, 3)
    assert y_tr.tolist() == [3, 0, 39, 3] and y_te.tolist() == [12]
    for got, want in zip([*x_tr, *x_te], data, strict=True):
        torch.testing.assert_close(_rows(got), _rows(_unit(want)), atol=1e-5, rtol=0)
    info = ModelNet40().describe()
    assert info.kind == "points" and info.input_shape == (1000, 3) and info.num_classes == 40


@pytest.mark.parametrize(
    "write,message",
    [
        (lambda f: f.create_dataset("data", data=np.zeros((2, 64, 3), np.float32)), "no dataset 'label'"),
        (
            lambda f: (
                f.create_dataset("data", data=np.zeros((2, 64, 2), np.float32)),
                f.create_dataset("label", data=np.zeros((2, 1))),
            ),
            "'data' has shape",
        ),
        (
            lambda f: (
                f.create_dataset("data", data=np.zeros((2, 64, 3), np.float32)),
                f.create_dataset("label", data=np.full((2, 1), 40)),
            ),
            "labels must be class indices 0-39",
        ),
    ],
)
def test_modelnet_hdf5_malformed_file_names_it(tmp_path, write, message):
    folder, _, _ = _write_hdf5_layout(tmp_path)
    bad = folder / "ply_data_train1.h5"
    with h5py.File(bad, "w") as f:
        write(f)
    with pytest.raises(DataError, match=message) as e:
        ModelNet40(n_points=8).load_arrays(tmp_path)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_modelnet_without_data_names_both_layouts(tmp_path):
    with pytest.raises(DataError, match=r"modelnet40_normal_resampled/ .* or modelnet40_ply_hdf5_2048/"):
        ModelNet40().check(tmp_path)
    with pytest.raises(DataError, match="needs a data folder"):
        ModelNet40().check(None)


# ---------------------------------------------------------------- hls4ml jets


JET_NAMES = [f"j_feat{i}" for i in range(53)] + ["j_g", "j_q", "j_w", "j_z", "j_t", "j_undef"]


def _write_jets(path: Path, pt: np.ndarray, labels: np.ndarray, named: bool = True) -> np.ndarray:
    """A file of len(pt) jets with len(pt[0]) particles; feature k of a particle is k·1000 + its pT."""
    n = len(pt)
    const = (np.arange(16)[None, None, :] * 1000.0 + pt[..., None]).astype(np.float32)
    const[..., PARTICLE_FEATURES.index("j1_pt")] = pt
    jets = np.zeros((n, 59), np.float32)
    jets[np.arange(n), 53 + labels] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["jetConstituentList"], f["jets"] = const, jets
        if named:
            f["particleFeatureNames"] = np.array([s.encode() for s in (*PARTICLE_FEATURES, "j1_pdgid")])  # 17, as distributed
            f["jetFeatureNames"] = np.array([s.encode() for s in JET_NAMES])
    return const


@pytest.mark.parametrize("named", [True, False])
def test_jets_keep_the_hardest_particles_in_pt_order_with_the_chosen_features(tmp_path, named):
    rng = np.random.default_rng(0)
    pt = rng.uniform(0, 100, size=(6, 30)).astype(np.float32)
    pt[0, :] = 0.5  # all below min_pt: dropped
    pt[1, :] = np.r_[np.full(25, 1.0), [50, 40, 30, 20, 10]]  # 5 above min_pt, at the end: padding follows
    _write_jets(tmp_path / "train" / "a.h5", pt[:3], np.array([0, 2, 4]), named)
    _write_jets(tmp_path / "train" / "b.h5", pt[3:], np.array([1, 3, 4]), named)
    _write_jets(tmp_path / "val" / "c.h5", pt[3:5], np.array([2, 1]), named)
    ds = JetsHLS4ML(n_particles=8, features=["pt", "etarel", "phirel"], norm="none")
    x_tr, y_tr, _, y_te = ds.load_arrays(tmp_path)
    assert x_tr.shape == (5, 8, 3) and y_tr.tolist() == [2, 4, 1, 3, 4] and y_te.tolist() == [2, 1]
    assert x_tr[0, :5, 0].tolist() == [50, 40, 30, 20, 10] and (x_tr[0, 5:] == 0).all()
    for row, jet in zip(x_tr[1:], pt[2:], strict=True):
        top = np.sort(jet)[::-1][:8]
        np.testing.assert_allclose(row[:, 0].numpy(), top)
        np.testing.assert_allclose(row[:, 1].numpy(), 8000 + top)  # j1_etarel is column 8
        np.testing.assert_allclose(row[:, 2].numpy(), 11000 + top)  # j1_phirel is column 11


def test_jets_standardise_real_particles_and_cap_the_count(tmp_path):
    rng = np.random.default_rng(1)
    _write_jets(tmp_path / "train" / "a.h5", rng.uniform(0, 50, (40, 20)), rng.integers(0, 5, 40))
    _write_jets(tmp_path / "val" / "a.h5", rng.uniform(0, 50, (10, 20)), rng.integers(0, 5, 10))
    x_tr, _, x_te, _ = JetsHLS4ML(max_jets=30).load_arrays(tmp_path)
    assert len(x_tr) == 30 and len(x_te) == 10
    real = (x_tr != 0).any(-1)
    torch.testing.assert_close(x_tr[real].double().mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_tr[real].double().std(0), torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert JetsHLS4ML().describe().input_shape == (16, 3) and JetsHLS4ML().describe().kind == "set"


@pytest.mark.parametrize(
    "write,message",
    [
        (lambda f: f.create_dataset("jets", data=np.zeros((2, 59))), "no dataset 'jetConstituentList'"),
        (
            lambda f: (
                f.create_dataset("jetConstituentList", data=np.zeros((2, 150))),
                f.create_dataset("jets", data=np.zeros((2, 59))),
            ),
            "must be N×particles×features",
        ),
        (
            lambda f: (
                f.create_dataset("jetConstituentList", data=np.zeros((2, 5, 12))),
                f.create_dataset("jets", data=np.zeros((2, 59))),
            ),
            "12 features per particle, 16 named",
        ),
        (
            lambda f: (
                f.create_dataset("jetConstituentList", data=np.zeros((2, 5, 16))),
                f.create_dataset("jets", data=np.zeros((2, 59))),
                f.create_dataset("particleFeatureNames", data=np.array([b"j1_pt", b"j1_eta"])),
            ),
            "16 features per particle, 2 named",
        ),
        (
            lambda f: (
                f.create_dataset("jetConstituentList", data=np.zeros((2, 5, 16))),
                f.create_dataset("jets", data=np.zeros((2, 59))),
                f.create_dataset("jetFeatureNames", data=np.array([f"j_x{i}".encode() for i in range(59)])),
            ),
            "jetFeatureNames lacks the label columns j_g, j_q",
        ),
    ],
)
def test_jets_malformed_file_names_it(tmp_path, write, message):
    _write_jets(tmp_path / "train" / "a.h5", np.ones((2, 20)) * 5, np.array([0, 1]))
    _write_jets(tmp_path / "val" / "a.h5", np.ones((2, 20)) * 5, np.array([0, 1]))
    bad = tmp_path / "train" / "b.h5"
    with h5py.File(bad, "w") as f:
        write(f)
    with pytest.raises(DataError, match=message) as e:
        JetsHLS4ML().load_arrays(tmp_path)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_jets_missing_folders_and_bad_params(tmp_path):
    with pytest.raises(DataError, match="train: no such folder"):
        JetsHLS4ML().check(tmp_path)
    with pytest.raises(ValueError, match="features must be distinct names of px"):
        JetsHLS4ML(features=["pt", "mass"])
