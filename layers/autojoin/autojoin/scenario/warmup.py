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

- botocore builds a new client class and service model for every client (two dozen per replay): each
  is built once per service, for sessions whose class-building handlers are the same.
- moto builds a new model loader for each service it parses a model of (listing botocore's data
  folders each time): one shared moto loader serves them all.
- moto's EC2 models load every region's instance-type offerings when imported (91 files, 0.4 s): they
  are loaded when moto first asks for a region's list instead (``_LazyOfferings``).
- moto's KMS generates an RSA-2048 private key for every key it creates, symmetric ones included
  (0.15 s); the key is generated when something first signs, verifies or asks for the public key.

:func:`prepare` is idempotent and touches nothing but these.
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
    """Point moto at the small AMI list (if moto's EC2 models are not loaded yet), share one botocore
    model loader among every session of the process, and load moto's bulky data on first use."""
    if "moto.ec2.models.amis" not in sys.modules and os.path.isfile(amis_path()):
        # (absent when only the product's modules come from a built layer: moto keeps its own list)
        os.environ.setdefault(AMIS_VARIABLE, amis_path())
    share_botocore_loader()
    _share_client_classes()
    _share_moto_loader()
    _lazy_instance_type_offerings()
    _lazy_kms_private_keys()


def _share_client_classes() -> None:
    """botocore builds a new client class (a method per operation: EC2 has 700) and a new service model
    for every client, and the local cloud and the handlers create two dozen clients. The class and the
    model depend only on the service's (shared, cached) model data: build each once per process."""
    from botocore import client

    creator: Any = client.ClientCreator  # private methods: not in botocore's stubs
    if getattr(creator, "autojoin_shared", False):
        return
    load_model = creator._load_service_model
    create_class = creator._create_client_class
    models: dict[tuple[Any, ...], Any] = {}
    classes: dict[tuple[Any, ...], Any] = {}

    def _load_service_model(self: Any, service_name: str, api_version: str | None = None) -> Any:
        key = (id(self._loader), service_name, api_version)
        if key not in models:
            models[key] = load_model(self, service_name, api_version)
        return models[key]

    def _create_client_class(self: Any, service_name: str, service_model: Any) -> Any:
        # the class also depends on the session's creating-client-class handlers: key on the emitter's
        key = (id(service_model), service_name, _class_hooks(self._event_emitter, service_model))
        if key not in classes:
            classes[key] = create_class(self, service_name, service_model)
        return classes[key]

    creator._load_service_model = _load_service_model
    creator._create_client_class = _create_client_class
    creator.autojoin_shared = True


def _class_hooks(emitter: Any, service_model: Any) -> tuple[Any, ...]:
    """The handlers a session runs when it builds a client class of this service (boto3 adds some)."""
    name = f"creating-client-class.{service_model.service_id.hyphenize()}"
    try:
        handlers = emitter._emitter._handlers.prefix_search(name)
    except AttributeError:  # another emitter: no sharing
        return (object(),)
    return tuple(getattr(h, "__qualname__", repr(h)) for h in handlers)


def _share_moto_loader() -> None:
    """moto parses a service's model (plus its moto-extras) with a new loader for every service, and each
    new loader lists botocore's data folders again; one loader for all, with its caches, does the same."""
    from moto.core import loaders, utils

    if getattr(utils.create_loader, "autojoin_shared", False):  # type: ignore[attr-defined]
        return
    shared = loaders.create_loader()

    def create_loader() -> loaders.Loader:
        return shared

    create_loader.autojoin_shared = True  # type: ignore[attr-defined]
    utils.create_loader = create_loader  # type: ignore[attr-defined]


class _LazyOfferings(dict[str, Any]):
    """``INSTANCE_TYPE_OFFERINGS[location_type]``: region -> offerings, each read on first access."""

    def __init__(self, location_type: str, paths: dict[str, str], load: Any) -> None:
        super().__init__()
        self._location_type = location_type
        self._paths = paths
        self._load = load

    def __missing__(self, region: str) -> Any:
        if region not in self._paths:
            raise KeyError(region)
        offerings = self._load(self._paths[region])
        for offering in offerings:
            offering["LocationType"] = self._location_type
        self[region] = offerings
        return offerings

    def get(self, region: str, default: Any = None) -> Any:
        try:
            return self[region]
        except KeyError:
            return default


def _lazy_instance_type_offerings() -> None:
    if "moto.ec2.models.instance_types" in sys.modules:
        return
    import moto.utilities.utils as moto_utils

    original = moto_utils.load_resource
    paths: dict[str, dict[str, str]] = {}

    def deferred(resource: str) -> Any:
        if "instance_type_offerings/" in resource:
            *_, location_type, file = resource.split("/")
            paths.setdefault(location_type, {})[file.split(".")[0]] = resource
            return []
        return original(resource)

    moto_utils.load_resource = deferred
    try:
        from moto.ec2.models import instance_types
    finally:
        moto_utils.load_resource = original
    for location_type, regions in paths.items():
        instance_types.INSTANCE_TYPE_OFFERINGS[location_type] = _LazyOfferings(
            location_type, regions, original
        )


class _LazyKey:
    """A moto KMS private key made on first use."""

    def __init__(self, key_spec: str, make: Any) -> None:
        self._key_spec = key_spec
        self._make = make
        self._key: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._key is None:
            self._key = self._make(self._key_spec)
        return getattr(self._key, name)


def _lazy_kms_private_keys() -> None:
    import moto.kms.models as kms

    if isinstance(getattr(kms, "generate_private_key", None), _LazyFactory):
        return
    kms.generate_private_key = _LazyFactory(kms.generate_private_key)  # type: ignore[attr-defined,assignment]


class _LazyFactory:
    def __init__(self, make: Any) -> None:
        self.make = make

    def __call__(self, key_spec: str) -> _LazyKey:
        return _LazyKey(key_spec, self.make)


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
