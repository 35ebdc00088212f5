"""Parsing of command-line values: counts, AZ lists (``a,b,c``) and layouts (``a=2,b=2,c=1``).

Every function raises :class:`autojoin.errors.BadInput` with a one-line message fit for ``error: ...``.
"""

from __future__ import annotations

import re

from autojoin.errors import BadInput

_AZ = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def _name(raw: str, what: str) -> str:
    name = raw.strip()
    if not name:
        raise BadInput(f"{what} has an empty AZ name")
    if not _AZ.match(name):
        raise BadInput(f"{what}: {name!r} is not a valid AZ name (letters, digits, '.', '_', ':', '-')")
    return name


def parse_count(text: str, option: str, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum`` given to ``option``."""
    try:
        value = int(text.strip())
    except ValueError:
        raise BadInput(f"{option} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise BadInput(f"{option} must be at least {minimum}, got {value}")
    return value


def parse_zones(text: str, option: str = "--zones") -> list[str]:
    """``a,b,c`` -> ["a", "b", "c"]: at least one name, no duplicates."""
    if not text.strip():
        raise BadInput(f"{option} is empty: give AZ names separated by commas, like a,b,c")
    zones: list[str] = []
    for raw in text.split(","):
        name = _name(raw, option)
        if name in zones:
            raise BadInput(f"{option} lists AZ {name} twice")
        zones.append(name)
    return zones


def parse_layout(text: str, option: str = "--layout", *, need_managers: bool = True) -> dict[str, int]:
    """``a=2,b=2,c=1`` -> {"a": 2, "b": 2, "c": 1}.

    Counts are whole numbers >= 0 (an AZ with 0 managers is still an AZ); names may not repeat. With
    ``need_managers`` the layout must hold at least one manager.
    """
    example = "like a=2,b=2,c=1"
    if not text.strip():
        raise BadInput(f"{option} is empty: give AZ=COUNT pairs {example}")
    layout: dict[str, int] = {}
    for raw in text.split(","):
        az, sep, count = raw.partition("=")
        if not sep:
            raise BadInput(f"{option}: cannot read {raw.strip()!r}: expected AZ=COUNT pairs {example}")
        name = _name(az, option)
        if name in layout:
            raise BadInput(f"{option} lists AZ {name} twice")
        try:
            value = int(count.strip())
        except ValueError:
            raise BadInput(
                f"{option}: the count for {name} must be a whole number, got {count.strip()!r}"
            ) from None
        if value < 0:
            raise BadInput(f"{option}: the count for {name} cannot be negative ({value})")
        layout[name] = value
    if need_managers and sum(layout.values()) == 0:
        raise BadInput(f"{option} has no managers: at least one AZ needs a count above 0")
    return layout
