"""The same tiny sweep through Ray Tune (a local instance): same results as in process, resumable."""

import pytest

from kdtune.execute import InlineExecutor, RayExecutor, execute
from kdtune.plan import make_plan
from kdtune.results import collect

pytestmark = pytest.mark.slow


def test_ray_tune_runs_both_stages_and_matches_the_inline_run(tiny_spec, tmp_path):
    import dataclasses

    plan = make_plan(tiny_spec)
    ray_exec = RayExecutor(None, cpu=1, gpu=0, max_concurrent=None, max_failures=0, storage=tmp_path / "ray")
    logs = []
    assert execute(plan, ray_exec, log=logs.append) == {}
    assert any(line.startswith("stage 2: 2 trials in 2 groups on ray") for line in logs)
    ray_df = collect(plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)

    inline_spec = dataclasses.replace(tiny_spec, output=tmp_path / "inline")
    inline_plan = make_plan(inline_spec)
    execute(inline_plan, InlineExecutor(), log=lambda s: None)
    inline_df = collect(inline_plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    assert list(ray_df.trial_id) == list(inline_df.trial_id)
    for col in ("accuracy", "nll", "ece", "agreement", "kl"):
        assert ray_df[col].fillna(-1).tolist() == pytest.approx(inline_df[col].fillna(-1).tolist(), abs=1e-6)

    # a second run finds everything finished and does not even start Ray
    logs.clear()
    assert execute(make_plan(tiny_spec), ray_exec, log=logs.append) == {}
    assert all("nothing to run" in line for line in logs)
