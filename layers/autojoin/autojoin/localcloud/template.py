"""template.yaml → a plain CloudFormation resource map, and CloudFormation intrinsic resolution.

The SAM template is transformed offline with samtranslator (as SAM would do it on deploy), so functions,
their rules, permissions and event-invoke configs appear exactly as AWS would create them. Local
``CodeUri``/``ContentUri`` paths are swapped for a placeholder S3 location and remembered.

The transform is a pure function of the template's text, the parameter values, the region in the
environment and the samtranslator version, and importing and running samtranslator costs about a
second: its output (and the parsed template) is cached on disk under that key, in
``$AUTOJOIN_CACHE_DIR`` (``off`` disables the cache), else ``$XDG_CACHE_HOME/autojoin``, else
``~/.cache/autojoin``. A cache entry that cannot be read or written is ignored.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

LOCAL_BUCKET = "localcloud"
NO_VALUE = object()
CACHE_VARIABLE = "AUTOJOIN_CACHE_DIR"
_CACHE_FORMAT = "1"  # bump when what load_template hands to the transform changes


class TemplateError(ValueError):
    """The template cannot be loaded, transformed or resolved."""


class _NoPolicies:
    """samtranslator's managed-policy loader, offline: SAM resolves the policies it knows itself."""

    def load(self) -> dict[str, str]:
        return {}


@dataclass
class LoadedTemplate:
    path: Path
    raw: dict[str, Any]  # as written
    cfn: dict[str, Any]  # after the SAM transform
    code_dirs: dict[str, Path]  # function logical id -> its code folder

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.cfn.get("Resources", {}))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.cfn.get("Parameters", {}))


def _parse_yaml(text: str) -> dict[str, Any]:

    doc = yaml_parse(text)
    if not isinstance(doc, dict) or "Resources" not in doc:
        raise TemplateError("not a CloudFormation template (no Resources)")
    return doc


def load_template(path: str | Path, parameter_values: Mapping[str, Any] | None = None) -> LoadedTemplate:
    """Read ``path`` and apply the SAM transform offline when the template declares it."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TemplateError(f"cannot read template {p}: {exc.strerror}") from None
    params = dict(parameter_values or {})
    entry = _cache_entry(text, params)
    cached = _read_cache(entry)
    if cached is not None:
        raw, cfn = cached
        return LoadedTemplate(path=p, raw=raw, cfn=cfn, code_dirs=_local_code(copy.deepcopy(raw), p.parent))
    raw = _parse_yaml(text)
    doc = copy.deepcopy(raw)
    code_dirs = _local_code(doc, p.parent)
    transforms = doc.get("Transform")
    names = transforms if isinstance(transforms, list) else [transforms] if transforms else []
    if any(str(t).startswith("AWS::Serverless") for t in names):
        from samtranslator.translator.transform import transform  # a second to import: only on a miss

        try:
            cfn = transform(doc, params, _NoPolicies())
        except Exception as exc:  # samtranslator raises its own exception tree
            raise TemplateError(f"SAM transform failed: {exc}") from None
    else:
        cfn = doc
    _write_cache(entry, raw, cfn)
    return LoadedTemplate(path=p, raw=raw, cfn=cfn, code_dirs=code_dirs)


def _local_code(doc: dict[str, Any], base: Path) -> dict[str, Path]:
    """Swap local CodeUri/ContentUri paths in ``doc`` for the placeholder bucket; the code folders."""
    code_dirs: dict[str, Path] = {}
    for lid, res in doc["Resources"].items():
        props = res.get("Properties") or {}
        kind = res.get("Type")
        if kind == "AWS::Serverless::Function":
            uri = props.get("CodeUri", (doc.get("Globals", {}).get("Function", {}) or {}).get("CodeUri"))
            if isinstance(uri, str) and not uri.startswith("s3://"):
                code_dirs[lid] = (base / uri).resolve()
                props["CodeUri"] = f"s3://{LOCAL_BUCKET}/{uri.strip('/')}"
                res["Properties"] = props
        elif kind == "AWS::Serverless::LayerVersion":
            uri = props.get("ContentUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                props["ContentUri"] = f"s3://{LOCAL_BUCKET}/{uri.strip('/')}"
    return code_dirs


def cache_dir() -> Path | None:
    """Where transformed templates are cached; None when caching is off."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured is not None:
        return None if configured.strip().lower() in {"", "off", "0", "no"} else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autojoin"


def _cache_entry(text: str, params: Mapping[str, Any]) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        version = metadata.version("aws-sam-translator")
    except metadata.PackageNotFoundError:
        version = "unknown"
    # the transform reads the region (for the partition) from the environment
    region = [os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION")]
    key = json.dumps([_CACHE_FORMAT, version, region, text, params], sort_keys=True, default=str)
    return folder / f"template-{hashlib.sha256(key.encode()).hexdigest()}.json"


def _read_cache(entry: Path | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if entry is None:
        return None
    try:
        cached = json.loads(entry.read_text(encoding="utf-8"))
        raw, cfn = cached["raw"], cached["cfn"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(raw, dict) and isinstance(cfn, dict) and "Resources" in raw and "Resources" in cfn:
        return raw, cfn
    return None


def _write_cache(entry: Path | None, raw: dict[str, Any], cfn: dict[str, Any]) -> None:
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"raw": raw, "cfn": cfn}), encoding="utf-8")
        partial.replace(entry)  # atomic: a concurrent reader sees the whole entry or none
    except (OSError, TypeError, ValueError):
        pass  # a cache that cannot be written is no cache


class Resolver:
    """Resolves Ref / GetAtt / Sub / Join / Select / Split / If / Base64 / FindInMap / GetAZs.

    ``attr(logical_id, name)`` supplies a resource's attribute (``"Ref"`` for Ref); it may create the
    resource on demand, which gives dependency order for free.
    """

    def __init__(
        self,
        cfn: Mapping[str, Any],
        params: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        attr: Callable[[str, str], Any],
        zones: tuple[str, ...],
    ) -> None:
        self.cfn = cfn
        self.params = dict(params)
        self.pseudo = dict(pseudo)
        self.attr = attr
        self.zones = zones
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conds = self.cfn.get("Conditions", {})
            if name not in conds:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conds[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            fn = _INTRINSICS.get(key)
            if fn is not None:
                return fn(self, arg)
        out_d = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out_d.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        if name in self.cfn.get("Resources", {}):
            return self.attr(name, "Ref")
        raise TemplateError(f"Ref to unknown name {name}")

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, extra = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, extra = arg, {}
        out: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith("${!", i):
                out.append("${")
                i += 3
                continue
            if text.startswith("${", i):
                end = text.index("}", i)
                name = text[i + 2 : end]
                if name in extra:
                    val = extra[name]
                elif "." in name and name.split(".", 1)[0] in self.cfn.get("Resources", {}):
                    lid, att = name.split(".", 1)
                    val = self.attr(lid, att)
                else:
                    val = self.ref(name)
                out.append(str(val))
                i = end + 1
                continue
            out.append(text[i])
            i += 1
        return "".join(out)


def _getatt(r: Resolver, arg: Any) -> Any:
    lid, name = arg.split(".", 1) if isinstance(arg, str) else (arg[0], r.resolve(arg[1]))
    return r.attr(lid, name)


def _join(r: Resolver, arg: Any) -> str:
    sep, items = arg
    vals = r.resolve(items)
    return str(sep).join(str(v) for v in vals)


def _select(r: Resolver, arg: Any) -> Any:
    idx, items = r.resolve(arg[0]), r.resolve(arg[1])
    return items[int(idx)]


def _split(r: Resolver, arg: Any) -> list[str]:
    return str(r.resolve(arg[1])).split(arg[0])


def _if(r: Resolver, arg: Any) -> Any:
    name, yes, no = arg
    return r.resolve(yes if r.condition(name) else no)


def _equals(r: Resolver, arg: Any) -> bool:
    a, b = r.resolve(arg[0]), r.resolve(arg[1])
    return str(a) == str(b)


def _not(r: Resolver, arg: Any) -> bool:
    return not r.resolve(arg[0])


def _and(r: Resolver, arg: Any) -> bool:
    return all(r.resolve(a) for a in arg)


def _or(r: Resolver, arg: Any) -> bool:
    return any(r.resolve(a) for a in arg)


def _base64(r: Resolver, arg: Any) -> str:
    return base64.b64encode(str(r.resolve(arg)).encode()).decode()


def _find_in_map(r: Resolver, arg: Any) -> Any:
    m, k1, k2 = (r.resolve(a) for a in arg)
    return r.cfn["Mappings"][m][k1][k2]


def _get_azs(r: Resolver, arg: Any) -> list[str]:
    return list(r.zones)


def _import(r: Resolver, arg: Any) -> Any:
    raise TemplateError("Fn::ImportValue is not supported by the local cloud")


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, a: r.ref(a),
    "Fn::GetAtt": _getatt,
    "Fn::Sub": lambda r, a: r.sub(a),
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Condition": lambda r, a: r.condition(a),
    "Fn::Base64": _base64,
    "Fn::FindInMap": _find_in_map,
    "Fn::GetAZs": _get_azs,
    "Fn::ImportValue": _import,
}
