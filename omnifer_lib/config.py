"""Profiles: named sets of notebook parameters shipped as YAML package data.

``parameters.yaml`` declares every parameter (type and meaning); ``smoke.yaml``,
``demo.yaml`` and ``paper.yaml`` give each a value. :func:`load_profile` validates a
profile against the declarations and merges user overrides (``-p NAME VALUE`` on the CLI,
or a dict from Python), rejecting unknown names and wrong types with a message that says
what was expected.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

DEFAULT_PROFILE = "demo"
_TYPE_RE = re.compile(r"^(int|float|bool|str|list\[(int|float|str)\])(\?)?$")


class ProfileError(ValueError):
    """A profile, parameter name or value is not valid. The message says what is expected."""


@dataclass(frozen=True)
class ParamSpec:
    """Declaration of one parameter: its type string (e.g. ``list[int]``, ``str?``) and doc."""

    name: str
    type: str
    doc: str

    @property
    def nullable(self) -> bool:
        return self.type.endswith("?")

    @property
    def base(self) -> str:
        return self.type.rstrip("?")


def _read_yaml(name: str) -> Any:
    path = resources.files("omnifer_lib").joinpath("profiles", name)
    if not path.is_file():
        raise FileNotFoundError(name)
    with path.open("r", encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def parameter_specs() -> Dict[str, ParamSpec]:
    """All declared parameters, in declaration order."""
    raw = _read_yaml("parameters.yaml")
    specs: Dict[str, ParamSpec] = {}
    for name, decl in raw.items():
        if not isinstance(decl, dict) or "type" not in decl:
            raise ProfileError(f"parameters.yaml: {name!r} needs a mapping with 'type' and 'doc'")
        if not _TYPE_RE.match(decl["type"]):
            raise ProfileError(f"parameters.yaml: {name!r} has unsupported type {decl['type']!r}")
        specs[name] = ParamSpec(name, decl["type"], str(decl.get("doc", "")))
    return specs


def available_profiles() -> List[str]:
    """Names of the shipped profiles (``smoke``, ``demo``, ``paper``)."""
    folder = resources.files("omnifer_lib").joinpath("profiles")
    return sorted(p.name[:-5] for p in folder.iterdir()
                  if p.name.endswith(".yaml") and p.name != "parameters.yaml")


def _check_scalar(base: str, value: Any) -> Any:
    # bool is a subclass of int: keep True from passing as an int, and ints as bools.
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise TypeError
    if base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if base == "str":
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Check ``value`` against ``spec`` and return it in canonical form (ints become floats
    for float parameters, tuples become lists). Raises :class:`ProfileError`."""
    if value is None:
        if spec.nullable:
            return None
        raise ProfileError(f"parameter {spec.name!r} must be {spec.base}, got null")
    try:
        m = re.match(r"list\[(\w+)\]", spec.base)
        if m:
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise TypeError
            return [_check_scalar(m.group(1), v) for v in value]
        return _check_scalar(spec.base, value)
    except TypeError:
        raise ProfileError(
            f"parameter {spec.name!r} must be {spec.type}, got {value!r} ({type(value).__name__})"
        ) from None


def parse_cli_value(spec: ParamSpec, text: str) -> Any:
    """Parse a CLI string for ``spec``: YAML syntax (``0.2``, ``[1, 2]``, ``true``, ``null``);
    for ``str`` parameters the raw text is used unless it is ``null``."""
    if spec.base == "str":
        value: Any = None if text in {"null", "~"} and spec.nullable else text
    else:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProfileError(f"parameter {spec.name!r}: cannot parse {text!r} ({exc})") from None
        if spec.base.startswith("list[") and not isinstance(value, list) and value is not None:
            value = [value]
    return coerce(spec, value)


def unknown_name_message(name: str, valid: Sequence[str]) -> str:
    return f"unknown parameter {name!r}; valid parameters are: {', '.join(sorted(valid))}"


def load_profile(name: str = DEFAULT_PROFILE, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Load profile ``name``, validate it and apply ``overrides`` (already-typed values).

    Returns a new dict with every declared parameter. Raises :class:`ProfileError` for an
    unknown profile, a profile that misses or adds parameters, an unknown override name or
    a value of the wrong type.
    """
    profiles = available_profiles()
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}; available profiles: {', '.join(profiles)}")
    specs = parameter_specs()
    raw = _read_yaml(f"{name}.yaml")
    extra = sorted(set(raw) - set(specs))
    if extra:
        raise ProfileError(f"profile {name!r} sets undeclared parameters {extra}; declare them in parameters.yaml")
    missing = [k for k in specs if k not in raw]
    if missing:
        raise ProfileError(f"profile {name!r} gives no value for {missing}")
    values = {k: coerce(specs[k], raw[k]) for k in specs}
    for key, val in (overrides or {}).items():
        if key not in specs:
            raise ProfileError(unknown_name_message(key, specs))
        values[key] = coerce(specs[key], val)
    return values


def parse_overrides(pairs: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """Turn CLI ``-p NAME VALUE`` pairs (strings) into typed overrides."""
    specs = parameter_specs()
    out: Dict[str, Any] = {}
    for key, text in pairs:
        if key not in specs:
            raise ProfileError(unknown_name_message(key, specs))
        out[key] = parse_cli_value(specs[key], text)
    return out


def notebook_params(profile: str, overrides: Optional[Mapping[str, Any]] = None, **declared: Any) -> Dict[str, Any]:
    """The full parameter dict inside a notebook: the profile, then ``overrides``, then the
    parameters the notebook declares by name (their injected values). Validated as usual."""
    return load_profile(profile, {**dict(overrides or {}), **declared})
