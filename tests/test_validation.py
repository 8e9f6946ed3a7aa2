"""kdtune.validation: pydantic's errors said as kdtune's one line, on small models written for the test."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from kdtune.errors import SpecError
from kdtune.validation import Float, Int, params_model, tagged_union, validate


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: tagged_union({"string": Any, "object": Inner}) = 1
    y: Int | Float = 0


def _line(raw: dict[str, Any], model: type = Outer) -> str:
    with pytest.raises(SpecError) as e:
        validate(model, raw, "f.yaml")
    return str(e.value)


def test_an_untyped_union_member_does_not_take_another_members_error():
    assert _line({"x": {"sise": 1}}) == "f.yaml: x.sise: unknown key; allowed here: size"


def test_a_value_no_member_of_a_smart_union_takes_names_them_all():
    assert _line({"y": "a"}) == "f.yaml: y: must be an integer or a number, got str 'a'"


def _schedule(epoch: int, total_epochs: int, milestones: tuple[int, ...] = (3, 6), gamma: float = 0.5) -> float:
    return gamma


def test_bounds_apply_to_numbers_only():
    """A component with bounds (a schedule): numbers not named are > 0; a tuple default takes a list, unbounded."""
    model = params_model("steps", "schedule", _schedule, ("epoch", "total_epochs"), bounds={})
    assert model(milestones=[2, 4]).milestones == [2, 4]
    assert _line({"gamma": 0}, model) == "f.yaml: gamma: must be a number > 0, got 0"
    free = params_model("steps", "schedule", _schedule, ("epoch", "total_epochs"))
    assert free(gamma=-1.0).gamma == -1.0


def test_a_bound_is_said_in_words_with_the_kind_of_the_value():
    class Described(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: Int = Field(1, ge=1, description="a count")

    assert _line({"n": 0}, Described) == "f.yaml: n: must be an integer >= 1, got int 0"
