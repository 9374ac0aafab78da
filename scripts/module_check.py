#!/usr/bin/env python3
"""Checks the workspace's module structure; fails if, in any crate:

- a module imports another that imports it back (directly or through
  others);
- a crate root (lib.rs, main.rs) declares a module its layout comment
  (`//!`) does not name;
- a source file other than tests (`tests/`, `tests.rs`) is over 450 lines.

Import circles:

Every `crate::…` and `super::…` path in a module's source (in `use`
statements, braces expanded, and inline) is an edge to the deepest module it
names. An edge is lifted to the two siblings under the modules' closest
common ancestor (`routes::admin` -> `error` is `routes` -> `error`); a
module and its own parent or child are not an edge (that is how modules
are declared and re-exported). A strongly connected set of siblings is a
circle.

Run by scripts/test.sh; `python3 scripts/module_check.py [ROOT]`.
"""

import re
import sys
from pathlib import Path

USE = re.compile(r"\buse\s+((?:crate|super)::[^;]*);", re.S)
INLINE = re.compile(r"\b((?:crate|super)(?:::\w+)+)")
COMMENT = re.compile(r"//[^\n]*")


def modules_of(src: Path) -> dict:
    """Module path (tuple) -> its file, for a crate's src/ (lib or main)."""
    found = {}
    for file in sorted(src.rglob("*.rs")):
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts[-1] == "mod":
            parts.pop()
        if parts in (["lib"], ["main"]):
            parts = []
        if parts and parts[0] == "bin":
            continue
        found[tuple(parts)] = file
    return found


def expand(path: str) -> list:
    """`crate::{a, b::{c, d}}` -> [crate::a, crate::b::c, crate::b::d]."""
    path = re.sub(r"\s+", "", path)
    brace = path.find("{")
    if brace < 0:
        return [path]
    depth, items, start = 0, [], brace + 1
    for i in range(brace, len(path)):
        if path[i] == "{":
            depth += 1
        elif path[i] == "}":
            depth -= 1
            if depth == 0:
                items.append(path[start:i])
                break
        elif path[i] == "," and depth == 1:
            items.append(path[start:i])
            start = i + 1
    prefix = path[:brace]
    return [p for item in items if item for p in expand(prefix + item)]


def target(here: tuple, path: str, modules: dict):
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    else:
        base = here
        while segments and segments[0] == "super":
            base, segments = base[:-1], segments[1:]
        rest = segments
    best = None
    for n in range(len(rest) + 1):
        candidate = base + tuple(rest[:n])
        if candidate in modules:
            best = candidate
    return best


def edges(modules: dict) -> set:
    found = set()
    for here, file in modules.items():
        text = COMMENT.sub("", file.read_text())
        paths = [p for group in USE.findall(text) for p in expand(group)]
        paths += INLINE.findall(USE.sub("", text))
        for path in paths:
            there = target(here, path, modules)
            if there is None:
                continue
            common = 0
            while common < min(len(here), len(there)) and here[common] == there[common]:
                common += 1
            if common == len(here) or common == len(there):
                continue  # itself, its parent or its child
            found.add((here[: common + 1], there[: common + 1]))
    return found


def circles(graph: set) -> list:
    """Strongly connected sets of more than one module (Tarjan)."""
    nodes = sorted({a for a, _ in graph} | {b for _, b in graph})
    succ = {n: sorted(b for a, b in graph if a == n) for n in nodes}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for n in nodes:
        if n not in index:
            visit(n)
    return out


MAX_LINES = 450
MOD = re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)


def unnamed_modules(src: Path) -> list:
    """Modules a crate root declares that its layout comment does not name."""
    found = []
    for root in (src / "lib.rs", src / "main.rs"):
        if not root.is_file():
            continue
        text = root.read_text()
        layout = "\n".join(line for line in text.splitlines() if line.startswith("//!"))
        found += [f"{root}: {name}" for name in MOD.findall(text) if not re.search(rf"\b{name}\b", layout)]
    return found


def long_files(src: Path) -> list:
    """Source files, tests aside, over MAX_LINES lines."""
    return [
        f"{file}: {lines} lines"
        for file in sorted(src.rglob("*.rs"))
        if file.name != "tests.rs" and (lines := len(file.read_text().splitlines())) > MAX_LINES
    ]


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    failed = False
    for manifest in sorted(root.glob("*/Cargo.toml")):
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        graph = edges(modules_of(src))
        for group in circles(graph):
            failed = True
            names = ["::".join(m) for m in group]
            links = sorted(
                f"{'::'.join(a)} -> {'::'.join(b)}" for a, b in graph if a in group and b in group
            )
            print(f"{manifest.parent.name}: import circle among {', '.join(names)}: {'; '.join(links)}")
        for name in unnamed_modules(src):
            failed = True
            print(f"a module the layout comment does not name: {name}")
        for name in long_files(src):
            failed = True
            print(f"over {MAX_LINES} lines (split it by job): {name}")
    if not failed:
        print("modules: no import circles, every one named in its crate's layout, no file over 450 lines")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
