#!/usr/bin/env bash
# Set up autojoin on a fresh Debian machine (root, Python 3.11+): OS prerequisites (make, python3-venv,
# nodejs + npm for `make build`), then .venv via make.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v make >/dev/null || need_apt+=(make)
command -v python3 >/dev/null || need_apt+=(python3)
# `make build` compiles the Lambda bytecode with CPython 3.12 from npm (Pyodide) when there is no python3.12
command -v npm >/dev/null || need_apt+=(nodejs npm)
if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then need_apt+=(python3-venv); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing ${need_apt[*]} with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "error: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) and re-run" >&2
    exit 2
  fi
fi
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "error: autojoin needs Python 3.11 or newer (found $(python3 --version))" >&2; exit 2; }
make setup
echo "[setup] done: .venv/bin/autojoin is ready (try: .venv/bin/autojoin --help)" >&2
