"""YAML as kdtune reads and writes it: ``yaml.safe_load``'s loader that also reads YAML 1.2 numbers (``3e-4`` is a
float), and ``yaml.safe_dump``'s dumper that quotes what that loader would read as a number, so a file kdtune writes
reads back unchanged (sweep records, tuned values)."""

from __future__ import annotations

import re
from typing import Any

import yaml

# YAML 1.2 core-schema floats that YAML 1.1 (PyYAML) reads as strings: 3e-4, 1e5, -2E-3, -.5, 5. (a dot or
# an exponent is required, so integers stay integers).
_FLOAT_12 = re.compile(r"^[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (no Python objects) that also reads YAML 1.2 floats such as ``3e-4``."""


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper that quotes strings :class:`_Loader` would read as numbers (``'3e-4'``)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load``, but read every number YAML 1.2 reads (``3e-4`` is 0.0003,
    not a string); quoted scalars stay strings. Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects


def dump_yaml(data: Any) -> str:
    """``yaml.safe_dump`` (key order kept) whose output :func:`load_yaml` reads back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
