"""What a job's result depends on, as values Snakemake compares between invocations.

Snakemake reruns a job when one of its params changes (rerun trigger `params`). The workflow
gives every rule three kinds of params built here, at parse time and without torch:

- `code`: a digest of the rule's script and of every `firstlayer` module it imports, directly or
  through other modules. Editing `firstlayer/report/plots.py` reruns the plotting jobs and
  nothing else. The digest is of the code's syntax tree without docstrings, so comments,
  docstrings and formatting do not count, and a `git checkout` that leaves the content alone
  (only the modification time changes) reruns nothing.
- `sha256`: the content checksum of a user input file (an .npz, an ImageFolder folder or
  archive, a torchvision archive, a weight file), so replacing the file in place reruns what
  reads it. Digests are cached so planning stays fast, keyed by each file's path, size,
  modification time, inode and status-change time (ctime): a copy that keeps the size and
  restores the modification time (`cp -p`, `rsync -a`, a reproducible archive) still gets a new
  ctime, which no user tool can set back, and so is read again. What is assumed: a file whose
  content changed has a new ctime (the system clock does not go back between two runs).
- `canonical(value)`: dict params with sorted keys, so that writing the same configuration in
  another key order changes nothing (Snakemake compares params as text).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the firstlayer package this process imports
CHECKSUM_CACHE = Path(".snakemake") / "firstlayer" / "checksums.json"


def canonical(value):
    """`value` with every mapping's keys sorted (recursively) and tuples as lists."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def _module_file(name: str) -> Path | None:
    """The source file of a `firstlayer` module or package, else None (third-party)."""
    parts = name.split(".")
    if parts[0] != "firstlayer":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, package: str | None) -> set[str]:
    """Names of every module an `import` anywhere in `tree` may load (function-level ones
    included); `package` resolves relative imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
    closed = set()
    for name in names:  # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = name.split(".")
        closed.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return closed


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


@cache
def _parsed(path: Path) -> tuple[str, frozenset[str]]:
    """(digest of the code without comments, docstrings or layout, modules it imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = None
    if path.is_relative_to(PACKAGE):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = frozenset(_imported(tree, package))
    code = ast.dump(_without_docstrings(tree), include_attributes=False)
    return hashlib.sha256(code.encode()).hexdigest(), imported


def code_files(script: str | os.PathLike) -> list[Path]:
    """The script and every `firstlayer` source file it imports, transitively, sorted."""
    seen: dict[Path, None] = {}
    todo = [Path(script).resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        for name in _parsed(path)[1]:
            found = _module_file(name)
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(seen)


def code_digest(script: str | os.PathLike) -> str:
    """A digest of the code a rule's script runs: the script and its `firstlayer` imports."""
    digest = hashlib.sha256()
    for path in code_files(script):
        label = path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE) else path.name
        digest.update(f"{label}\0{_parsed(path)[0]}\n".encode())
    return digest.hexdigest()[:16]


def _files(path: Path) -> list[Path]:
    """The file itself, or every file below a folder (following symlinked folders, each real
    folder once), sorted."""
    if path.is_file():
        return [path]
    found, seen = [], set()
    for folder, subfolders, names in os.walk(path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        found += [Path(folder) / name for name in names if (Path(folder) / name).is_file()]
    return sorted(found)


def _content_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = _files(path)
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _stat_key(path: Path) -> str:
    """What the cached checksum of `path` is valid for: every file's path, size, modification
    time, inode and status-change time (ctime, set by the system on every write or rename)."""
    stats = []
    for file in _files(path):
        info = file.stat()
        stats.append((str(file), info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns))
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()


def file_sha256(path: str | os.PathLike, cache_file: str | os.PathLike = CHECKSUM_CACHE) -> str:
    """The content checksum of a file or folder (every file below it, by relative path), read
    from `cache_file` when no file's path, size, modification time, inode or ctime changed."""
    path = Path(path).resolve()
    key, cache_file = _stat_key(path), Path(cache_file)
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(str(path))
    if isinstance(entry, dict) and entry.get("stat") == key:
        return entry["sha256"]
    value = _content_sha256(path)
    cached[str(path)] = {"stat": key, "sha256": value}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cached, indent=0, sort_keys=True))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only working directory: checksums are recomputed next time
    return value
