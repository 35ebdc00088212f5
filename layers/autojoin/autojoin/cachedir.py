"""Where the local tools keep their on-disk caches (the transformed template, decoded moto data).

``$AUTOJOIN_CACHE_DIR`` (``off``, ``0``, ``no`` or empty disables every cache), else
``$XDG_CACHE_HOME/autojoin``, else ``~/.cache/autojoin``. Imports nothing heavy: it is read before
moto is imported. Every cache kept there is keyed on all that changes its content and ignored when
it cannot be read or written.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_VARIABLE = "AUTOJOIN_CACHE_DIR"


def cache_dir() -> Path | None:
    """The cache folder; None when caching is off."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured is not None:
        return None if configured.strip().lower() in {"", "off", "0", "no"} else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autojoin"
