"""The package's import graph, as the layer contract sees it: ``python -m tests.module_graph``.

Prints the dependencies between the package's parts (``--depth 2``: ``extender.match`` ->
``extender.spec``; ``--depth 3`` splits ``sources`` into ``registry``, ``host`` and the rest) and
every import cycle, between parts and between modules. An import of ``a.b.c`` also runs the package
``a.b``'s ``__init__`` first, so that counts as an import of the package too, even from inside it (a
package ``__init__`` that imports its own modules is then a cycle, as it is at run time); the root
``extender``, whose ``__init__`` only re-exports the public surface, is left out. Built with grimp,
import-linter's graph.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence

import grimp

ROOT = "extender"


def module_edges(package: str = ROOT) -> dict[str, set[str]]:
    """Module -> the modules it imports (inside ``package``), package ``__init__``s included."""
    graph = grimp.build_graph(package)
    edges: dict[str, set[str]] = {m: set() for m in graph.modules}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            parts = imported.split(".")
            for i in range(2, len(parts) + 1):  # a.b.c runs a.b's __init__ first
                target = ".".join(parts[:i])
                if target != module and target in edges:
                    edges[module].add(target)
    return edges


def part_of(module: str, depth: int) -> str:
    parts = module.split(".")
    if depth >= 3 and len(parts) > 3 and parts[1] == "sources":
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def part_edges(edges: Mapping[str, Iterable[str]], depth: int) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in edges.items():
        if module == ROOT:
            continue
        a = part_of(module, depth)
        out.setdefault(a, set())
        for t in targets:
            if module.startswith(t + "."):
                continue  # the importer's own package __init__: not a dependency between parts
            b = part_of(t, depth)
            if b != a and b != ROOT:
                out[a].add(b)
    return out


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(edges.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def render(depth: int) -> str:
    edges = module_edges()
    parts = part_edges(edges, depth)
    lines = [f"# parts of {ROOT} (depth {depth}) and what they import"]
    for part in sorted(parts):
        lines.append(f"{part} -> {', '.join(sorted(parts[part])) or '(nothing)'}")
    part_cycles = cycles(parts)
    module_cycles = cycles({m: t for m, t in edges.items() if m != ROOT})
    lines.append(f"# cycles between parts: {len(part_cycles)}")
    lines.extend("  " + " <-> ".join(c) for c in part_cycles)
    lines.append(f"# cycles between modules: {len(module_cycles)}")
    lines.extend("  " + " <-> ".join(c) for c in module_cycles)
    lines.append(f"# {len(edges)} modules, {sum(map(len, edges.values()))} imports between them")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--depth", type=int, default=2, choices=[2, 3])
    args = p.parse_args(argv)
    sys.stdout.write(render(args.depth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
