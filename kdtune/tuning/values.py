"""Values of tuned settings applied to a trial's training and loss settings.

One function serves both a search trial (values sampled by Optuna) and ``hparams: tuned`` (values read
from ``tuned/*.yaml``), so the same values give the same trial ids: a configuration trained during a
search is found finished when the sweep runs with its tuned values.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from kdtune.distill import LossSpec
from kdtune.optim import SCHEDULES
from kdtune.spec import ScheduleSpec, TrainSpec, freeze, with_selection
from kdtune.tuning.space import INT_SETTINGS, LOSS_SETTINGS, TRAIN_SETTINGS


def _schedule_default(name: str, param: str) -> Any:
    p = inspect.signature(SCHEDULES.get(name)).parameters.get(param)
    return None if p is None else p.default


def apply_values(train: TrainSpec, loss: LossSpec, values: Mapping[str, Any]) -> tuple[TrainSpec, LossSpec]:
    """``train`` and ``loss`` with ``values`` (setting → value, e.g. ``lr``, ``schedule.decay_rate``,
    ``temperature``) put in; numbers take the type of the setting (whole numbers for epochs). The selection rule
    follows the (possibly tuned) epochs: :func:`kdtune.spec.with_selection`."""
    fields: dict[str, Any] = {}
    loss_fields: dict[str, Any] = {}
    schedule = dict(train.schedule.params)
    for key, value in values.items():
        if key in TRAIN_SETTINGS:
            if key in INT_SETTINGS:
                fields[key] = int(value)
            elif key == "optimizer":
                fields[key] = str(value)
            else:
                fields[key] = float(value)
        elif key in LOSS_SETTINGS:
            loss_fields[key] = float(value)
        elif key.startswith("schedule."):
            param = key.split(".", 1)[1]
            default = _schedule_default(train.schedule.name, param)
            schedule[param] = float(value) if isinstance(default, float) else value
        else:
            raise ValueError(f"{key!r} is not a setting kdtune can tune")
    if schedule != dict(train.schedule.params):
        fields["schedule"] = ScheduleSpec(train.schedule.name, freeze(schedule))
    loss = dataclasses.replace(loss, **loss_fields)
    return with_selection(dataclasses.replace(train, **fields), loss), loss
