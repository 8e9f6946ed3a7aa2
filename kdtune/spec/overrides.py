"""``--set KEY=VALUE`` overrides of a sweep file (:func:`apply_overrides`), and whom an error after them is on
(:func:`blame_overrides`): the flag that wrote the field, the combination of flag and file, or the file alone."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from kdtune.errors import KdtuneError, SpecError
from kdtune.yamlio import load_yaml


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
        *parents, last = key.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if child is not None and not isinstance(child, Mapping):
                raise SpecError("--set", key, f"{part!r} is not a mapping in the sweep file")
            node[part] = dict(child or {})
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def blame_overrides(error: SpecError, overrides: Sequence[str], check: Callable[[], Any]) -> SpecError:
    """Who each problem of an error after ``--set`` is on: the ``--set`` flag that wrote that field (or a path to it
    that does not exist), the file (it fails so without ``--set`` too), or the combination of both. ``check``
    validates the file alone."""
    keys = [o.partition("=")[0] for o in overrides]
    alone: set[tuple[str, str]] | None = None

    def on_set(p: SpecError, field: str) -> SpecError:  # an unknown key is named: the user typed it, it may be a typo
        msg = p.message
        if msg.startswith("unknown key;"):
            msg = f"unknown key {p.field.rsplit('.', 1)[-1]!r}{msg[len('unknown key') :]}"
        return SpecError("--set", field, msg)

    def blame(p: SpecError) -> SpecError:
        nonlocal alone
        if any(p.field == k or p.field.startswith((k + ".", k + "[")) for k in keys):  # the field a flag set, or inside it
            return on_set(p, p.field)
        if alone is None:
            try:
                check()
                alone = set()
            except SpecError as e:
                alone = {(q.field, q.message) for q in e.problems}
            except KdtuneError:  # e.g. a data error of the file alone: not these problems
                alone = set()
        if (p.field, p.message) in alone:
            return SpecError(p.source, p.field, p.message)  # the file fails so without --set too
        parents = [k for k in keys if p.field and k.startswith(p.field + ".")]
        if parents:  # e.g. trian.epochs: 'trian' is not a section; models.MLP.params.hidden=[-3]: the model fails
            return on_set(p, parents[0] if p.message.startswith("unknown key;") else p.field)
        return SpecError(f"{p.source} with --set", p.field, p.message)

    return SpecError.of([blame(p) for p in error.problems])
