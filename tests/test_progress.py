"""The progress display on its own: a fake clock, a StringIO (not a terminal), progress.json."""

import io
import json

import pytest

from kdtune.progress import Progress, clock_text, short_name


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
    # 10 of 50 epochs in 30 s: 40 left at 1/3 epoch per second = 120 s
    assert p.eta() == pytest.approx(120)
    assert out.getvalue() == (
        "  stage 1 after 0:30: 0/3 done, 2 running, 0 failed, 1 left · ~2:00 left"
        " · A-from-data-aaaa e5/20, B-from-data-bbbb e5/10\n"
    )
    p.tick()  # the next status line only 30 s later
    assert out.getvalue().count("\n") == 1

    clock.t = 40
    p.epoch_done("A-from-data-aaaa1111", 1, 2)  # second seed, epoch 2: 12 of its 20 epochs
    p.group_finished("B-from-data-bbbb2222", "mean val accuracy 0.900")
    p.group_failed("C-from-data-cccc3333", "ValueError: bad")
    assert out.getvalue().splitlines()[1:] == [
        "  [1/3] B-from-data-bbbb2222: mean val accuracy 0.900",
        "  [2/3] C-from-data-cccc3333: FAILED ValueError: bad",
    ]
    assert p.counts() == {"done": 1, "running": 1, "failed": 1, "pending": 0}
    # done: 12 + 10; left: 8 (the failed group's 20 epochs will not run): 8 / (22 / 40 s)
    assert p.eta() == pytest.approx(8 / (22 / 40))

    clock.t = 60
    p.tick()
    assert out.getvalue().splitlines()[-1] == (
        "  stage 1 after 1:00: 1/3 done, 1 running, 1 failed, 0 left · ~0:22 left · A-from-data-aaaa e12/20"
    )


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
