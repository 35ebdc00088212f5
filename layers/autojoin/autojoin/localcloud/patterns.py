"""EventBridge event-pattern matching (the operators EventBridge documents, applied to plain dicts)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when ``event`` matches ``pattern``: every key of the pattern must match (AND)."""
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches(alt, event) for alt in rule):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if value is _MISSING or not isinstance(value, Mapping):
                return False
            if not matches(rule, value):
                return False
        elif isinstance(rule, Sequence) and not isinstance(rule, str):
            if not _field_matches(rule, value):
                return False
        else:
            raise ValueError(f"pattern value for {key!r} must be a list or an object, got {rule!r}")
    return True


def _field_matches(rules: Sequence[Any], value: Any) -> bool:
    """A leaf: the value (or any element of an array value) must match any one of ``rules`` (OR)."""
    candidates: list[Any] = (
        [_MISSING] if value is _MISSING else list(value) if isinstance(value, list) else [value]
    )
    for rule in rules:
        if isinstance(rule, Mapping) and "exists" in rule:
            if bool(rule["exists"]) == (value is not _MISSING):
                return True
            continue
        if isinstance(rule, Mapping) and "anything-but" in rule:
            # anything-but matches when the field is present and no element is excluded
            if value is not _MISSING and all(_anything_but(rule["anything-but"], c) for c in candidates):
                return True
            continue
        if any(c is not _MISSING and _one(rule, c) for c in candidates):
            return True
    return False


def _one(rule: Any, value: Any) -> bool:
    if isinstance(rule, Mapping):
        if "prefix" in rule:
            return _affix(rule["prefix"], value, str.startswith)
        if "suffix" in rule:
            return _affix(rule["suffix"], value, str.endswith)
        if "equals-ignore-case" in rule:
            return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
        if "numeric" in rule:
            return _numeric(rule["numeric"], value)
        if "wildcard" in rule:
            return isinstance(value, str) and fnmatch.fnmatchcase(value, str(rule["wildcard"]))
        raise ValueError(f"unsupported pattern operator: {sorted(rule)}")
    if rule is None:
        return value is None
    if isinstance(rule, bool) or isinstance(value, bool):
        return rule is value
    if isinstance(rule, int | float) and isinstance(value, int | float):
        return float(rule) == float(value)
    return bool(rule == value)


def _affix(spec: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(spec, Mapping) and "equals-ignore-case" in spec:
        return bool(test(value.lower(), str(spec["equals-ignore-case"]).lower()))
    return bool(test(value, str(spec)))


def _anything_but(spec: Any, value: Any) -> bool:
    """True when ``value`` is NOT excluded by the anything-but ``spec``."""
    if isinstance(spec, Mapping):
        if "prefix" in spec:
            return not _affix(spec["prefix"], value, str.startswith)
        if "suffix" in spec:
            return not _affix(spec["suffix"], value, str.endswith)
        if "equals-ignore-case" in spec:
            excluded = spec["equals-ignore-case"]
            names = excluded if isinstance(excluded, list) else [excluded]
            return not (isinstance(value, str) and value.lower() in {str(n).lower() for n in names})
        raise ValueError(f"unsupported anything-but operator: {sorted(spec)}")
    excluded = spec if isinstance(spec, list) else [spec]
    return not any(_one(e, value) for e in excluded)


def _numeric(spec: Sequence[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    ops = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "=": lambda a, b: a == b,
    }
    items = list(spec)
    return all(ops[str(items[i])](float(value), float(items[i + 1])) for i in range(0, len(items) - 1, 2))
