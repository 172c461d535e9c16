"""The package graph is a line: no module imports one in a layer above its own, or beside it.

Every import counts: at module level, inside functions and methods, under ``if TYPE_CHECKING``. Each module of
the core and of the plugins is parsed with :mod:`ast`; an import of a first-party module is allowed when the
imported module is in the same component (a module or a package, below) or in a lower layer. A new module must
be placed in ``LAYERS`` (the test names the ones that are not).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT, *(ROOT / "backends" / name / "src" for name in ("loihi", "speck", "pynn"))]
PACKAGES = ("neurodeploy", "neurodeploy_loihi", "neurodeploy_speck", "neurodeploy_pynn")

LAYERS: list[list[str]] = [
    # bottom first; components in one layer may not import each other
    ["neurodeploy._version", "neurodeploy.errors"],
    ["neurodeploy.limits", "neurodeploy.torch_support"],
    ["neurodeploy.fileio", "neurodeploy.schema"],
    ["neurodeploy.data"],
    ["neurodeploy.ir"],
    [
        "neurodeploy.encoding",
        "neurodeploy.metrics",
        "neurodeploy.charts",
        "neurodeploy.conversion",
        "neurodeploy.readout",
        "neurodeploy.hil.device",
    ],
    [
        "neurodeploy.simulate",
        "neurodeploy.lowering",
        "neurodeploy.emulation",
        "neurodeploy.artifact",
        "neurodeploy.hil.inventory",
    ],
    ["neurodeploy.simulate_torch"],  # the torch engine of neurodeploy.simulate's loop
    ["neurodeploy.frontend", "neurodeploy.passes", "neurodeploy.readout_calibration"],
    ["neurodeploy.backends"],
    ["neurodeploy.inspect", "neurodeploy.export"],
    ["neurodeploy.htmlreport"],
    ["neurodeploy.compiler", "neurodeploy.hil"],
    ["neurodeploy.evaluation", "neurodeploy.training"],
    ["neurodeploy.evaluate"],
    ["neurodeploy.sweep"],
    ["neurodeploy.cli", "neurodeploy"],
    ["neurodeploy_loihi", "neurodeploy_speck", "neurodeploy_pynn"],  # the plugins import the core, never each other
]
EXACT = {"neurodeploy"}
"""Components that are one module only (the package's ``__init__``; its submodules are placed one by one)."""

TIER = {component: tier for tier, layer in enumerate(LAYERS) for component in layer}


def component_of(module: str) -> str | None:
    """The component ``module`` belongs to: the longest one naming it or a package above it."""
    matches = [c for c in TIER if module == c or (c not in EXACT and module.startswith(c + "."))]
    return max(matches, key=len) if matches else None


def discover() -> dict[str, Path]:
    """Every first-party module (packages too, by their folder) and its file."""
    modules: dict[str, Path] = {}
    for source in SOURCES:
        for package in PACKAGES:
            base = source / package
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.py")):
                parts = path.relative_to(source).with_suffix("").parts
                if "build" in parts:
                    continue
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
            for folder in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
                modules.setdefault(".".join(folder.relative_to(source).parts), folder)
    return modules


MODULES = discover()


def imported(module: str, is_package: bool, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every first-party module ``tree`` imports, anywhere in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((node.lineno, target if target in MODULES else base))
    return sorted((line, name) for line, name in found if name.split(".")[0] in PACKAGES)


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What in ``source`` (the text of ``module``) imports upward or sideways."""
    own = component_of(module)
    assert own is not None, f"{module} is in no layer"
    problems = []
    for line, name in imported(module, is_package, ast.parse(source)):
        other = component_of(name)
        if other is None:
            problems.append(f"{module}:{line} imports {name}, which is in no layer")
        elif other != own and TIER[other] >= TIER[own]:
            where = "beside" if TIER[other] == TIER[own] else "above"
            problems.append(f"{module}:{line} imports {name} ({other}, {where} {own})")
    return problems


def test_every_component_is_in_one_layer():
    components = [c for layer in LAYERS for c in layer]
    assert len(components) == len(set(components))


def test_every_module_is_placed_in_a_layer():
    assert MODULES, "no modules found"
    assert [m for m in MODULES if component_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(m for m, path in MODULES.items() if path.suffix == ".py"))
def test_no_module_imports_upward(module):
    path = MODULES[module]
    assert violations(module, path.read_text(encoding="utf-8"), path.name == "__init__.py") == []


def test_the_check_sees_imports_inside_functions_relative_and_from_packages():
    source = (
        "from neurodeploy.ir.graph import Graph\n"
        "from neurodeploy import limits\n"
        "def f():\n"
        "    from neurodeploy.backends.reference.backend import layer_usage\n"
        "from ..backends import base\n"
        "from neurodeploy import compile_model\n"
    )
    assert violations("neurodeploy.passes.example", source) == [
        "neurodeploy.passes.example:4 imports neurodeploy.backends.reference.backend "
        "(neurodeploy.backends, above neurodeploy.passes)",
        "neurodeploy.passes.example:5 imports neurodeploy.backends.base "
        "(neurodeploy.backends, above neurodeploy.passes)",
        "neurodeploy.passes.example:6 imports neurodeploy (neurodeploy, above neurodeploy.passes)",
    ]
    assert violations("neurodeploy.frontend.x", "import neurodeploy.passes.base\n") == [
        "neurodeploy.frontend.x:1 imports neurodeploy.passes.base (neurodeploy.passes, beside neurodeploy.frontend)"
    ]
    assert violations("neurodeploy_speck.x", "from neurodeploy_loihi import emulator\n") == [
        "neurodeploy_speck.x:1 imports neurodeploy_loihi.emulator (neurodeploy_loihi, beside neurodeploy_speck)"
    ]
