"""Import structure of the package: no cycle, lower layers never import higher ones, tl uses models through
their public API only, and ``import sctransfer`` / ``sctransfer --help`` stay light (no torch, no scvi).

The import graph is read from the source with :mod:`ast`: every ``import`` statement, module-level and inside
functions, relative imports resolved (``if TYPE_CHECKING:`` blocks are not run, so they are left out).
"""

from __future__ import annotations

import ast
import os
import resource
import subprocess
import sys
from pathlib import Path

import sctransfer

PACKAGE_DIR = Path(sctransfer.__file__).parent
ROOT = "sctransfer"

#: Layers, lowest first; a module may import modules of its own layer or of lower layers only.
#: Every module of the package must be in a layer (prefix match; the longest prefix wins).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "sctransfer._constants",
            "sctransfer._knn",
            "sctransfer._matrix",
            "sctransfer._validation",
            "sctransfer._profiling",
            "sctransfer._intervals",
            "sctransfer._genome_check",
            "sctransfer.pp",
            "sctransfer.metrics",
            "sctransfer.datasets",
            "sctransfer.pl",
        ),
    ),
    ("nn", ("sctransfer.nn",)),
    ("module", ("sctransfer.module",)),
    ("model", ("sctransfer.model",)),
    ("tl", ("sctransfer.tl",)),
    ("cli", ("sctransfer.cli",)),
]
#: Not layered: the root package only re-exports subpackages, lazily.
UNLAYERED = {ROOT}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def _resolved_imports(module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, imported names, line)`` for every import statement of ``module``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    skipped = _type_checking_blocks(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if _is_package(module) else module.rsplit(".", 1)[0]
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            names = [alias.name for alias in node.names]
            # `from package import submodule` imports the submodule
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            found.append((target, names, node.lineno))
            found += [(sub, [], node.lineno) for sub in submodules]
    return found


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _import_graph() -> dict[str, dict[str, int]]:
    """Edges ``importer -> {imported: line}`` within the package.

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``: an edge to each package on the way, except the
    packages that hold the importer (those are already being imported when the importer runs).
    """
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        edges = graph.setdefault(module, {})
        own = set(_ancestors(module)) | ({module} if _is_package(module) else set())
        for target, _, line in _resolved_imports(module):
            if target != ROOT and not target.startswith(ROOT + "."):
                continue
            for name in [*_ancestors(target), target]:
                if name in MODULES and name not in own and name != module:
                    edges.setdefault(name, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _layer(module: str) -> int:
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    assert best is not None, f"{module} is in no layer of tests/test_imports.py: place it in LAYERS."
    return best


def test_graph_reader_resolves_relative_and_function_level_imports():
    """The walker sees what the tests below rely on (so an empty graph cannot pass them)."""
    graph = _import_graph()
    # relative, module level: `from ._neighbors import peak_neighbors` in sctransfer/pp/__init__.py
    assert "sctransfer.pp._neighbors" in graph["sctransfer.pp"]
    # absolute, module level; a package on the way (sctransfer.pp) is imported too
    assert "sctransfer._knn" in graph["sctransfer.metrics._matching"]
    assert "sctransfer.pp" in graph["sctransfer.model._scncl"]
    # function level: the CLI imports the tools inside its command
    assert any(target.startswith("sctransfer.tl") for target in graph["sctransfer.cli"])
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    graph = _import_graph()
    cycles = _cycles(graph)
    described = [
        " ; ".join(f"{a} -> {b} (line {graph[a][b]})" for a in cycle for b in cycle if b in graph[a])
        for cycle in cycles
    ]
    assert not cycles, "Import cycles:\n" + "\n".join(described)


def test_lower_layers_never_import_higher_ones():
    graph = _import_graph()
    wrong = []
    for module, edges in graph.items():
        if module in UNLAYERED:
            continue
        for target, line in edges.items():
            if target in UNLAYERED:
                wrong.append(f"{module} (line {line}) imports the root package {target}")
            elif _layer(target) > _layer(module):
                layers = LAYERS[_layer(module)][0], LAYERS[_layer(target)][0]
                wrong.append(f"{module} ({layers[0]}, line {line}) imports {target} ({layers[1]})")
    assert not wrong, "Imports against the layer order:\n" + "\n".join(wrong)


def test_root_package_imports_no_subpackage_eagerly():
    eager = [
        ast.unparse(node)
        for node in ast.parse(MODULES[ROOT].read_text()).body
        if isinstance(node, ast.ImportFrom)
        and (node.level or (node.module or "").startswith(ROOT))
        or isinstance(node, ast.Import)
        and any(a.name.startswith(ROOT) for a in node.names)
    ]
    assert not eager, f"sctransfer/__init__.py imports {eager} at import time; load subpackages lazily."


def _private_model_use(module: str) -> list[str]:
    """Private names of sctransfer.model that ``module`` imports, and private attributes it reads."""
    found = []
    for target, names, line in _resolved_imports(module):
        if target == "sctransfer.model" or target.startswith("sctransfer.model."):
            private_path = any(part.startswith("_") for part in target.split(".")[2:])
            private_names = [n for n in names if n.startswith("_")]
            if private_path or private_names:
                found.append(f"line {line}: from {target} import {', '.join(names)}")
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_tl_uses_models_through_their_public_api_only():
    offending = {m: _private_model_use(m) for m in MODULES if m == "sctransfer.tl" or m.startswith("sctransfer.tl.")}
    offending = {m: uses for m, uses in offending.items() if uses}
    assert not offending, "tl reaches into private model code:\n" + "\n".join(
        f"{m}: {'; '.join(uses)}" for m, uses in offending.items()
    )


def test_private_model_use_is_detected():
    assert _private_model_use("sctransfer.model._scncl")  # the model itself uses its private parts


# --------------------------------------------------------------------------------------------
# import cost
# --------------------------------------------------------------------------------------------
HEAVY = ("torch", "scvi", "lightning")


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_sctransfer_loads_no_torch_or_scvi():
    result = _run(
        "import sys, sctransfer\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print(sctransfer.__version__)"
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_subpackages_load_on_first_use():
    result = _run(
        "import sys, sctransfer as st\n"
        "assert callable(st.pp.gene_activity) and 'torch' not in sys.modules\n"
        "assert callable(st.metrics.foscttm) and callable(st.datasets.mop_snareseq) and 'torch' not in sys.modules\n"
        "assert callable(st.tl.label_transfer) and st.model.SCNCL.__name__ == 'SCNCL'\n"
        "assert 'torch' in sys.modules\n"
        "import sctransfer.tl\n"
        "assert sctransfer.tl is st.tl\n"
        "assert sorted(dir(st)) == sorted(set(dir(st)))  # no duplicate names\n"
        "assert {'pp', 'tl', 'pl', 'model', 'module', 'nn', 'metrics', 'datasets'} <= set(dir(st))\n"
        "try:\n"
        "    st.no_such_thing\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_thing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_cli_help_is_fast_and_loads_no_torch():
    result = _run(
        "import sys\n"
        "sys.argv = ['sctransfer', '--help']\n"
        "from sctransfer.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "label-transfer" in result.stdout
    script = Path(sys.executable).with_name("sctransfer")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from sctransfer.cli import main; main()"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0 and "label-transfer" in result.stdout, result.stderr[-2000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # the bound is generous (a busy machine); the measured figure is in the CHANGELOG
    assert cpu < 3.0, f"`sctransfer --help` took {cpu:.2f} s of CPU"


def test_scvi_setup_view_works_once_the_models_are_imported():
    """``model.view_anndata_setup()`` prints the setup arguments through ``rich.pretty`` (a declared dependency)."""
    result = _run(
        "import sctransfer.model\n"
        "from scvi.data import AnnDataManager\n"
        "from scvi.data import _constants as c\n"
        "registry = {c._MODEL_NAME_KEY: 'SCNCL', c._SETUP_ARGS_KEY: {'labels_key': 'cell_type'}}\n"
        "AnnDataManager.view_setup_method_args(registry)\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SCNCL.setup_anndata" in result.stdout and "'labels_key': 'cell_type'" in result.stdout
