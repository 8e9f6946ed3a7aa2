"""Where a restart schedule ends, checked against the schedule itself."""

import math

import pytest

from kdtune.train.optim import cosine_restarts, restart_cycle_end, schedule_warning


@pytest.mark.parametrize(
    "total,first,t_mul,start,done",
    [(20, 5, 2, 15, 0.25), (30, 10, 2, 10, 1.0), (20, 5, 1, 15, 1.0), (20, 3, 1, 18, 2 / 3), (5, 10, 2, 0, 0.5),
     (20, 20 / 7, 2, 60 / 7, 1.0), (7, 1, 2, 3, 1.0)],
)  # fmt: skip
def test_restart_cycle_end(total, first, t_mul, start, done):
    got_start, got_done, _ = restart_cycle_end(total, first, t_mul)
    assert math.isclose(got_start, start) and math.isclose(got_done, done)
    if done < 1:  # the learning rate the run ends with is the one the schedule gives just before the end
        level = 0.5 * (1 + math.cos(math.pi * done))
        assert math.isclose(cosine_restarts(total - 1e-9, total, first, t_mul), level, abs_tol=1e-6)
    else:
        assert cosine_restarts(total - 1e-9, total, first, t_mul) < 1e-6


def test_schedule_warning():
    assert schedule_warning("exponential", {"decay_rate": 0.9}, 20) is None
    assert schedule_warning("cosine", {}, 7) is None
    text = schedule_warning("cosine_restarts", {"first_epochs": 4.0, "t_mul": 2.0, "alpha": 0.1}, 30)
    assert text is not None and "restarts at epoch 28 of 30 and ends at 0.99 of its peak" in text
    assert "use first_epochs 2, t_mul 2 (4 cycles) or first_epochs 5, t_mul 1 (6 cycles)" in text  # 2+4+8+16 = 30
    for fix in ((2.0, 2.0), (5.0, 1.0)):
        assert schedule_warning("cosine_restarts", {"first_epochs": fix[0], "t_mul": fix[1]}, 30) is None
