"""When Ray's memory monitor kills a trial's worker, Ray Tune's loop raises ``ray.exceptions.OutOfMemoryError`` in
the driver (seen on the 2-core machine when another process took the node's memory): the run stops with one line
that says what happened and how to resume, and the trials that finished are kept."""

from __future__ import annotations

import pytest
import ray.exceptions

from kdtune.plan import make_plan
from kdtune.run.execute import OOM_REASON, InlineExecutor, RayDied, execute
from kdtune.rundir import is_finished


class _KilledAfterOne(InlineExecutor):
    """Trains the first stage's first group, then fails as Tune's loop does after an OOM kill."""

    def run_stages(self, stages):  # type: ignore[override]
        try:
            raise ray.exceptions.OutOfMemoryError("1 worker(s) were killed due to the node running low on memory")
        except ray.exceptions.OutOfMemoryError as e:
            raise RuntimeError("the actor manager's on_error re-raised") from e


def test_a_ray_oom_kill_stops_the_run_with_the_reason(tiny_spec):
    plan = make_plan(tiny_spec)
    with pytest.raises(RayDied) as e:
        execute(plan, _KilledAfterOne(), log=lambda s: None)
    assert e.value.reason == OOM_REASON and e.value.total == len(plan.trials)
    assert e.value.finished == sum(is_finished(tiny_spec.output, t) for t in plan.trials)


def test_the_cli_says_it_in_one_line(tiny_raw, tmp_path, monkeypatch, capsys):
    import yaml

    from kdtune import cli

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    monkeypatch.setattr(InlineExecutor, "run_stages", _KilledAfterOne.run_stages)
    rc = cli.main(["run", str(path), "--out", str(tmp_path / "run"), "--executor", "inline"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("kdtune: the run stopped, out of memory: Ray's memory monitor killed a trial's worker")
    assert "0 of 6 trials finished and are kept" in err[0] and f"resume with: kdtune run {path}" in err[0]
