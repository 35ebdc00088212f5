// Compile every .py under a directory to CPython 3.12 bytecode (__pycache__/*.cpython-312.pyc) with
// Pyodide's CPython 3.12 (WebAssembly, from npm), for `sam build` on a machine that has no python3.12.
// Bytecode is platform-independent: the .pyc files are the ones python3.12 itself would write.
// Unchecked-hash pycs: Lambda's /opt and /var/task are read-only and zip mtimes are coarse, so the
// interpreter must use them as they are, without comparing them to the sources.
// Usage: node compile.mjs DIR
import { loadPyodide } from "pyodide";
import { resolve } from "node:path";

const dir = resolve(process.argv[2] ?? "");
if (!process.argv[2]) {
  console.error("error: usage: node compile.mjs DIR");
  process.exit(2);
}
const py = await loadPyodide();
py.FS.mkdirTree("/src");
py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, "/src");
const ok = py.runPython(`
import compileall, py_compile, sys
assert sys.version_info[:2] == (3, 12), sys.version
compileall.compile_dir("/src", quiet=1, workers=1,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
`);
if (!ok) {
  console.error(`error: compiling ${dir} to 3.12 bytecode failed`);
  process.exit(1);
}
