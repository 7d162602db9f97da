"""The import contract (docs/architecture.md, "Layers"), checked on the source itself: every
import statement of the product, those inside functions too, as a lazy import is a dependency
all the same.

- no circle anywhere;
- dtn_protocol imports only the standard library;
- the portal never imports the agent, the agent never imports the portal;
- the CLI (portal/cli) imports only dtn_protocol, besides itself and what is installed;
- the portal's apps are layered lib < accounts < containers < grants < transfers <
  netcheck | notifications < agentapi < metrics: an app imports only the apps below it, and the two
  side by side not each other;
- the agent's packages (docs/agent.md) are layered too: only `__main__` imports `app`, which
  puts the rest together; the sender (agent/sender) never imports the receiver, the app, or
  the loop but for the portal client's reply and errors; the network check (agent/netcheck)
  and the shared task helpers (agent/tasks.py) import neither the sender, the loop, the app
  nor the receiver; the loop does not import the receiver (the app joins the two).

And no class of the portal, the agent or the benches grows past MAX_CLASS_LINES, nor a module
of the agent or the benches past MAX_MODULE_LINES: a class that owns a whole workflow is the
first thing to split.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dtn_protocol", "portal", "agent", "bench")

# The agent's receiver and its MinIO backend import each other; the receiver issue ends it.
KNOWN_CIRCLES: list[frozenset] = []

LAYERS = ["lib", "accounts", "containers", "grants", "transfers", ("netcheck", "notifications"), "agentapi",
          "metrics"]
RANK = {app: rank for rank, layer in enumerate(LAYERS) for app in ((layer,) if isinstance(layer, str) else layer)}

# The portal's modules outside the apps, and the project modules each may import.
OUTSIDE_APPS = {
    "portal.cli": ("dtn_protocol", "portal.cli"),
    "portal.box": ("dtn_protocol", "portal.box", "portal.cli", "portal.lib"),
    "portal.settings": ("dtn_protocol", "portal.lib"),
    "portal.gunicorn.conf": ("dtn_protocol", "portal.lib"),
    # The roots that put the apps together.
    "portal.urls": ("dtn_protocol", "portal"),
    "portal.asgi": ("dtn_protocol", "portal"),
    "portal.wsgi": ("dtn_protocol", "portal"),
    "portal": ("dtn_protocol", "portal"),
}
MAX_CLASS_LINES = 250
MAX_MODULE_LINES = 500

RECEIVER = ("agent.receiver",)
# The agent's modules and the project modules each may not import (a rule says why in its message).
AGENT_RULES = [
    (("agent.sender",), ("agent.app", "agent.__main__", "agent.loop.controller", "agent.loop.sidechannel",
                         *RECEIVER), "the sender imports of the loop only its portal client, and never the app or"
                                     " the receiver"),
    (("agent.netcheck", "agent.tasks"), ("agent.sender", "agent.loop", "agent.app", "agent.__main__", *RECEIVER),
     "the network check and the shared task helpers are below the sender, the loop and the receiver"),
    (("agent.loop",), ("agent.app", "agent.__main__", *RECEIVER), "the loop knows no receiver: the app joins them"),
]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module of the project
    line: int

    def __str__(self):
        return f"{self.source} imports {self.target} (line {self.line})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _resolve(name: str, modules) -> str | None:
    """The project module `name` stands for: itself, or the package it lies in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules) -> tuple[list[Import], set[str]]:
    """(imports of project modules, top-level names of everything else imported)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    project, others = [], set()

    def take(target: str, line: int):
        if target.split(".")[0] in PACKAGES:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                project.append(Import(name, resolved, line))
        else:
            others.add(target.split(".")[0])

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                take(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            if base == "__future__":
                continue
            for alias in node.names:
                # `from a import b`: b is a module of its own, or a name in a.
                take(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base, node.lineno)
    return project, others


def graph():
    modules = sources()
    edges, externals = [], {}
    for name, path in modules.items():
        project, others = imports_of(name, path, modules)
        edges += project
        externals[name] = others
    return modules, edges, externals


def circles(modules, edges) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    following = {name: sorted({e.target for e in edges if e.source == name}) for name in modules}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(start):
        # Iterative, so a long chain of imports cannot hit the recursion limit.
        work = [(start, iter(following[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(following[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(frozenset(group))

    for name in modules:
        if name not in index:
            visit(name)
    return found


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "portal" and parts[1] in RANK else None


def outside_rule(module: str) -> tuple[str, tuple[str, ...]] | None:
    """The OUTSIDE_APPS entry a portal module falls under, the longest that names it."""
    for root in sorted(OUTSIDE_APPS, key=len, reverse=True):
        if module == root or module.startswith(root + "."):
            return root, OUTSIDE_APPS[root]
    return None


def under(module: str, roots) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def violations(modules, edges, externals) -> list[str]:
    found = []
    for group in circles(modules, edges):
        if group not in KNOWN_CIRCLES:
            inside = {str(e) for e in edges if e.source in group and e.target in group}
            found.append(f"a circle of imports: {', '.join(sorted(group))}: " + "; ".join(sorted(inside)))
    for e in edges:
        if under(e.source, ("portal",)) and under(e.target, ("agent",)):
            found.append(f"the portal never imports the agent: {e}")
        if under(e.source, ("agent",)) and under(e.target, ("portal",)):
            found.append(f"the agent never imports the portal: {e}")
        if under(e.source, ("dtn_protocol",)) and not under(e.target, ("dtn_protocol",)):
            found.append(f"dtn_protocol imports only itself and the standard library: {e}")
        source_app, target_app = app_of(e.source), app_of(e.target)
        if source_app is not None:
            if target_app is None and not under(e.target, ("dtn_protocol", "agent")):
                found.append(f"a portal app imports only dtn_protocol and the apps below it: {e}")
            elif target_app is not None and source_app != target_app and RANK[target_app] >= RANK[source_app]:
                found.append(f"{source_app} may import only the apps below it, not {target_app}: {e}")
        elif under(e.source, ("portal",)):
            root, allowed = outside_rule(e.source)
            if not under(e.target, (*allowed, "agent")):
                found.append(f"{root} may import only {', '.join(allowed)}: {e}")
    for e in edges:
        if under(e.target, ("agent.app",)) and e.source != "agent.__main__":
            found.append(f"only agent.__main__ imports agent.app: {e}")
        for sources, forbidden, why in AGENT_RULES:
            if under(e.source, sources) and under(e.target, forbidden):
                found.append(f"{why}: {e}")
    for name, others in externals.items():
        if under(name, ("dtn_protocol",)):
            third_party = sorted(others - set(sys.stdlib_module_names))
            if third_party:
                found.append(f"dtn_protocol imports only the standard library: {name} imports {', '.join(third_party)}")
    return found


def test_the_source_is_read_at_all():
    modules, edges, _ = graph()
    assert {"dtn_protocol.states", "portal.transfers.queue", "agent.sender.attempt", "portal.cli.client"} <= set(modules)
    assert Import("portal.transfers.queue", "portal.transfers.models", 0).target in {e.target for e in edges}


def test_the_imports_keep_the_contract():
    found = violations(*graph())
    assert not found, "the import contract is broken:\n" + "\n".join(found)


def test_no_circle_is_excused():
    # The receiver ⇄ minio_grants circle ended with the receiver package's backend interface.
    assert KNOWN_CIRCLES == []


def test_no_class_of_the_portal_the_agent_or_the_benches_is_over_250_lines():
    long = []
    for name, path in sources().items():
        if name.startswith(("portal.", "agent.", "bench.")) and ".migrations." not in name:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                    long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert long == []


def test_no_module_of_the_agent_or_the_benches_is_over_500_lines():
    long = [f"{name}: {len(path.read_text().splitlines())} lines" for name, path in sources().items()
            if name.startswith(("agent", "bench")) and len(path.read_text().splitlines()) > MAX_MODULE_LINES]
    assert long == []


def test_the_agent_rules_catch_what_they_name():
    # A rule that names no module of the source would pass whatever the imports.
    modules = set(sources())
    for sources_, forbidden, _ in AGENT_RULES:
        for name in (*sources_, *forbidden):
            assert any(under(module, (name,)) for module in modules), name
