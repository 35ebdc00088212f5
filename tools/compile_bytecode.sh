#!/usr/bin/env bash
# Compile every .py under DIR to bytecode for CPython VERSION (e.g. 3.12), as unchecked-hash .pyc files
# (Lambda's code directories are read-only, so an interpreter that cannot use the shipped .pyc compiles
# every module again on each cold start). Used by the layer's and the functions' Makefiles (sam build).
# Picks, in order: the running python3 when it is VERSION; pythonVERSION when one works; else CPython
# VERSION=3.12 from npm (Pyodide, tools/pyc312), so a machine without python3.12 still builds.
set -euo pipefail
dir=$1 version=$2
here=$(cd "$(dirname "$0")" && pwd)
compile() { "$1" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$dir" >/dev/null; }
if [ "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$version" ]; then
  compile python3
elif command -v "python$version" >/dev/null && "python$version" -c 'import sys' 2>/dev/null; then
  compile "python$version"
elif [ "$version" = 3.12 ]; then
  command -v node >/dev/null || { echo "error: no python3.12 and no node to compile 3.12 bytecode (apt-get install nodejs npm)" >&2; exit 2; }
  if [ ! -d "$here/pyc312/node_modules/pyodide" ]; then
    (cd "$here/pyc312" && npm ci --silent --no-audit --no-fund >&2)
  fi
  node "$here/pyc312/compile.mjs" "$dir"
else
  echo "error: no interpreter for Python $version bytecode (python$version not found)" >&2
  exit 2
fi
