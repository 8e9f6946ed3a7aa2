"""The sweep-file reference, docs/sweep-reference.md (``kdtune schema --markdown``), written from the JSON Schema of
the models that read sweep files, so the reference and the code cannot disagree (tests/test_sweep_reference.py).

Every field is a row ``| field | type | default | description |`` under its dotted path. A union of mappings told
apart by a key lists the fields all members take, then each member's own. A mapping found at several places is
written out once, where it is shallowest, and linked from the others. Fields in the models' order, members in the schema's.
"""

from __future__ import annotations

import html
import json
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from markdown.extensions.toc import slugify

from kdtune.validation import resolve_ref

Node = Mapping[str, Any]

COMMAND = "kdtune schema --markdown > docs/sweep-reference.md"
KEY_NAMES = {"models": "label"}  # what the keys of the mapping at a dotted path stand for; elsewhere <key>
FIELD = "field"  # stands for any of several fields of one mapping that hold the same mapping
_TYPE_WORDS = ("string", "integer", "number", "boolean", "null", "list", "mapping", "any value", "empty mapping")
_BOUNDS = (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤"))


@dataclass(frozen=True)
class _Member:
    """One mapping a field may hold: its schema (``$ref`` resolved), its ``$defs`` name and what tells it apart."""

    node: Node
    name: str
    label: str


@dataclass(frozen=True)
class _Target:
    """A mapping, or a union of mappings, that a field holds at ``path`` (inside the union members ``qual``)."""

    key: str  # what it is: the same key anywhere is written out once
    path: str
    qual: str
    members: tuple[_Member, ...]
    by: str | None  # the key that picks a member of a union
    shared: str = ""  # the fields that hold it, where it stands for several

    @property
    def heading(self) -> str:
        return _heading(self.path, self.qual)


@dataclass(frozen=True)
class _Row:
    path: str  # the dotted path, ending in the name
    name: str
    node: Node
    required: bool


@dataclass(frozen=True)
class _Block:
    """A heading, a few lines about it and the table of its fields."""

    heading: str
    intro: tuple[str, ...]
    rows: tuple[_Row, ...]
    qual: str


def sweep_reference_markdown(schema: Mapping[str, Any] | None = None) -> str:
    """The sweep-file reference page (docs/sweep-reference.md) written from ``schema``, by default the JSON Schema of
    sweep files (:func:`kdtune.spec.sweepfile.json_schema`): one table of the top-level fields, then a section for each of them
    that holds a mapping, with a row for every field at every level (type, default, description)."""
    if schema is None:
        from kdtune.spec.sweepfile import json_schema

        schema = json_schema()
    return _Reference(schema).page()


def slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading written in Markdown; GitHub gives the same one to the
    headings of this page (no runs of spaces or hyphens, no non-ASCII letters)."""
    return slugify(re.sub(r"`([^`]*)`", r"\1", heading), "-")


# ---------------------------------------------------------------- Markdown pieces


def _code(text: str) -> str:
    """``text`` as inline code that is safe in a table cell: a ``|`` (which would split the cell on GitHub, and which
    ``\\|`` would show with its backslash in MkDocs) as an HTML entity."""
    if "|" in text or "`" in text:
        return f"<code>{html.escape(text).replace('|', '&#124;')}</code>"
    return f"`{text}`"


def _prose(text: str) -> str:
    """A description as one line of a table cell: ``|`` escaped, ``<`` not read as HTML; code spans kept."""
    out = []
    for i, part in enumerate(re.split(r"(`+[^`]*?`+)", " ".join(text.split()))):
        if i % 2:  # a code span
            inner = part.strip("`")
            out.append(_code(inner) if "|" in inner else part)
        else:
            out.append(part.replace("|", r"\|").replace("<", "&lt;"))
    return "".join(out)


def _value(v: Any) -> str:
    """A default or a choice as it is written in YAML (flow style)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        plain = re.fullmatch(r"[A-Za-z_./][\w./+-]*", v) and v not in ("null", "true", "false", "yes", "no", "on", "off")
        return v if plain else json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def _heading(path: str, qual: str) -> str:
    return f"`{path}`" + (f" ({qual})" if qual else "")


def _canon(node: Any) -> str:
    return json.dumps(node, sort_keys=True)


def _without(node: Node, *keys: str) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in keys}


def _alternatives(node: Node) -> list[Node]:
    return node.get("anyOf") or node.get("oneOf") or []


def _pattern_name(pattern: str) -> str:
    """The field name a ``patternProperties`` pattern stands for: ``^schedule\\.`` → ``schedule.*``."""
    m = re.fullmatch(r"\^((?:[\w-]|\\\.)*)", pattern)
    return m.group(1).replace("\\.", ".") + "*" if m else pattern


# ---------------------------------------------------------------- the page


class _Reference:
    """The page of one JSON Schema: first, breadth first, where each mapping is written out (its shallowest place);
    then the page, depth first."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.root = _Block("Top level", self._about(schema), self._rows(schema, ""), "")
        self.homes: dict[str, str] = {}  # target key → the heading it is written out under
        self.written: set[str] = set()
        queue = deque([self.root])
        while queue:
            for _, targets in self._row_targets(queue.popleft()):
                for target in targets:
                    if target.key not in self.homes:
                        self.homes[target.key] = target.heading
                        queue.extend(self._blocks(target))

    # ---- the schema

    def _is_model(self, node: Node) -> bool:
        """A mapping with named fields (a pydantic model), as opposed to a free mapping or a value."""
        node, _ = resolve_ref(node, self.defs)
        return node.get("type", "object") == "object" and bool(node.get("properties") or node.get("patternProperties"))

    def _leaves(self, node: Node, disc: Mapping[str, Any] | None = None) -> Iterator[tuple[Node, str | None]]:
        """The members of ``node``'s (nested) unions, each with its tag (``name: digits``) where a discriminator names it."""
        alts = _alternatives(resolve_ref(node, self.defs)[0])
        if not alts:
            tags = [k for k, ref in (disc or {}).get("mapping", {}).items() if ref == node.get("$ref")]
            yield node, f"{disc['propertyName']}: {tags[0]}" if disc and tags else None
            return
        for alt in alts:
            yield from self._leaves(alt, resolve_ref(node, self.defs)[0].get("discriminator"))

    @staticmethod
    def _label(node: Node, name: str, tag: str | None, others: Sequence[Node]) -> str:
        """What tells a member of a union apart: its discriminator tag, a constant field, a key only it requires."""
        props = node.get("properties", {})
        const = [f"{k}: {_value(p['const'])}" for k, p in props.items() if "const" in p]
        own = [k for k in node.get("required", []) if not any(k in o.get("properties", {}) for o in others if o is not node)]
        return tag or (const or own or [name or node.get("title", "mapping")])[0]

    def _targets(self, node: Node, path: str, qual: str) -> list[_Target]:
        """The mappings with named fields that a field of schema ``node`` at ``path`` holds, in the schema's order: a
        union of them as one target, where its first member is; those of a list at ``path[]``, of a mapping at
        ``path.<key>``."""
        out: list[_Target | None] = []
        group: list[tuple[Node, str, str | None]] = []
        for leaf, tag in self._leaves(node):
            resolved, name = resolve_ref(leaf, self.defs)
            if self._is_model(resolved):
                out += [] if group else [None]
                group.append((resolved, name, tag))
            elif resolved.get("type") == "array" and isinstance(resolved.get("items"), Mapping):
                out += self._targets(resolved["items"], f"{path}[]", qual)
            elif resolved.get("type") == "object" and isinstance(resolved.get("additionalProperties"), Mapping):
                out += self._targets(resolved["additionalProperties"], self._keys(path), qual)
        if group:
            nodes = [n for n, _, _ in group]
            members = tuple(_Member(n, name, self._label(n, name, tag, nodes)) for n, name, tag in group)
            picks = {m.label.split(": ", 1)[0] if ": " in m.label else None for m in members}
            by = picks.pop() if len(members) > 1 and len(picks) == 1 else None
            key = ",".join(name or _canon(n) for n, name, _ in group)
            out[out.index(None)] = _Target(key, path, qual, members, by)
        return [t for t in out if t is not None]

    @staticmethod
    def _keys(path: str) -> str:
        return f"{path}.<{KEY_NAMES.get(path, 'key')}>"

    @staticmethod
    def _rows(node: Node, path: str) -> tuple[_Row, ...]:
        """A row for each field of the mapping ``node`` at ``path``; a pattern of names (``^schedule\\.``) is one."""
        prefix = f"{path}." if path else ""
        required = set(node.get("required", []))
        fields = [(k, p, k in required) for k, p in node.get("properties", {}).items()]
        fields += [(_pattern_name(k), p, False) for k, p in node.get("patternProperties", {}).items()]
        return tuple(_Row(prefix + k, k, p, r) for k, p, r in fields)

    def _blocks(self, t: _Target) -> list[_Block]:
        """The subsections of a target: one for a mapping; for a union, one with the fields all members take (their
        constant field, e.g. ``name``, as one row of its values), then one for each member with fields of its own."""
        where = (f"`<{FIELD}>` is any of: {_prose(t.shared)}.",) if t.shared else ()
        if len(t.members) == 1:
            m = t.members[0]
            return [_Block(t.heading, (*where, *self._about(m.node)), self._rows(m.node, t.path), t.qual)]
        props = [m.node.get("properties", {}) for m in t.members]
        first = props[0]
        same = [k for k in first if all(_canon(p.get(k)) == _canon(first[k]) for p in props)]
        tags = [
            k
            for k in first
            if k not in same
            and all("const" in p.get(k, {}) and _without(p[k], "const") == _without(first[k], "const") for p in props)
        ]

        def tag_row(k: str) -> _Row:  # the constant field of every member: one row, its values
            node = {**_without(first[k], "const"), "enum": [p[k]["const"] for p in props]}
            return _Row(f"{t.path}.{k}" if t.path else k, k, node, all(k in m.node.get("required", []) for m in t.members))

        rows = [tag_row(k) for k in tags]
        rows += [r for r in self._rows(t.members[0].node, t.path) if r.name in same]
        labels = _prose(", ".join(m.label.split(": ", 1)[-1] if t.by else m.label for m in t.members))
        picked = f"picked by {_code(t.by)}" if t.by else "told apart by their keys"
        intro = f"One of {len(t.members)} mappings, {picked}: {labels}." + (
            " The fields all of them take:" if rows else " Each one's fields:"
        )
        blocks = [_Block(t.heading, (*where, intro), tuple(rows), t.qual)]
        for m in t.members:
            own = tuple(r for r in self._rows(m.node, t.path) if r.name not in (*same, *tags))
            if own:
                qual = ", ".join(q for q in (t.qual, m.label) if q)
                blocks.append(_Block(_heading(t.path, qual), self._about(m.node), own, qual))
        return blocks

    def _row_targets(self, block: _Block) -> list[tuple[_Row, list[_Target]]]:
        """The targets of every row of ``block``; one that several rows hold (every setting of a search space holds a
        distribution) is at ``<field>`` in place of the row's name, e.g. ``tune.space.<key>.<field>``."""
        found = [(row, self._targets(row.node, row.path, block.qual)) for row in block.rows]
        names: dict[str, dict[str, None]] = {}
        for row, targets in found:
            for t in targets:
                names.setdefault(t.key, {})[row.name] = None

        def moved(row: _Row, t: _Target) -> _Target:  # one that several rows hold: at <field> beside the row
            where = f"{row.path[: -len(row.name)]}<{FIELD}>" + t.path[len(row.path) :]
            return replace(t, path=where, shared=", ".join(names[t.key])) if len(names[t.key]) > 1 else t

        return [(row, [moved(row, t) for t in targets]) for row, targets in found]

    @staticmethod
    def _about(node: Node) -> tuple[str, ...]:
        return (_prose(node["description"]),) if node.get("description") else ()

    # ---- types in words

    def _type(self, node: Node, path: str) -> str:
        """What ``node`` allows, in a few words (Markdown, safe in a table cell)."""
        resolved, _ = resolve_ref(node, self.defs)
        alts = _alternatives(resolved)
        if not alts:
            return self._link(node, path) if self._is_model(resolved) else self._one(resolved, path)
        arrays = [a for a in alts if resolve_ref(a, self.defs)[0].get("type") == "array"]
        if len(alts) == 2 and len(arrays) == 1:  # an item or a list of them
            array, item = resolve_ref(arrays[0], self.defs)[0], next(a for a in alts if a is not arrays[0])
            if _canon(array.get("items")) == _canon(item):
                return f"{self._type(item, path)} or {self._array(array, path)}"
        texts = [  # the mappings with named fields, all together: one link
            self._link(node, path) if all(self._is_model(leaf) for leaf, _ in self._leaves(alt)) else self._type(alt, path)
            for alt in alts
        ]
        texts = list(dict.fromkeys(texts))
        if "number" in texts and "integer" in texts:
            texts.remove("integer")
        return " or ".join(sorted(texts, key=lambda t: t == "null"))

    def _link(self, node: Node, path: str) -> str:
        """A mapping (or a union of them) that ``node`` holds at ``path``: a link to where its fields are."""
        target = next(t for t in self._targets(node, path, "") if t.path == path)
        heading = self.homes.get(target.key, target.heading)
        return f"mapping ([{heading.split(' (')[0]}](#{slug(heading)}))"

    def _one(self, n: Node, path: str) -> str:
        if "const" in n:  # the value itself, e.g. auto in "integer ≥ 1 or auto"
            value = _value(n["const"])
            return _prose(json.dumps(value) if value in _TYPE_WORDS else value)
        if "enum" in n:
            return "one of: " + ", ".join(_prose(_value(v)) for v in n["enum"])
        t = n.get("type")
        if t in ("integer", "number"):
            bounds = {op: n[k] for k, op in _BOUNDS if k in n}
            low = next(((op, v) for op, v in bounds.items() if op in (">", "≥")), None)
            high = next(((op, v) for op, v in bounds.items() if op in ("<", "≤")), None)
            if low and high:
                left, right = "(" if low[0] == ">" else "[", ")" if high[0] == "<" else "]"
                return f"{t} in {left}{_value(low[1])}, {_value(high[1])}{right}"
            return " ".join([t, *(f"{op} {_value(v)}" for op, v in bounds.items())])
        if t == "string":
            return "string" + (f" (pattern {_code(n['pattern'])})" if "pattern" in n else "")
        if t == "array":
            return self._array(n, path)
        if t == "object":
            values = n.get("additionalProperties")
            if isinstance(values, Mapping):
                size = "non-empty mapping" if n.get("minProperties", 0) >= 1 else "mapping"
                inner = self._keys(path)
                return f"{size} {_code(inner.rsplit('.', 1)[-1])} → {self._type(values, inner)}"
            return "empty mapping" if values is False else "mapping"
        if t in ("boolean", "null"):
            return t
        return "any value"

    def _array(self, n: Node, path: str) -> str:
        items = n.get("items") or {}
        item = self._type(items, f"{path}[]") if items else ""
        if " or " in item:
            item = f"({item})"
        low, high = n.get("minItems", 0), n.get("maxItems")
        text = f"list of {item}" if item else "list"
        if item and low >= 1 and high is None:
            return "non-empty " + text
        if high is not None:
            text += f" ({low} items)" if low == high else f" ({low} to {high} items)"
        elif low > 1:
            text += f" (at least {low} items)"
        return text

    # ---- writing

    def _cells(self, row: _Row) -> list[str]:
        default = _code(_value(row.node["default"])) if "default" in row.node else "required" if row.required else "—"
        return [_code(row.path), self._type(row.node, row.path), default, _prose(row.node.get("description", ""))]

    def _write(self, block: _Block, level: int, lead: Sequence[str] = (), nested: bool = True) -> list[str]:
        out = [f"{'#' * min(level, 6)} {block.heading}", ""]
        for line in dict.fromkeys((*lead, *block.intro)):
            out += [line, ""]
        if block.rows:
            out += ["| field | type | default | description |", "| --- | --- | --- | --- |"]
            out += ["| " + " | ".join(self._cells(r)) + " |" for r in block.rows] + [""]
        for _, targets in self._row_targets(block) if nested else ():
            out += self._write_targets(targets, level + 1)
        return out

    def _write_targets(self, targets: Sequence[_Target], level: int, lead: Sequence[str] = ()) -> list[str]:
        """The subsections of ``targets`` (the mappings a row holds) that are written out here and not elsewhere."""
        out: list[str] = []
        for target in targets:
            if self.homes[target.key] != target.heading or target.heading in self.written:
                continue
            self.written.add(target.heading)
            head, *members = self._blocks(target)
            out += self._write(head, level, lead)
            for block in members:
                out += self._write(block, level + 1)
        return out

    def page(self) -> str:
        out = [
            "# Sweep-file reference",
            "",
            "This page is generated from the pydantic models that read sweep files (the same models that give the JSON "
            f"Schema, `kdtune schema`), by `{COMMAND}`: do not edit it by hand. It lists every field of a sweep file "
            "with its type, its default and its description; [Sweep files](sweep-files.md) shows them section by "
            "section with examples.",
            "",
            "A field is named by its dotted path (`grid.temperature`, `tune.asha.grace_period`); `<label>` stands for "
            "a model's label, `<key>` for any key of a mapping, `[]` for every item of a list and `<field>` for any of "
            "several fields that hold the same kind of mapping. A nested mapping has a subsection of its own. Where a "
            "mapping is one of several told apart by a key (a data set by its `name`, a model by its `arch`), the fields "
            "all of them take come first, then each one's own fields under its name. A mapping that appears at several "
            "places (`train` inside every model) is described once and linked from the others.",
            "",
        ]
        out += self._write(self.root, 2, nested=False)  # then a section for each top-level field holding a mapping
        for row, targets in self._row_targets(self.root):
            targets = [t for t in targets if self.homes[t.key] == t.heading]
            if not targets:
                continue
            lead = [_prose(row.node["description"])] if row.node.get("description") else []
            if len(targets) == 1 and targets[0].path == row.path:
                out += self._write_targets(targets, 2, lead)
            else:
                out += [f"## {_heading(row.path, '')}", "", *(line for text in lead for line in (text, ""))]
                out += self._write_targets(targets, 3)
        return "\n".join(out).rstrip("\n") + "\n"
