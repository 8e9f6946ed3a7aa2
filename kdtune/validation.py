"""The building blocks of kdtune's pydantic models (strict scalars, tagged unions, registry-driven models of a
component's keyword parameters) and pydantic's validation errors said as kdtune's one line: the field path as a
person writes it, what was given and what is allowed, read from the model's own JSON Schema, so that no pydantic
wording or URL reaches the user.

Sweep files (:mod:`kdtune.spec.sweepfile`) are its main user; any YAML file read into a pydantic model can use
:func:`validate` to get the same one-line errors.
"""

import functools
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from kdtune.errors import SpecError

CFG = ConfigDict(extra="forbid", allow_inf_nan=False, regex_engine="python-re")
Int, Float, Str, Bool = (Annotated[t, Strict()] for t in (int, float, str, bool))
PosFloat = Annotated[Float, Field(gt=0)]
NonNeg = Annotated[Float, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]
PosInt = Annotated[Int, Field(ge=1)]
Seed = Annotated[Int, Field(ge=0)]


class StrictModel(BaseModel):
    """A frozen model that takes no key it does not name (the sections of sweep, study and reference files)."""

    model_config = CFG | ConfigDict(frozen=True)


_TAGS = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object", type(None): "null"}


def yaml_kind(v: Any) -> str:
    """The YAML kind of ``v``, as JSON Schema names it: what picks the member of a union below."""
    return _TAGS.get(type(v), "other")


def tagged_union(members: Mapping[str, Any], allowed: str | None = None, pick: Callable[[Any], str] = yaml_kind) -> Any:
    """One of ``members`` (YAML kind → type), picked by the kind of the value; ``allowed`` says it in words."""
    extra = {"json_schema_extra": {"x-allowed": allowed}} if allowed else {}
    return Annotated[Union[tuple(Annotated[t, Tag(k)] for k, t in members.items())], Discriminator(pick), Field(**extra)]  # noqa: UP007


def _one_or_list(v: Any) -> str:
    return "array" if isinstance(v, list) else yaml_kind(v) if v is None or isinstance(v, dict) else "one"


def Items(item: Any, scalar: bool = True) -> Any:
    """A non-empty list of ``item`` as a tuple; with ``scalar``, a single item stands for a list of one."""
    items = Annotated[list[item], Field(min_length=1)]
    if not scalar:
        return Annotated[items, AfterValidator(tuple)]
    return Annotated[
        tagged_union({"array": items, "one": item}, pick=_one_or_list),
        AfterValidator(lambda v: tuple(v) if isinstance(v, list) else (v,)),
    ]


def Registered(registry: Any) -> Any:
    """The name of a component of ``registry`` (e.g. an optimizer)."""

    def check(v: str) -> str:
        if v not in registry:
            raise ValueError(f"unknown {registry.kind} {v!r}; known: {', '.join(registry.names())}")
        return v

    return Annotated[Str, AfterValidator(check), Field(json_schema_extra={"enum": registry.names()})]


def Choice(choices: Sequence[str]) -> Any:
    return Literal[tuple(choices)]


_BAGS: dict[str, tuple[str, tuple[str, ...]]] = {}  # $defs name → (what it configures, keys that are not its parameters)


def params_model(
    component: str,
    kind: str,
    fn: Callable[..., Any],
    skip: Sequence[str],
    base: type = BaseModel,
    bounds: Mapping[str, Mapping[str, Any]] | None = None,
    **fields: Any,
) -> type:
    """A model of the keyword parameters of ``fn`` (a registered component): each takes the type of its default
    (a float also takes an integer); ``fields`` are the model's other keys. Defaults are part of a trial's identity.
    ``bounds`` (e.g. a schedule's): parameter → pydantic constraints, a number not named there must be > 0; None:
    no constraints but the type."""
    params: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in (*skip, "self") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        d = p.default
        t = {bool: Bool, int: Int, float: Float, str: Str, tuple: list, list: list}.get(type(d), Any)
        desc = f"Parameter {p.name} of the {kind} {component}" + ("" if d is p.empty else f"; default {d!r}") + "."
        limits = bounds.get(p.name, {"gt": 0} if t in (Int, Float) else {}) if bounds is not None else {}
        allowed = {} if limits else {"x-allowed": f"of the type of its default {d!r}"}
        params[p.name] = (t, Field(... if d is p.empty else d, description=desc, json_schema_extra=allowed, **limits))
    cls = create_model(
        f"{kind.title().replace(' ', '')}{'' if fields else 'Params'}_{component}",
        __base__=base,
        __doc__=f"The {kind} {component}.",
        **fields,
        **params,
    )
    _BAGS[cls.__name__] = (kind, tuple(fields))
    return cls


def registry_union(registry: Any, key: str, member: Callable[[str], type], append: bool, default: str | None = None) -> Any:
    """A mapping whose ``key`` names a component of ``registry``; the rest of it is that component's model. Looked up
    when a file is read, so components registered after this module was imported are known too."""
    member = functools.cache(member)
    info = {"kind": registry.kind, "key": key, "append": append}

    def check(v: Any) -> BaseModel:
        tag = v.get(key, default) if isinstance(v, dict) else None
        if not isinstance(tag, str) or tag not in registry:  # (a tag of any YAML kind, e.g. a mapping)
            error = "registry_missing" if tag is None else "registry_unknown"
            raise PydanticCustomError(
                error, "{kind}", info | {"tag": tag if isinstance(tag, str) else repr(tag), "names": ", ".join(registry.names())}
            )
        try:
            return member(tag).model_validate(v)
        except ValidationError as e:  # said from the member's own schema, at its path; every one of its problems
            (at, message), *more = [error_line(x, json_schema_of(member(tag))) for x in e.errors(include_url=False)]
            fail(message, at, more=more)

    union = Union[tuple(Annotated[member(n), Tag(n)] for n in registry.names())]  # noqa: UP007  (the JSON Schema's view)
    return Annotated[Any, PlainValidator(check, json_schema_input_type=Annotated[union, Discriminator(key)])]


def by_name(registry: Any, key: str, member: Callable[[str], type], append: bool) -> Any:
    """A component of ``registry`` by its name alone or as a mapping {``key``: name, its parameters}."""
    union = registry_union(registry, key, member, append)
    named = BeforeValidator(
        lambda v: {key: v} if isinstance(v, str) else v, json_schema_input_type=Choice(registry.names()) | union
    )
    return Annotated[union, named]


def fail(message: str, at: str = "", **ctx: Any) -> None:
    """Raise a problem pydantic reports as kdtune's own one line: ``message`` at ``at`` inside the field."""
    raise PydanticCustomError("kdtune", "{message}", {"message": message, "at": at, **ctx})


@functools.cache
def json_schema_of(model: type) -> dict[str, Any]:
    return adapter(model).json_schema()


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def describe(n: dict[str, Any], defs: Mapping[str, Any]) -> str:
    """What a JSON Schema node allows, in words."""
    n = resolve_ref(n, defs)[0]
    members = n.get("oneOf") or n.get("anyOf")
    if "x-allowed" in n:
        return n["x-allowed"]
    if "const" in n or "enum" in n:
        return "one of " + ", ".join(map(str, n.get("enum", [n.get("const")])))
    if members:
        return " or ".join(dict.fromkeys(describe(m, defs) for m in members))
    t = n.get("type")
    signs = {"exclusiveMinimum": ">", "minimum": ">=", "exclusiveMaximum": "<", "maximum": "<="}
    b = [f"{op} {n[k]}" for k, op in signs.items() if k in n]
    words = {
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "boolean": "true or false",
        "null": "null",
        "array": "a list",
        "object": "a mapping",
    }.get(t, "a value")
    return words + (" " + " and ".join(b) if b else "")


_PY_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object"}


def resolve_ref(node: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A JSON Schema ``node`` with its ``$ref`` replaced by the definition (its own keys win), and the definition's name."""
    if "$ref" not in node:
        return dict(node), ""
    name = node["$ref"].rsplit("/", 1)[-1]
    return {**defs.get(name, {}), **{k: v for k, v in node.items() if k != "$ref"}}, name


def _locate(loc: Sequence[Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """Follow pydantic's ``loc`` through the JSON Schema: the field path as a person writes it (union tags left out),
    the node of the field (with what it allows in words, where the model says so), the node of the mapping holding
    it and that mapping's $defs name."""
    defs = schema.get("$defs", {})

    def res(n: dict[str, Any]) -> tuple[dict[str, Any], str]:
        n, name = resolve_ref(n, defs)
        other = [m for m in n.get("anyOf", []) if m.get("type") != "null"]
        if len(other) == 1 and len(n["anyOf"]) == 2:  # X or null: X
            inner, inner_name = res(other[0])
            return {**inner, **({"x-allowed": n["x-allowed"]} if "x-allowed" in n else {})}, inner_name
        return n, name

    def is_tag(m: dict[str, Any], x: str, members: list[tuple[dict[str, Any], str]]) -> bool:
        props = m.get("properties", {})
        return (
            m.get("type") == _PY_TYPES.get(x.split("[", 1)[0], x)  # a JSON type tag, or pydantic's name of a type
            or (x == "one" and m.get("type") != "array")
            or (x in props and sum(x in n.get("properties", {}) for n, _ in members) == 1)  # a key it alone has (a kind)
            or any(p.get("const") == x for p in props.values())
        )

    def flat(n: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:  # the members of a union, nested unions opened
        return [
            f
            for m in n.get("oneOf") or n.get("anyOf") or []
            for f in (flat(res(m)[0]) if "oneOf" in res(m)[0] or "anyOf" in res(m)[0] else [res(m)])
        ]

    (node, name), parent, parent_def, path = res(schema), {}, "", ""
    name = name or node.get("title", "")  # a model validated alone: its class
    allowed = node.get("x-allowed")
    for i, x in enumerate(loc):
        members = flat(node)
        if members and isinstance(x, str):
            pick = [m for m in members if is_tag(m[0], x, members) or m[1] == x]  # a tag, or a smart union's model name
            smart = x.split("[", 1)[0] in _PY_TYPES or any(m[1] == x for m in members)
            if pick and smart and i == len(loc) - 1:  # the value fits no member of a smart union: say them all
                continue
            if pick:
                node, name = pick[0]
                allowed = node.get("x-allowed", allowed)
                continue
            node, name = next((m for m in members if m[0].get("type") == "object"), (node, name))
        if x == "[key]":
            continue
        if isinstance(x, int):
            path, node = f"{path}[{x}]", node.get("items", {})
        else:
            extra = next(
                (v for p, v in node.get("patternProperties", {}).items() if re.match(p, x)), node.get("additionalProperties")
            )
            path, parent, parent_def = (f"{path}.{x}" if path else x), node, name
            node = node.get("properties", {}).get(x, extra if isinstance(extra, dict) else {})
        node, name = res(node)
        allowed = node.get("x-allowed")
    return path, {**node, "x-allowed": allowed} if allowed else node, parent, parent_def


def _joined(path: str, at: str) -> str:
    """A field path inside ``path``: ``models.MLP`` and ``params.hiden`` → ``models.MLP.params.hiden``."""
    return f"{path}{'' if at.startswith('[') or not path else '.'}{at}" if at else path


def error_line(e: Mapping[str, Any], schema: dict[str, Any]) -> tuple[str, str]:
    """(field path, what is wrong) for one pydantic error: what was given and what is allowed, in kdtune's words."""
    path, node, parent, parent_def = _locate(e["loc"], schema)
    t, v, ctx = e["type"], e.get("input"), e.get("ctx") or {}
    what = describe(node, schema.get("$defs", {}))
    if t.startswith("registry_"):  # a mapping naming a component: unknown or missing name
        kind, key, names = ctx["kind"], ctx["key"], ctx["names"]
        where = f"{path}.{key}" if ctx["append"] else path
        if t == "registry_unknown":
            return where, f"unknown {kind} {ctx['tag']!r}; known: {names}"
        if isinstance(v, dict) and ctx["append"]:
            return where, f"is required; one of {names}"
        an = "an" if kind[0] in "aeiou" else "a"
        got = f", got {kind_of(v)} {v!r}" if not isinstance(v, dict) else ""
        return path, f"must be {an} {kind} name or a mapping with {key!r} (one of {names}){got}"
    if t == "kdtune":
        return _joined(path, ctx.get("at") or ""), str(ctx["message"])
    if t in ("missing", "missing_argument", "missing_keyword_only_argument"):  # (the last two: a dataclass's)
        return path, "is required"
    if t in ("extra_forbidden", "unexpected_keyword_argument"):
        key = path.rsplit(".", 1)[-1]
        keys = list(parent.get("properties", {}))
        if parent_def in _BAGS:
            kind, own = _BAGS[parent_def]
            params = [k for k in keys if k not in own]
            return path, f"unknown parameter {key!r} for this {kind}; allowed: {', '.join(params) or 'none'}"
        return path, f"unknown key; allowed here: {', '.join(keys)}"
    if t in ("value_error", "assertion_error"):
        return path, str(ctx.get("error", e.get("msg")))
    if t == "finite_number":
        return path, f"must be a finite number, got {v!r}"
    if t == "too_short" and isinstance(v, (list, dict)) and "x-allowed" not in node:
        return path, "must not be empty"
    if t in ("literal_error", "enum"):
        return path, f"must be {what}; got {v!r}" if isinstance(v, str) else f"must be {what}; got {kind_of(v)} {v!r}"
    if t.startswith(("greater", "less", "string_pattern", "too_", "multiple")):  # integers say their kind, as ever
        return path, f"must be {what}, got {kind_of(v) + ' ' if node.get('type') == 'integer' else ''}{v!r}"
    return path, f"must be {what}, got {kind_of(v)} {v!r}"


def spec_error(err: ValidationError, source: str, model: type, prefix: str = "") -> SpecError:
    """Every problem of ``err`` (pydantic reports them all; a component's own mistakes too) as kdtune's one line
    each, in the file's order; the field of a union's other member (a prefix of another problem's field) left out."""
    schema = json_schema_of(model)
    found: list[tuple[str, str]] = []
    for e in err.errors(include_url=False):
        found.append(error_line(e, schema))
        base = _locate(e["loc"], schema)[0]
        found += [(_joined(base, at), message) for at, message in (e.get("ctx") or {}).get("more", ())]
    fields = [f for f, _ in found]
    found = [(f, m) for f, m in found if not any(g != f and g.startswith((f + ".", f + "[")) for g in fields)]
    return SpecError.of([SpecError(source, ".".join(p for p in (prefix, path) if p), m) for path, m in _one_per_value(found)])


def _one_per_value(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One problem per wrong value: of a mapping that lacks required keys and has unknown ones (a value of another
    shape than the field takes, e.g. ``{a: 1}`` for a pair), the first alone."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for f, m in found:
        groups.setdefault(re.sub(r"\.[^.\[]+$", "", f), []).append((f, m))
    mixed = [s for s in groups.values() if {n.split(";")[0].split(" '")[0] for _, n in s} == {"is required", "unknown key"}]
    return [p for p in found if not any(p in s and p != s[0] for s in mixed)]


def validate(model: Any, raw: Any, source: str, prefix: str = "") -> Any:
    try:
        return adapter(model).validate_python(raw)
    except ValidationError as e:
        raise spec_error(e, source, model, prefix) from None


@functools.cache
def adapter(model: type) -> TypeAdapter:
    return TypeAdapter(model)


def first_problem(model: type, raw: Mapping[str, Any]) -> str | None:
    """What is wrong with ``raw`` as ``model`` (the message alone), or None."""
    try:
        adapter(model).validate_python(raw)
    except ValidationError as e:
        return error_line(e.errors(include_url=False)[0], json_schema_of(model))[1]
    return None
