"""Offline deploy check: the local cloud provisions the BUILT template and runs a replay through the BUILT
code, so what is checked is what `sam build` ships (in the build for this machine: `make build-check`).

The built layer's python/ folder goes first on sys.path, so `autojoin` (and pydantic, Powertools, ...)
are the layer's copies; the local cloud, the scenario code and the CLI are not in the layer (they never
ship), so the source package's folder is appended to ``autojoin.__path__`` for those alone. The template
is .aws-sam/<build>/template.yaml, whose CodeUri folders are the built functions. Prints the replay's
JSON document with a "deploy_check" key naming where every loaded module came from.

Usage: python scripts/deploy_check.py [--build-dir DIR] EVENT_FILE   (exit 2 on bad input)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGE = ROOT / "layers" / "autojoin" / "autojoin"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build-check")
    parser.add_argument("event", type=Path)
    args = parser.parse_args()
    build = args.build_dir.resolve()
    layer = build / "AutojoinLayer" / "python"
    template = build / "template.yaml"
    if not layer.is_dir() or not template.is_file():
        print(f"error: no built template and layer in {build} (run `make build-check`)", file=sys.stderr)
        return 2
    if "autojoin" in sys.modules:
        print("error: autojoin was imported before the built layer was put first", file=sys.stderr)
        return 2
    sys.path.insert(0, str(layer))
    # Package data that never ships (the local cloud's one-image AMI list) is found by
    # importlib.resources in the first folder of ``autojoin.__path__`` (the layer's): name the source copy.
    os.environ.setdefault("MOTO_AMIS_PATH", str(SOURCE_PACKAGE / "data" / "moto-amis.json"))
    import importlib

    # Each package of the layer, then (for what does not ship: CLI, local cloud, scenario, the simulated
    # adapters) the source package's folder: a module found in the layer always comes from the layer.
    for init in sorted((layer / "autojoin").rglob("__init__.py")):
        rel = init.parent.relative_to(layer)
        package = importlib.import_module(".".join(rel.parts))
        package.__path__.append(str(SOURCE_PACKAGE.parent / rel))
    from autojoin.cli.main import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            app(["replay", str(args.event), "--template", str(template), "--json"], standalone_mode=False)
        except SystemExit as exc:  # typer exits on bad input with its own message
            if exc.code not in (0, None):
                return int(exc.code) if isinstance(exc.code, int) else 2
    doc = json.loads(out.getvalue())
    origins = {
        name: str(Path(mod.__file__).resolve())
        for name, mod in sorted(sys.modules.items())
        if getattr(mod, "__file__", None)
        and (
            name.split(".")[0] in {"autojoin", "pydantic", "pydantic_core", "aws_lambda_powertools"}
            or name.startswith("autojoin_localcloud_fn_")
        )
    }
    doc["deploy_check"] = {"build": str(build), "template": str(template), "modules": origins}
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
