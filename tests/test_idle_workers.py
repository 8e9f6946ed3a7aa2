"""Idle Tune workers are kept between stages (one Tuner runs every stage), and let go when the search ends."""

from kdtune.execute import _idle_workers_kept


def test_tunes_actor_cache_keeps_every_idle_worker_inside_the_context_only():
    from ray.tune.execution import tune_controller

    with _idle_workers_kept():
        cache = tune_controller._ObjectCache(may_keep_one=True)  # what Tune's controller makes in fit()
        # no trial is pending (max 0): Tune's own cache would keep one actor and stop the second
        assert cache.cache_object("1 CPU", "actor A") and cache.cache_object("1 CPU", "actor B")
        assert list(cache.flush_cached_objects()) == []  # Tune flushes every step: both stay
        assert cache.pop_cached_object("1 CPU") == "actor A" and cache.num_cached_objects == 1
        assert cache.cache_object("1 CPU", "actor A")
        assert sorted(cache.flush_cached_objects(force_all=True)) == ["actor A", "actor B"]  # the search ended
        assert cache.num_cached_objects == 0

    default = tune_controller._ObjectCache(may_keep_one=True)
    assert default.cache_object("1 CPU", "actor A") and not default.cache_object("1 CPU", "actor B")
