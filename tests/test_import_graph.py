"""The import graph of Herald's own packages (STYLE rule 17: views are leaves).

Reads the source with grimp (installed with import-linter); needs no database.
"""

import grimp
import pytest

PACKAGES = ("accounts", "people", "audiences", "segments", "channels", "campaigns", "config")
VIEW_MODULES = ("views", "import_views")
ROUTING_MODULES = ("urls", "import_urls")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _leaf(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def test_nothing_but_url_modules_imports_a_views_module(graph):
    offenders = sorted(
        f"{importer} -> {imported} (line {detail['line_number']})"
        for imported in graph.modules
        if _leaf(imported) in VIEW_MODULES
        for importer in graph.find_modules_that_directly_import(imported)
        if _leaf(importer) not in ROUTING_MODULES
        for detail in graph.get_import_details(importer=importer, imported=imported)
    )
    assert not offenders, "Views are leaves; share a selector, a form or a partial:\n" + (
        "\n".join(offenders)
    )


def _cycles(graph, modules: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(edges[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return components


def test_no_import_cycles_outside_tasks(graph):
    """grimp sees imports inside functions too; the only ones allowed to close a cycle are
    the deferred service <-> task imports, so Celery task modules are left out."""
    modules = {m for m in graph.modules if _leaf(m) != "tasks"}
    cycles = _cycles(graph, modules)
    assert not cycles, "Import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
