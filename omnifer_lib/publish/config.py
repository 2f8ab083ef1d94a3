"""Profiles: named sets of notebook parameters shipped as YAML package data.

``parameters.yaml`` declares every parameter (type, meaning and the values it accepts:
``choices``, a ``range``, a ``pattern``, ``min_items``); ``smoke.yaml``, ``demo.yaml`` and
``paper.yaml`` give each a value. :func:`load_profile` validates a profile against the
declarations and merges user overrides (``-p NAME VALUE`` on the CLI, or a dict from
Python), rejecting unknown names, wrong types and values out of range with a one-line
message that names the parameter, the value given and what is accepted - before any
notebook starts.
"""
from __future__ import annotations

import re
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

DEFAULT_PROFILE = "demo"
_TYPE_RE = re.compile(r"^(int|float|bool|str|list\[(int|float|str)\])(\?)?$")
_RANGE_RE = re.compile(r"^\s*([\[(])\s*(-?inf|[-+0-9.eE]+)\s*,\s*(inf|[-+0-9.eE]+)\s*([\])])\s*$")
_CHECKS = ("choices", "range", "pattern", "accepts", "min_items", "min_image_size")


class ProfileError(ValueError):
    """A profile, parameter name or value is not valid. The message says what is expected."""


@dataclass(frozen=True)
class ParamSpec:
    """Declaration of one parameter: its type string (e.g. ``list[int]``, ``str?``) and doc."""

    name: str
    type: str
    doc: str
    checks: Dict[str, Any] = field(default_factory=dict)

    @property
    def nullable(self) -> bool:
        return self.type.endswith("?")

    @property
    def base(self) -> str:
        return self.type.rstrip("?")


def _read_yaml(name: str) -> Any:
    path = resources.files("omnifer_lib.publish").joinpath("profiles", name)
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
        checks = {k: decl[k] for k in _CHECKS if k in decl}
        if "range" in checks:
            _parse_range(name, checks["range"])
        unknown = sorted(set(decl) - set(_CHECKS) - {"type", "doc"})
        if unknown:
            raise ProfileError(f"parameters.yaml: {name!r} has unknown field(s) {unknown}")
        specs[name] = ParamSpec(name, decl["type"], str(decl.get("doc", "")), checks)
    return specs


def _parse_range(name: str, text: str) -> Tuple[float, float, bool, bool]:
    """``'[0, 2)'`` -> ``(0.0, 2.0, True, False)``: bounds and whether each is included."""
    m = _RANGE_RE.match(str(text))
    if not m:
        raise ProfileError(f"parameters.yaml: {name!r} has range {text!r}; write it like '[0, 1)' or '(0, inf)'")
    return float(m.group(2)), float(m.group(3)), m.group(1) == "[", m.group(4) == "]"


def _check_one(spec: ParamSpec, value: Any, context: str = "") -> None:
    checks = spec.checks
    if "choices" in checks and value not in checks["choices"]:
        accepted = ", ".join(repr(c) for c in checks["choices"])
        raise ProfileError(f"parameter {spec.name!r} got {value!r}{context}; accepted: {accepted}")
    if "range" in checks and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, lo_in, hi_in = _parse_range(spec.name, checks["range"])
        inside = (value > lo or (lo_in and value == lo)) and (value < hi or (hi_in and value == hi))
        if not inside or (isinstance(value, float) and math.isnan(value)):
            raise ProfileError(f"parameter {spec.name!r} got {value!r}{context}; "
                               f"accepted: a number in {checks['range']}")
    if "pattern" in checks and isinstance(value, str) and not re.match(checks["pattern"], value):
        raise ProfileError(f"parameter {spec.name!r} got {value!r}{context}; accepted: "
                           f"{checks.get('accepts', 'text matching ' + checks['pattern'])}")


def accepted(spec: ParamSpec) -> str:
    """What ``spec`` accepts beyond its type, in words (``""`` when anything of the type goes)."""
    c = spec.checks
    parts = []
    if "choices" in c:
        parts.append("one of " + ", ".join(map(str, c["choices"])))
    if "range" in c:
        parts.append(f"in {c['range']}")
    if "pattern" in c:
        parts.append(c.get("accepts", c["pattern"]))
    if "min_items" in c:
        parts.append(f"at least {c['min_items']} entr{'y' if c['min_items'] == 1 else 'ies'}")
    if "min_image_size" in c:
        parts.append("image_size >= " + ", ".join(f"{v} for {k}" for k, v in c["min_image_size"].items()))
    return "; ".join(parts) + ("; or null" if spec.nullable and parts else "")


def check_value(spec: ParamSpec, value: Any) -> None:
    """Raise :class:`ProfileError` unless ``value`` (already of the right type) is one that
    ``spec`` accepts; for lists every entry is checked."""
    if value is None:
        return
    if isinstance(value, list):
        if len(value) < int(spec.checks.get("min_items", 0)):
            raise ProfileError(f"parameter {spec.name!r} got {value!r}; accepted: a list of at least "
                               f"{spec.checks['min_items']} {spec.base[5:-1]}")
        for item in value:
            _check_one(spec, item, f" (in {value})" if len(value) > 1 else "")
        return
    _check_one(spec, value)


def _check_together(specs: Mapping[str, ParamSpec], values: Mapping[str, Any]) -> None:
    """Checks that involve two parameters: each backbone's smallest image size."""
    for name, spec in specs.items():
        minimum = spec.checks.get("min_image_size")
        if not minimum or "image_size" not in values:
            continue
        for backbone in values.get(name) or []:
            need = int(minimum.get(backbone, 0))
            if values["image_size"] < need:
                raise ProfileError(f"parameter 'image_size' got {values['image_size']}, but backbone {backbone!r} "
                                   f"needs images of at least {need} px; accepted: image_size >= {need}")


def available_profiles() -> List[str]:
    """Names of the shipped profiles (``smoke``, ``demo``, ``paper``)."""
    folder = resources.files("omnifer_lib.publish").joinpath("profiles")
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
            problem = " ".join(str(getattr(exc, "problem", "") or "malformed").split())
            raise ProfileError(f"parameter {spec.name!r}: cannot parse {text!r} as a YAML value ({problem}); "
                               f"expected {spec.type}, e.g. {_example(spec)}") from None
        if spec.base.startswith("list[") and not isinstance(value, list) and value is not None:
            value = [value]
    return coerce(spec, value)


def _example(spec: ParamSpec) -> str:
    return {"int": "3", "float": "0.1", "bool": "true", "str": "text", "list[int]": "'[0, 1, 2]'",
            "list[float]": "'[0.0, 0.1]'", "list[str]": "'[a, b]'"}.get(spec.base, "null")


def unknown_name_message(name: str, valid: Sequence[str]) -> str:
    return f"unknown parameter {name!r}; valid parameters are: {', '.join(sorted(valid))}"


def load_profile(name: str = DEFAULT_PROFILE, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Load profile ``name``, validate it and apply ``overrides`` (already-typed values).

    Returns a new dict with every declared parameter. Raises :class:`ProfileError` for an
    unknown profile, a profile that misses or adds parameters, an unknown override name,
    a value of the wrong type or one the declaration does not accept (out of range, not one
    of the choices; a profile's own values are checked as strictly as overrides).
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
    for key, spec in specs.items():
        try:
            check_value(spec, values[key])
        except ProfileError as exc:
            where = "" if key in (overrides or {}) else f" (set by profile {name!r})"
            raise ProfileError(f"{exc}{where}") from None
    _check_together(specs, values)
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
