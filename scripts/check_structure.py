#!/usr/bin/env python3
"""Checks the shape of src/: no source file over 1,000 lines (a longer one holds two ideas), and
no two top-level modules importing each other, directly or through a cycle.

A top-level module is `src/<name>.rs` or `src/<name>/`. Every `crate::<name>` path in its code
(in `use` lines, `crate::{a, b}` groups and inline paths, tests included; comments not) counts as
an import of `<name>`. Prints the layers, lowest first, so the README's map can be checked against them."""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PATH = re.compile(r"\bcrate::(\w+)")
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def module_of(path: Path) -> str | None:
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        return None if rel.stem in ("lib", "main") else rel.stem
    return rel.parts[0]


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        mod = module_of(path)
        if mod is None:
            continue
        # Comments mention modules without importing them.
        text = re.sub(r"//.*", "", path.read_text())
        used = set(PATH.findall(text))
        for group in GROUP.findall(text):
            used |= {item.strip().split("::")[0] for item in group.split(",") if item.strip()}
        graph.setdefault(mod, set()).update(u for u in used if u != mod and u not in ("self", "super"))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


MAX_LINES = 1000


def long_files() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.rs")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            out.append(f"{path.relative_to(SRC.parent)}: {lines} lines (at most {MAX_LINES})")
    return out


def main() -> int:
    too_long = long_files()
    for line in too_long:
        print(f"file too long: {line}", file=sys.stderr)
    graph = imports()
    found = cycles(graph)
    for scc in found:
        edges = [f"{a} -> {b}" for a in scc for b in sorted(graph[a]) if b in scc]
        print(f"import cycle between top-level modules: {', '.join(edges)}", file=sys.stderr)
    if found or too_long:
        return 1
    done: list[str] = []
    while len(done) < len(graph):
        layer = sorted(m for m in graph if m not in done and graph[m] <= set(done) | {m for m in graph[m] if m not in graph})
        if not layer:
            break
        print("  ".join(f"{m} (uses {', '.join(sorted(graph[m])) or 'nothing'})" for m in layer))
        done += layer
    return 0


if __name__ == "__main__":
    sys.exit(main())
