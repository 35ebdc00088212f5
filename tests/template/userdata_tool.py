"""The launch templates' user data, rendered from the package's node files.

template.yaml cannot include a file, so it carries two copies of
``layers/autojoin/autojoin/node/userdata.sh`` (one per launch template, each marked
``- |  # autojoin:userdata.sh``) and, in each Fn::Sub variable map, the node agent
``layers/autojoin/autojoin/node/agent.py`` as gzip+base64 (``AgentGzipBase64``) with its SHA-256
(``AgentSha256``). tests/template/test_userdata.py fails when any copy drifts from the files; this
module rewrites them:

    .venv/bin/python tests/template/userdata_tool.py --write     # after editing agent.py/userdata.sh
    .venv/bin/python tests/template/userdata_tool.py --check     # exit 1 when template.yaml is stale
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
NODE = ROOT / "layers" / "autojoin" / "autojoin" / "node"
USERDATA = NODE / "userdata.sh"
AGENT = NODE / "agent.py"
MARKER = "# autojoin:userdata.sh"
USERDATA_LIMIT = 16 * 1024  # EC2: user data is limited to 16 KB, in raw form, before base64 encoding

_BLOB = re.compile(r'^(\s*AgentGzipBase64:\s*)"[^"]*"\s*$', re.M)
_SHA = re.compile(r'^(\s*AgentSha256:\s*)"[^"]*"\s*$', re.M)


def agent_blob(agent: bytes) -> str:
    """gzip (mtime 0, so the same file gives the same bytes on one zlib) + base64, one line."""
    return base64.b64encode(gzip.compress(agent, compresslevel=9, mtime=0)).decode("ascii")


def agent_sha256(agent: bytes) -> str:
    return hashlib.sha256(agent).hexdigest()


def script_blocks(text: str) -> list[tuple[int, int, int]]:
    """(first line, end line exclusive, indent) of every marked literal block in template.yaml."""
    lines = text.split("\n")
    blocks = []
    for i, line in enumerate(lines):
        if line.rstrip().endswith(MARKER) and "- |" in line:
            indent = len(line) - len(line.lstrip()) + 2
            j = i + 1
            while j < len(lines) and (lines[j].strip() == "" or lines[j].startswith(" " * indent)):
                j += 1
            while j > i + 1 and lines[j - 1].strip() == "":  # trailing blank lines are not the script's
                j -= 1
            blocks.append((i + 1, j, indent))
    return blocks


def render(text: str, userdata: str, agent: bytes) -> str:
    """template.yaml with every marked block = userdata.sh and every agent blob/hash = agent.py."""
    lines = text.split("\n")
    for start, end, indent in reversed(script_blocks(text)):
        body = [(" " * indent + s) if s else "" for s in userdata.rstrip("\n").split("\n")]
        lines[start:end] = body
    out = "\n".join(lines)
    out = _BLOB.sub(lambda m: f'{m.group(1)}"{agent_blob(agent)}"', out)
    return _SHA.sub(lambda m: f'{m.group(1)}"{agent_sha256(agent)}"', out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    text = TEMPLATE.read_text()
    rendered = render(text, USERDATA.read_text(), AGENT.read_bytes())
    if args.check:
        if rendered != text:
            print("template.yaml user data is stale: run tests/template/userdata_tool.py --write")
            return 1
        return 0
    TEMPLATE.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
