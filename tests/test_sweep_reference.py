"""The sweep-file reference (docs/sweep-reference.md) is written from the pydantic models' JSON Schema by
``kdtune schema --markdown``: the shipped page is what the models give now, every field of every mapping is a row
under its dotted path, and a row says what a hand-written model says (type, default, description)."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from kdtune.cli import main
from kdtune.spec.docpage import COMMAND, FIELD, KEY_NAMES, slug, sweep_reference_markdown
from kdtune.spec.sweepfile import json_schema

PAGE = Path(__file__).resolve().parents[1] / "docs" / "sweep-reference.md"


@pytest.fixture(scope="module")
def page() -> str:
    return sweep_reference_markdown()


def test_the_shipped_page_is_what_the_models_give(page):
    assert PAGE.read_text() == page, f"docs/sweep-reference.md is out of date with the sweep models: run `{COMMAND}`"


def test_kdtune_schema_markdown_prints_it(page, capsys):
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == page


def test_the_page_says_it_is_generated(page):
    intro = page.split("\n## ", 1)[0]
    assert COMMAND in intro and "do not edit it by hand" in intro


def _rows(page: str) -> dict[str, list[str]]:
    """The table rows of ``page`` by their field (the dotted path in the first cell): the other cells."""
    out = {}
    for line in page.splitlines():
        m = re.match(r"\| `([^`]+)` \| (.*) \|$", line)
        if m:
            out[m.group(1)] = re.split(r"(?<!\\) \| ", m.group(2))
    return out


def _ref_paths(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """($defs name, dotted path) of every definition ``node`` (a field at ``path``) refers to: through unions, the items
    of lists (``path[]``) and the values of mappings (``path.<key>``)."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        yield node["$ref"].rsplit("/", 1)[-1], path
    for alt in node.get("anyOf", []) + node.get("oneOf", []):
        yield from _ref_paths(alt, path)
    yield from _ref_paths(node.get("items"), f"{path}[]")
    yield from _ref_paths(node.get("additionalProperties"), f"{path}.<{KEY_NAMES.get(path, 'key')}>")


def _field_paths(schema: dict[str, Any]) -> set[str]:
    """The dotted path of every field of every mapping of ``schema``, walked breadth first (in field order), each
    definition at the first place it is found; one that several fields of a mapping hold at ``<field>`` of it."""
    defs, seen, paths = schema["$defs"], set(), set()
    queue = deque([(schema, "")])
    while queue:
        node, path = queue.popleft()
        found = [(name, p, field) for field, sub in node.get("properties", {}).items() for name, p in _ref_paths(sub, field)]
        found += [(name, p, key) for key, sub in node.get("patternProperties", {}).items() for name, p in _ref_paths(sub, key)]
        holders = {name: {f for n, _, f in found if n == name} for name, _, _ in found}
        prefix = f"{path}." if path else ""
        paths |= {prefix + field for field in node.get("properties", {})}
        for name, p, field in found:
            if name in seen:
                continue
            seen.add(name)
            where = prefix + (f"<{FIELD}>" + p[len(field) :] if len(holders[name]) > 1 else p)
            queue.append((defs[name], where))
    return paths


def test_every_field_of_every_mapping_is_a_row_at_its_dotted_path(page):
    expected = _field_paths(json_schema())
    rows = set(_rows(page))
    assert len(expected) > 150
    missing = sorted(expected - rows)
    assert not missing, f"fields of the sweep models missing from the reference: {missing}"
    extra = sorted(p for p in rows - expected if not p.endswith("*"))
    assert not extra, f"rows that are no field of the sweep models: {extra}"
    for path in ("grid.temperature", "tune.asha.grace_period", "data.val_size", "data.params.test_fraction",
                 "models.<label>.params.hidden", "data.eval_sets[].corruption", "train.schedule.alpha",
                 "tune.space.<key>.<field>.loguniform", "tune.space.<key>.schedule.*", "grid.pairs[].teacher"):  # fmt: skip
        assert path in rows, path


def test_every_top_level_section_has_its_fields_under_its_name(page):
    """Independently of the walk above: each section that is one mapping (train, grid, …) lists all its fields."""
    schema = json_schema()
    sections = [h[3:] for h in page.splitlines() if h.startswith("## ")]
    rows = _rows(page)
    for name, node in schema["properties"].items():
        assert name in rows
        refs = [p["$ref"] for p in [node, *node.get("anyOf", [])] if "$ref" in p]
        if len(refs) != 1:
            continue
        assert f"`{name}`" in sections
        for field in schema["$defs"][refs[0].rsplit("/", 1)[-1]]["properties"]:
            assert f"{name}.{field}" in rows


def test_defaults_and_answers_newcomers_look_for(page):
    rows = _rows(page)
    assert rows["grid.temperature"][:2] == ["number > 0 or non-empty list of number > 0", "`[1.0]`"]
    assert rows["data.val_size"][:2] == ["number in (0, 1) or integer ≥ 1", "`0.1`"]
    assert rows["train.select"][0] == "one of: last, val_accuracy, val_nll"
    assert rows["tune.asha.grace_period"][:2] == ["integer ≥ 1", "`2`"]
    assert rows["name"][0] == "string (pattern `^[A-Za-z][A-Za-z0-9_.+-]*$`) or null"


def test_headings_are_unique_and_every_link_on_the_page_has_its_heading(page):
    headings = [h.lstrip("#").strip() for h in re.findall(r"^#{1,6} .+$", page, re.M)]
    anchors = [slug(h) for h in headings]
    assert len(set(anchors)) == len(anchors), "two headings with one anchor"
    links = set(re.findall(r"\]\(#([^)]+)\)", page))
    assert links and links <= set(anchors), sorted(links - set(anchors))


def test_slug_is_the_anchor_mkdocs_gives():
    toc = pytest.importorskip("markdown.extensions.toc")
    for heading in ("`models.<label>.params` (arch: mlp)", "`data.eval_sets[]` (corruption: scale)", "Top level"):
        text = re.sub(r"`([^`]*)`", r"\1", heading)
        assert slug(heading) == toc.slugify(text, "-")


# ---------------------------------------------------------------- the renderer against a hand-written model


class Inner(BaseModel):
    rate: float = Field(0.5, ge=0, lt=1, description="A rate | a <fraction>, `a|b`.")


class First(BaseModel):
    kind: Literal["a"] = Field(description="The kind.")
    size: int = Field(3, ge=1, description="A size.")


class Second(BaseModel):
    kind: Literal["b"] = Field(description="The kind.")


class Tiny(BaseModel):
    """A tiny file."""

    inner: Inner = Field(description="A mapping.")
    pick: Annotated[First | Second, Field(discriminator="kind")] = Field(description="One of two.")
    mode: Literal["x", "y"] = Field("x", description="A mode.")
    sizes: list[int] | None = Field(None, min_length=1, description="Sizes.")
    tags: dict[str, int] = Field({}, description="")


def test_rows_of_a_hand_written_model():
    page = sweep_reference_markdown(TypeAdapter(Tiny).json_schema())
    lines = page.splitlines()
    for row in [
        "| `inner` | mapping ([`inner`](#inner)) | required | A mapping. |",
        "| `pick` | mapping ([`pick`](#pick)) | required | One of two. |",
        "| `mode` | one of: x, y | `x` | A mode. |",
        "| `sizes` | non-empty list of integer or null | `null` | Sizes. |",
        "| `tags` | mapping `<key>` → integer | `{}` |  |",
        r"| `inner.rate` | number in [0, 1) | `0.5` | A rate \| a &lt;fraction>, <code>a&#124;b</code>. |",
        "| `pick.kind` | one of: a, b | required | The kind. |",
        "| `pick.size` | integer ≥ 1 | `3` | A size. |",
    ]:
        assert row in lines, row
    headings = [line for line in lines if line.startswith("#")]
    assert headings == ["# Sweep-file reference", "## Top level", "## `inner`", "## `pick`", "### `pick` (kind: a)"]
    assert "One of 2 mappings, picked by `kind`: a, b." in page and "A tiny file." in page
