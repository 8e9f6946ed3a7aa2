"""The progress display on its own: a fake clock, a StringIO (not a terminal), progress.json."""

import io
import json

import pytest

from kdtune.run.progress import Progress, clock_text, short_name


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


GROUPS = {
    "A-from-data-aaaa1111": [("a1", 10), ("a2", 10)],  # two seeds, 20 epochs in all
    "B-from-data-bbbb2222": [("b1", 10)],
    "C-from-data-cccc3333": [("c1", 20)],
}


@pytest.fixture
def plain(tmp_path):
    clock, out = FakeClock(), io.StringIO()
    p = Progress(tmp_path, lambda s: print(s, file=out), live=False, stages=2, every=30, clock=clock, wall=clock)
    p.start_stage(1, GROUPS)
    return p, clock, out, tmp_path / "progress.json"


def test_helpers():
    assert clock_text(0) == "0:00" and clock_text(90) == "1:30" and clock_text(3725) == "1:02:05"
    assert short_name("MLP-from-CNN-1a2b3c4d") == "MLP-from-CNN-1a2b"


def test_plain_lines_counts_and_eta(plain):
    p, clock, out, _ = plain
    p.group_started("A-from-data-aaaa1111")
    p.group_started("B-from-data-bbbb2222")
    clock.t = 20
    p.epoch_done("A-from-data-aaaa1111", 0, 5)
    p.epoch_done("B-from-data-bbbb2222", 0, 5)
    assert out.getvalue() == ""  # no status line before 30 s
    assert p.counts() == {"done": 0, "running": 2, "failed": 0, "pending": 1}

    clock.t = 30
    p.tick()
    # 4 s an epoch each (5 in 20 s), 10 s since their last reports: one epoch (4 s) taken off.
    # A: 5 epochs of seed 1 + 10 of seed 2 = 60 - 4 = 56; B: 5 epochs = 20 - 4 = 16.
    # C (no group of its kind yet): 20 epochs at the stage's 40 s / 10 epochs = 80 s, in B's slot: 16 + 80
    assert p.eta() == pytest.approx(96)
    assert out.getvalue() == (
        "  stage 1 after 0:30: 0/3 done, 2 running, 0 failed, 1 left · ~1:36 left"
        " · A-from-data-aaaa e5/20, B-from-data-bbbb e5/10\n"
    )
    p.tick()  # the next status line only 30 s later
    assert out.getvalue().count("\n") == 1

    clock.t = 40
    p.epoch_done("A-from-data-aaaa1111", 0, 10)  # seed 1 done: 5 epochs in 20 s
    clock.t = 48
    p.epoch_done("A-from-data-aaaa1111", 1, 2)  # seed 2 started at 40: 2 epochs in 8 s
    p.group_finished("B-from-data-bbbb2222", "mean val accuracy 0.900")
    p.group_failed("C-from-data-cccc3333", "ValueError: bad")
    assert out.getvalue().splitlines()[1:] == [
        "  [1/3] B-from-data-bbbb2222: mean val accuracy 0.900",
        "  [2/3] C-from-data-cccc3333: FAILED ValueError: bad",
    ]
    assert p.counts() == {"done": 1, "running": 1, "failed": 1, "pending": 0}
    assert p._epochs() == (22, 30)  # the failed group's 20 epochs will not run
    assert p.eta() == pytest.approx(8 * 4)  # A's seed 2: 8 epochs at 4 s

    clock.t = 60
    p.tick()
    assert out.getvalue().splitlines()[-1] == (
        "  stage 1 after 1:00: 1/3 done, 1 running, 1 failed, 0 left · ~0:28 left · A-from-data-aaaa e12/20"
    )


def _stage(clock, groups):
    p = Progress(None, lambda s: None, clock=clock, wall=clock)
    p.start_stage(1, groups)
    return p


def test_eta_of_long_trials_comes_from_their_own_pace_not_from_faster_groups_before_them():
    """The issue's run: fast MLP groups first, then two CNN trials at epoch 2 of 6 at 120 s an epoch in two
    slots; 8 minutes left (the stage-wide rate said about a minute)."""
    clock = FakeClock()
    mlps = {f"MLP-from-data-{i}": [(f"m{i}", 6)] for i in range(4)}
    cnns = {"CNN-from-data-c1": [("c1", 6)], "CNN-from-data-c2": [("c2", 6)]}
    p = _stage(clock, mlps | cnns)
    for pair in (list(mlps)[:2], list(mlps)[2:]):
        start = clock.t
        for name in pair:
            p.group_started(name)
        for e in range(1, 7):
            clock.t = start + e
            for name in pair:
                p.epoch_done(name, 0, e)
        for name in pair:
            p.group_finished(name)
    assert clock.t == 12
    for name in cnns:
        p.group_started(name)
    for e, t in [(1, 12 + 130), (2, 12 + 250)]:  # 10 s to start, then 120 s an epoch
        clock.t = t
        for name in cnns:
            p.epoch_done(name, 0, e)
    assert p.eta() == pytest.approx(480)
    assert "~8:00 left" in p.status()
    clock.t += 60  # half an epoch later
    assert p.eta() == pytest.approx(420)


def test_seeds_trained_together_count_their_epochs_once_each():
    """Two seeds as one vectorised model report each epoch one after the other: epoch 2 of 6 is 4 of 12."""
    clock = FakeClock()
    p = _stage(clock, {"CNN-from-data-c1": [("s0", 6), ("s1", 6)]})
    p.group_started("CNN-from-data-c1")
    for e in (1, 2):
        clock.t = 120 * e
        p.epoch_done("CNN-from-data-c1", 0, e)
        p.epoch_done("CNN-from-data-c1", 1, e)
    assert p._epochs() == (4, 12) and "CNN-from-data-c1 e4/12" in p.status()
    assert p.eta() == pytest.approx(480)  # both seeds end together, not one after the other


def test_seeds_trained_one_after_another_and_a_seed_finished_before():
    """Seed 0 had finished before this run (it never reports); seed 1 trains at 10 s an epoch after a 5 s
    start; seed 2 follows at the group's pace."""
    clock = FakeClock()
    p = _stage(clock, {"MLP-from-CNN-g": [("s0", 10), ("s1", 10), ("s2", 10)]})
    p.group_started("MLP-from-CNN-g")
    for e in (1, 2, 3, 4):
        clock.t = 5 + 10 * e
        p.epoch_done("MLP-from-CNN-g", 1, e)
    assert p._epochs() == (14, 30)
    assert p.eta() == pytest.approx(6 * 10 + 10 * 10)


def test_pending_groups_take_their_kind_pace_and_the_slot_that_frees_first():
    clock = FakeClock()
    p = _stage(
        clock,
        {
            "CNN-from-data-1": [("a", 6)],
            "CNN-from-data-2": [("b", 6)],
            "CNN-from-data-3": [("c", 6)],  # pending: its kind went 240 s per 2 epochs, 6 epochs = 720 s
            "MLP-from-CNN-4": [("d", 10)],  # pending, no group of its kind yet: all kinds' 120 s an epoch
        },
    )
    p.group_started("CNN-from-data-1")
    p.group_started("CNN-from-data-2")
    for e in (1, 2):
        clock.t = 120 * e
        p.epoch_done("CNN-from-data-1", 0, e)
        p.epoch_done("CNN-from-data-2", 0, e)
    # the slots free at 480 and 480; CNN 3 takes one (480 + 720), the MLP the other (480 + 1200)
    assert p.eta() == pytest.approx(1680)
    clock.t = 480
    for name in ("CNN-from-data-1", "CNN-from-data-2"):
        for e in (3, 4, 5, 6):
            p.epoch_done(name, 0, e)
        p.group_finished(name)
    p.group_started("CNN-from-data-3")  # no report yet: it takes its kind's pace
    clock.t = 490
    # CNN kind: 2 groups × 6 epochs in 480 s each = 80 s an epoch; CNN 3: 6 × 80 - 10 s = 470;
    # the MLP in the free slot: 10 epochs × 80 s = 800
    assert p.eta() == pytest.approx(800)


def test_no_eta_before_the_first_epoch(plain):
    p, clock, out, _ = plain
    clock.t = 45
    p.tick()
    assert p.eta() is None and "ETA ?" in out.getvalue()


def test_progress_json_is_written_at_most_every_2_s_and_at_each_end(plain):
    p, clock, _, path = plain
    doc = json.loads(path.read_text())
    assert doc["stage"] == 1 and doc["stages"] == 2 and doc["state"] == "running" and isinstance(doc["pid"], int)
    assert doc["groups"]["A-from-data-aaaa1111"] == {"state": "pending", "epoch": 0, "epochs": 20, "trials": ["a1", "a2"]}

    clock.t = 1
    p.epoch_done("A-from-data-aaaa1111", 0, 1)
    assert json.loads(path.read_text())["groups"]["A-from-data-aaaa1111"]["epoch"] == 0  # not yet: < 2 s
    clock.t = 2.5
    p.epoch_done("A-from-data-aaaa1111", 0, 2)
    doc = json.loads(path.read_text())
    assert doc["groups"]["A-from-data-aaaa1111"] == {"state": "running", "epoch": 2, "epochs": 20, "trials": ["a1", "a2"]}
    assert doc["updated"] == 2.5

    clock.t = 3
    p.group_finished("B-from-data-bbbb2222")  # at once
    assert json.loads(path.read_text())["groups"]["B-from-data-bbbb2222"]["state"] == "done"
    p.group_failed("C-from-data-cccc3333", "x")
    assert json.loads(path.read_text())["groups"]["C-from-data-cccc3333"]["state"] == "failed"

    p.close("interrupted")
    doc = json.loads(path.read_text())
    assert doc["state"] == "interrupted" and doc["groups"]["A-from-data-aaaa1111"]["state"] == "pending"
    assert [f.name for f in path.parent.iterdir()] == ["progress.json"]  # no temporary files left


def test_a_retried_group_starts_over(plain):
    p, _, out, _ = plain
    p.epoch_done("C-from-data-cccc3333", 0, 7)
    p.group_retried("C-from-data-cccc3333", "RayActorError: died")
    assert out.getvalue() == "  C-from-data-cccc3333: failed (RayActorError: died); trying again\n"
    p.group_started("C-from-data-cccc3333")
    assert p.groups["C-from-data-cccc3333"].done == 0 and p.counts()["running"] == 1


def test_live_mode_draws_one_bar_and_prints_lines_above_it(tmp_path, capsys):
    clock, bar = FakeClock(), io.StringIO()
    with Progress(None, live=True, clock=clock, wall=clock, bar_file=bar) as p:
        p.start_stage(1, GROUPS)
        p.group_started("A-from-data-aaaa1111")
        clock.t = 10
        p.epoch_done("A-from-data-aaaa1111", 0, 3)
        assert "stage 1   6%|" in bar.getvalue() and "0/3 done, 1 running, 0 failed, 2 left" in bar.getvalue()
        assert "A-from-data-aaaa e3/20" in bar.getvalue()
        p.group_finished("A-from-data-aaaa1111", "ok")
    assert capsys.readouterr().out == "  [1/3] A-from-data-aaaa1111: ok\n"
