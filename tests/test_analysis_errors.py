"""Error overlap (kdtune.analysis.overlap) on hand-made error sets; ``FakeView`` serves the other analysis tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kdtune.analysis import TrialView
from kdtune.analysis.overlap import (
    _pair_rows,
    cell,
    error_set,
    errors,
    from_data_twin,
    group_pair_tables,
    overlap,
    pair_units,
    venn_trios,
)
from kdtune.errors import KdtuneError
from kdtune.train.data import EvalSetSpec

EVAL_SETS = (EvalSetSpec("test"), EvalSetSpec("translated", "test", "translate", (("shift", 1),)))


@dataclass(frozen=True)
class FakeData:
    """The part of a DataSpec the analyses read (hashable, as a DataSpec is)."""

    eval_sets: tuple[EvalSetSpec, ...]


def trial(tid: str, student: str, teacher: str, seed: int, teacher_id: str | None = None, eval_sets=EVAL_SETS) -> TrialView:
    """A TrialView with the few config fields the analyses read."""
    data = FakeData(tuple(eval_sets))
    config = SimpleNamespace(arch=student.lower(), teacher_id=teacher_id, data=data, data_fingerprint="")
    return TrialView(tid, student, teacher, seed, config)


class FakeView:
    """What the analyses read of a RunView, from arrays in memory: trials, their outputs, a results table."""

    def __init__(self, trials: list[TrialView], arrays: dict[str, dict[str, np.ndarray]], eval_sets: list[str]) -> None:
        self.trials, self._arrays, self.eval_sets, self.run_dir = trials, arrays, eval_sets, Path("/nonexistent")
        rows = [
            {"trial_id": t.id, "student": t.student, "teacher": t.teacher, "seed": t.seed, "eval_set": e, "status": "ok"}
            for t in trials
            for e in eval_sets
        ]
        self.results = pd.DataFrame(rows)

    def outputs(self, trial_id: str) -> dict[str, np.ndarray]:
        return self._arrays[trial_id]

    def data(self, trial: TrialView):
        raise KdtuneError("no data in a fake view")


def probs_with_errors(labels: np.ndarray, wrong: set[int], n_classes: int = 3) -> np.ndarray:
    """Confident probabilities that are right except on the examples ``wrong``."""
    pred = np.array([(y + 1) % n_classes if i in wrong else y for i, y in enumerate(labels)])
    p = np.full((len(labels), n_classes), 0.1 / (n_classes - 1))
    p[np.arange(len(labels)), pred] = 0.9
    return p


def test_error_sets_and_their_overlap_match_hand_counts():
    labels = np.array([0, 1, 2, 0, 1, 2])
    a = error_set(probs_with_errors(labels, {1, 3}), labels)
    b = error_set(probs_with_errors(labels, {3, 4, 5}), labels)
    assert a.tolist() == [1, 3] and b.tolist() == [3, 4, 5]
    assert overlap(a, b) == pytest.approx((1 / 4, 1 / 3))  # |{3}| / |{1,3,4,5}|, |{3}| / |B|
    assert overlap(b, a) == pytest.approx((1 / 4, 1 / 2))
    none = np.array([], dtype=int)
    assert np.isnan(overlap(none, none)[0]) and np.isnan(overlap(a, none)[1]) and overlap(none, a)[1] == 0


def test_group_tables_pair_trials_by_seed_and_use_distinct_seeds_within_a_group():
    a0, a1 = trial("a0", "A", "data", 0), trial("a1", "A", "data", 1)
    b0, b1 = trial("b0", "B", "A", 0, "a0"), trial("b1", "B", "A", 1, "a1")
    errs = {"a0": np.array([0, 1]), "a1": np.array([1, 2]), "b0": np.array([1]), "b1": np.array([2, 3])}
    pairs = pd.DataFrame(_pair_rows("test", [a0, a1, b0, b1], errs))
    jac, share = group_pair_tables(pairs, ["A (data)", "B ← A"])
    assert jac.loc["A (data)", "B ← A"] == cell([1 / 2, 1 / 3]) == "0.417 ± 0.118 (2)"  # (a0,b0), (a1,b1)
    assert jac.loc["A (data)", "A (data)"] == "0.333 ± 0.000 (2)"  # a0 vs a1: the one pair of each of the 2 models
    assert share.loc["A (data)", "B ← A"] == cell([1.0, 1 / 2])  # of b's errors, a's share
    assert share.loc["B ← A", "A (data)"] == "0.500 ± 0.000 (2)"
    assert share.loc["A (data)", "A (data)"] == "0.500 ± 0.000 (2)"  # ordered pairs of distinct seeds


def test_trios_are_teacher_student_and_the_student_from_data_another_seed_under_self_distillation():
    ts = [
        trial("c0", "CNN", "data", 0),
        trial("c1", "CNN", "data", 1),
        trial("m0", "MLP", "data", 0),
        trial("m1", "MLP", "data", 1),
        trial("mc0", "MLP", "CNN", 0, "c0"),
        trial("cc0", "CNN", "CNN", 0, "c0"),
    ]
    view = FakeView(ts, {}, ["test"])
    by_id = {t.id: t for t in ts}
    assert from_data_twin(by_id, by_id["mc0"]).id == "m0"
    assert from_data_twin(by_id, by_id["cc0"], avoid=["c0"]).id == "c1"
    trios, skipped = venn_trios(view, by_id)
    members = {title: [t.id for t in ms] for title, ms, _ in trios}
    assert members == {
        "two CNN from data, one MLP": ["c0", "c1", "m0"],
        "two MLP from data, one CNN": ["m0", "m1", "c0"],
        "CNN ← CNN: teacher, student, student from data": ["c0", "cc0", "c1"],
        "MLP ← CNN: teacher, student, student from data": ["c0", "mc0", "m0"],
    }
    assert skipped == []


def test_errors_writes_venn_diagrams_and_overlap_tables(tmp_path):
    labels = np.arange(10) % 3
    wrong = {"t": {0, 1, 2}, "s": {1, 2, 3}, "d": {2, 3, 4, 5}, "t1": set()}
    ts = [
        trial("t", "CNN", "data", 0),
        trial("t1", "CNN", "data", 1),
        trial("d", "MLP", "data", 0),
        trial("s", "MLP", "CNN", 0, "t"),
    ]
    arrays = {k: {"probs__test": probs_with_errors(labels, w), "labels__test": labels} for k, w in wrong.items()}
    out = errors(FakeView(ts, arrays, ["test"]), tmp_path)
    assert [p.name for p in out.figures] == ["venn__test.png"] and (tmp_path / "venn__test.pdf").is_file()
    (_, jac), (_, share) = out.tables
    assert jac.loc["MLP ← CNN", "CNN (data)"] == "0.500 (1)"  # s vs t (same seed): |{1,2}| / |{0,1,2,3}|
    assert share.loc["MLP (data)", "MLP ← CNN"] == f"{2 / 3:.3f} (1)"  # of s's errors {1,2,3}, d makes {2,3}
    pairs = pd.read_csv(tmp_path / "error_pairs.csv")
    assert len(pairs) == 4 * 3 and set(pairs["eval_set"]) == {"test"}
    assert (tmp_path / "jaccard__test.md").is_file() and (tmp_path / "shared__test.csv").is_file()
    units = pd.read_csv(tmp_path / "error_units.csv")
    assert list(units.columns[:4]) == ["eval_set", "group", "column", "trial"] and "n models" in out.tables[0][0]
    assert any(n.startswith("Units: models") and "ddof 1" in n and "error_units.csv" in n for n in out.notes)
    assert out.skipped == []


def test_errors_leaves_out_a_trial_evaluated_on_other_examples(tmp_path):
    labels = np.arange(6) % 3
    ts = [trial("a", "A", "data", 0), trial("b", "A", "data", 1), trial("c", "A", "data", 2)]
    arrays = {k: {"probs__test": probs_with_errors(labels, {1}), "labels__test": labels} for k in "ab"}
    arrays["c"] = {"probs__test": probs_with_errors(labels[::-1], {1}), "labels__test": labels[::-1].copy()}
    out = errors(FakeView(ts, arrays, ["test"]), tmp_path)
    assert any("A (data) s2" in s and "labels differ" in s for s in out.skipped)
    assert out.tables[0][1].loc["A (data)", "A (data)"] == "1.000 ± 0.000 (2)"  # a vs b only: two models, one pair


# made-up Jaccards: four models from data (seeds 0-3) and four students (seeds 0-3); each model's pairs averaged by hand
WITHIN = {(0, 1): 0.9, (0, 2): 0.8, (0, 3): 0.7, (1, 2): 0.6, (1, 3): 0.5, (2, 3): 0.4}
ACROSS = {0: 0.3, 1: 0.5, 2: 0.2, 3: 0.6}  # student s with the model from data of seed s


def _made_up_pairs() -> pd.DataFrame:
    rows = []
    for sa in range(4):
        for sb in range(4):
            if sa != sb:
                v = WITHIN[min(sa, sb), max(sa, sb)]
                rows.append({**_pair("A (data)", "A (data)", sa, sb, False), "a": f"a{sa}", "jaccard": v, "share_of_b_in_a": v})
            jaccard = ACROSS[sa] if sa == sb else 0.0
            rows.append({**_pair("A (data)", "B ← A", sa, sb, False), "a": f"a{sa}", "jaccard": jaccard, "share_of_b_in_a": 1.0})
    return pd.DataFrame(rows)


def test_group_tables_are_over_models_each_models_pairs_averaged_first():
    pairs = _made_up_pairs()
    jac, share = group_pair_tables(pairs, ["A (data)", "B ← A"])
    # within: a0 (0.9, 0.8, 0.7) → 0.8, a1 (0.9, 0.6, 0.5) → 2/3, a2 (0.8, 0.6, 0.4) → 0.6, a3 (0.7, 0.5, 0.4) → 1.6/3:
    # 0.650 ± 0.114 (std ddof 1), n = 4 models (over the 6 pairs: 0.650 ± 0.187 (6))
    assert jac.loc["A (data)", "A (data)"] == share.loc["A (data)", "A (data)"] == "0.650 ± 0.114 (4)"
    # across: one pair per model (same seed); the pairs of other seeds (Jaccard 0) never count
    assert jac.loc["A (data)", "B ← A"] == "0.400 ± 0.183 (4)" and share.loc["A (data)", "B ← A"] == "1.000 ± 0.000 (4)"
    assert jac.loc["B ← A", "A (data)"] == "– (0)"  # no pair made up that way
    units = pair_units(pairs, ["A (data)", "B ← A"])
    within = units[units["column"] == "A (data)"]
    assert within["trial"].tolist() == ["a0", "a1", "a2", "a3"] and within["pairs"].tolist() == [3, 3, 3, 3]
    assert within["jaccard"].tolist() == pytest.approx([0.8, 2 / 3, 0.6, 1.6 / 3])
    assert units[units["column"] == "B ← A"]["pairs"].tolist() == [1, 1, 1, 1]


def _pair(ga, gb, sa, sb, shared):
    return {"group_a": ga, "group_b": gb, "seed_a": sa, "seed_b": sb, "fold_a": None, "fold_b": None, "same_init": shared}


def test_cells_whose_pairs_share_their_initialisation_are_named():
    from kdtune.analysis.overlap import shared_init_cells

    pairs = pd.DataFrame(
        [_pair("S ← CNN", "S ← MLP", s, s, True) for s in (0, 1)]  # students of one seed: one initialisation
        + [_pair("S ← CNN", "S (data)", s, s, False) for s in (0, 1)]
        + [_pair("S ← CNN", "S ← CNN", 0, 1, False)]
    )
    assert shared_init_cells(pairs, ["S ← CNN", "S ← MLP", "S (data)"]) == ["S ← CNN × S ← MLP"]
