"""Check the package layout's two rules: ``latentzoo.models`` never imports
``latentzoo.inference``, and no module imports another in a circle (lazy imports inside
functions count: a circle that only closes at run time is still a circle to a reader).

Usage: python .ci/check-imports.py   (exit 1 and a list of offences if a rule is broken)
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"models": "latentzoo.models", "inference": "latentzoo.inference"}


def module_name(path: Path) -> str:
    top, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[top], *rest]
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    # every import counts, lazy ones and those under ``if TYPE_CHECKING:`` too: a reader follows them all
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import module" imports the module; "from module import name" the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def main() -> int:
    files = {module_name(p): p for top in PACKAGES for p in (ROOT / top).rglob("*.py")}
    known = set(files)
    graph = {name: imports(path, name, known) for name, path in files.items()}
    # a package's __init__ re-exporting its modules is not an edge back from those modules
    problems = [f"{a} imports {b}" for a, targets in graph.items() for b in targets
                if a.startswith("latentzoo.models") and b.startswith("latentzoo.inference")]
    # circles: strongly connected components (Tarjan), ignoring edges into a module's own parents
    edges = {a: {b for b in targets if not a.startswith(b + ".")} for a, targets in graph.items()}
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    problems += ["import circle: " + " -> ".join(component) for component in components]
    for problem in problems:
        print(problem)
    print(f"{len(files)} modules, {sum(map(len, edges.values()))} imports: "
          + ("no circle, models independent of inference" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
