"""Process-wide set-up that makes a local cloud cheap to start; call :func:`prepare` before moto is imported.

Nothing here changes what the local cloud models, only what it costs to start (measured by
``scripts/bench_replay.py``):

- moto's EC2 backend loads every AMI it knows (its bundled list and the per-region "latest" lists) for
  each region it opens: about 1.5 s. The local cloud needs one image for its launch templates, so
  ``MOTO_AMIS_PATH`` points at a one-image file shipped in the package (``autojoin/data/moto-amis.json``),
  unless the caller set it already. moto reads that variable when ``moto.ec2`` is imported, hence
  "before moto is imported".
- every botocore session loads the service models it uses from disk again (``endpoints.json`` alone is
  0.3 s a time, EC2's model as much): the local cloud's sessions, the handlers' boto3 sessions and the
  X-Ray SDK's sampler client each took their own copy. One shared loader serves every session of the
  process; the models are read-only data, and botocore caches them per loader anyway.

:func:`prepare` is idempotent and touches nothing but those two things.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from typing import Any

AMIS_VARIABLE = "MOTO_AMIS_PATH"
_shared_loader: Any = None


def amis_path() -> str:
    """The one-image AMI list shipped with the package."""
    return str(resources.files("autojoin").joinpath("data/moto-amis.json"))


def prepare() -> None:
    """Point moto at the small AMI list (if moto's EC2 models are not loaded yet) and share one botocore
    model loader among every session of the process."""
    if "moto.ec2.models.amis" not in sys.modules:
        os.environ.setdefault(AMIS_VARIABLE, amis_path())
    share_botocore_loader()


def share_botocore_loader() -> Any:
    """Make every new botocore session use one loader (and so one cache of service models)."""
    global _shared_loader  # noqa: PLW0603 - one process-wide cache of immutable service models
    import botocore.loaders
    import botocore.session

    if _shared_loader is None:
        _shared_loader = botocore.loaders.create_loader()
        original = botocore.session.create_loader

        def create_loader(search_paths_envvar: Any = None) -> Any:
            # a session asking for extra data paths (AWS_DATA_PATH) gets its own loader, as before
            if search_paths_envvar:
                return original(search_paths_envvar)
            return _shared_loader

        botocore.session.create_loader = create_loader  # type: ignore[assignment]
        botocore.loaders.create_loader = create_loader  # type: ignore[assignment]  # callers that build a loader themselves
    return _shared_loader
