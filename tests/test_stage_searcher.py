"""One Tuner runs every stage: its searcher hands out a stage only when the one before has ended, however Ray
Tune reports the ends, and idle workers are kept between stages, as many as the next stage can use."""

from typing import Any

from kdtune.plan import make_plan
from kdtune.run.execute import Stages, _idle_workers_kept, _stage_searcher


class _Trial:
    """What the searcher's ``sync`` reads of a Ray Tune trial."""

    def __init__(self, trial_id: str, status: str) -> None:
        self.trial_id, self.status = trial_id, status

    def is_finished(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")


def test_the_next_stage_starts_once_every_group_has_ended_however_tune_reports_it(tiny_spec):
    from ray.tune.search import Searcher

    plan = make_plan(tiny_spec)
    logs: list[str] = []
    failures: dict[str, str] = {}
    stages = Stages(plan, logs.append, failures)
    assert stages.find()
    searcher = _stage_searcher(stages, "ray", {})
    handed: dict[str, dict[str, Any]] = {}
    for i in range(len(plan.stages[0])):
        handed[f"t{i}"] = searcher.suggest(f"t{i}")["group"]
    assert {g["stage"] for g in handed.values()} == {1} and searcher.suggest("t9") is None
    first, *middle, last = handed
    searcher.on_trial_complete(first)
    searcher.on_trial_complete(first)  # told twice (a Tune callback raised after it was told once)
    assert searcher.suggest("t9") is None  # the other groups still run
    for tid in middle:
        searcher.on_trial_complete(tid)
    assert searcher.suggest("t9") is None
    searcher.sync([_Trial(last, "ERROR")])  # a failed actor reset: Tune never tells the searcher
    students = [searcher.suggest("s0"), searcher.suggest("s1")]
    assert not any(line.startswith("stage 2") for line in logs[:-1]) and logs[-1].startswith("stage 2: ")
    # groups that ended without error count as finished (their files may not show yet on NFS); the last failed
    (failed,) = [t["id"] for t in handed[last]["trials"]]
    assert failures[failed] == "did not finish"
    done = {t["id"] for tid in (first, *middle) for t in handed[tid]["trials"]}
    released = [s for s in students if isinstance(s, dict)]
    assert released and all(t["config"]["teacher_id"] in done for s in released for t in s["group"]["trials"])
    for s in released:
        assert s["group"]["stage"] == 2
    for i in range(len(released)):
        searcher.on_trial_complete(f"s{i}")
    assert searcher.suggest("s9") == Searcher.FINISHED


def test_tunes_actor_cache_keeps_as_many_idle_workers_as_the_next_stage_can_use():
    from ray.tune.execution import tune_controller

    keep = [2]  # the next stage's groups
    with _idle_workers_kept(lambda: keep[0]):
        cache = tune_controller._ObjectCache(may_keep_one=True)  # what Tune's controller makes in fit()
        # no trial is pending (max 0): Tune's own cache would keep one actor and stop the second
        assert cache.cache_object("1 CPU", "actor A") and cache.cache_object("1 CPU", "actor B")
        assert not cache.cache_object("1 CPU", "actor C")  # more than the next stage can use
        assert list(cache.flush_cached_objects()) == []  # Tune flushes every step: both stay
        assert cache.pop_cached_object("1 CPU") == "actor A" and cache.num_cached_objects == 1
        assert cache.cache_object("1 CPU", "actor A")
        keep[0] = 1
        assert list(cache.flush_cached_objects()) == ["actor B"]  # the oldest goes first
        keep[0] = 0  # the last stage: Tune's own rule (one idle actor while nothing is pending)
        assert cache.cache_object("1 CPU", "actor C") is False and cache.num_cached_objects == 1
        assert list(cache.flush_cached_objects(force_all=True)) == ["actor A"]  # the search ended
        assert cache.num_cached_objects == 0

    default = tune_controller._ObjectCache(may_keep_one=True)
    assert default.cache_object("1 CPU", "actor A") and not default.cache_object("1 CPU", "actor B")
