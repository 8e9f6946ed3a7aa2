"""``--set KEY=VALUE`` overrides of a sweep file (:func:`apply_overrides`), and whom an error after them is on
(:func:`blame_overrides`): the flag that wrote the field, the combination of flag and file, or the file alone."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from kdtune.config import load_yaml
from kdtune.errors import KdtuneError, SpecError


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=VALUE`` overrides (VALUE parsed as YAML) to a sweep mapping; ``VALUE`` null
    removes the field, so its default applies (e.g. ``grid.students=null`` before setting ``grid.pairs``)."""
    out: dict[str, Any] = dict(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError("--set", item, "expected KEY=VALUE with a dotted key, e.g. train.epochs=3")
        try:
            value = load_yaml(text)
        except yaml.YAMLError:
            raise SpecError("--set", key, f"value {text!r} is not valid YAML") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, Mapping):
                raise SpecError("--set", key, f"{part!r} is not a mapping in the sweep file")
            node[part] = child = dict(child)
            node = child
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return out


def _under(field: str, key: str) -> bool:
    """Whether error field ``field`` is the dotted ``key`` or inside the value set there."""
    return field == key or field.startswith((key + ".", key + "["))


def blame_overrides(error: SpecError, overrides: Sequence[str], check: Callable[[], Any]) -> SpecError:
    """Who an error after ``--set`` is on: the ``--set`` flag that wrote that field (or a path to it that does
    not exist), the combination (the file alone does not fail so), or else the file. ``check`` validates the file alone."""
    keys = [o.partition("=")[0] for o in overrides]

    def on_set(field: str) -> SpecError:  # an unknown key is named: the user typed it, it may be a typo
        msg = error.message
        if msg.startswith("unknown key;"):
            msg = f"unknown key {error.field.rsplit('.', 1)[-1]!r}{msg[len('unknown key') :]}"
        return SpecError("--set", field, msg)

    if any(_under(error.field, k) for k in keys):
        return on_set(error.field)
    try:
        check()
    except KdtuneError as alone:  # e.g. a data error of the file alone: not this error
        if isinstance(alone, SpecError) and (alone.field, alone.message) == (error.field, error.message):
            return error  # the file fails so without --set too
    parents = [k for k in keys if error.field and k.startswith(error.field + ".")]
    if parents:  # e.g. trian.epochs: 'trian' is not a section; models.MLP.params.hidden=[-3]: the model fails
        return on_set(parents[0] if error.message.startswith("unknown key;") else error.field)
    return SpecError(f"{error.source} with --set", error.field, error.message)
