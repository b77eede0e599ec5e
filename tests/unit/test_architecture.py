"""The tree is the architecture: each package sits on a floor, and no module imports a higher floor.

docs/architecture.md draws the same floors. Every import of a dist_mnist module counts, at the
top of a module, under TYPE_CHECKING or inside a function, with one exception, named here: the
driver loads the MLflow tracker, a plugin above it, only where a config asks for tracking.
"""

import ast
from pathlib import Path

import dist_mnist

PACKAGE = Path(dist_mnist.__file__).parent
# lowest first; a module's floor is that of the longest prefix naming it
FLOORS = [
    [
        "dist_mnist",
        "dist_mnist.nn",
        "dist_mnist.schedule",
        "dist_mnist.metrics",
        "dist_mnist.worker_errors",
        "dist_mnist.hints",
    ],
    ["dist_mnist.config", "dist_mnist.files"],
    ["dist_mnist.data"],
    ["dist_mnist.rounds", "dist_mnist.modes", "dist_mnist.transport", "dist_mnist.scoring", "dist_mnist.reference"],
    ["dist_mnist.channel"],
    ["dist_mnist.spark"],
    ["dist_mnist.driver"],
    ["dist_mnist.outputs"],
    ["dist_mnist.tracking"],
    ["dist_mnist.ml"],
    ["dist_mnist.cli"],
]
PLUGINS = {("dist_mnist.driver.tracker", "dist_mnist.tracking.mlflow_tracker")}  # default_tracker, lazily
MAX_LINES = 300


def floor(module: str) -> int:
    """The floor of a module: that of the longest package or module prefix in FLOORS naming it."""
    found = [(len(p), i) for i, names in enumerate(FLOORS) for p in names if module == p or module.startswith(p + ".")]
    assert found, f"{module} is on no floor: add it to FLOORS and docs/architecture.md"
    return max(found)[1]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def imports(path: Path) -> list[tuple[str, int]]:
    """Every dist_mnist module `path` imports (`from pkg import module` names the module), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dist_mnist"):
            found.append((node.module, node.lineno))
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists():
                    found.append((sub, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("dist_mnist")]
    return found


def test_every_module_is_on_a_floor_and_imports_none_above_its_own():
    upward = [
        f"{name}:{line} imports {target} (floor {floor(target)} above {floor(name)})"
        for name, path in modules().items()
        for target, line in imports(path)
        if floor(target) > floor(name) and (name, target) not in PLUGINS
    ]
    assert upward == []


def test_the_plugin_exception_is_still_needed():
    """An exception nobody uses any more is removed from PLUGINS, not kept as a loophole."""
    found = {(name, target) for name, path in modules().items() for target, _ in imports(path)}
    assert found >= PLUGINS


def test_no_module_is_longer_than_about_300_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_package_docstring_names_each_of_its_modules():
    """A package's docstring is its table of contents: every module in it is named there."""
    missing = []
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent == PACKAGE:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        missing += [
            f"{init.parent.name}/{p.name}"
            for p in sorted(init.parent.glob("*.py"))
            if p.name not in ("__init__.py", "__main__.py") and p.name not in doc
        ]
    assert missing == []
