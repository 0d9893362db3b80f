"""Package hygiene: manifest, layering (the core never imports rclpy; the packages import
each other as docs/ARCHITECTURE.md's table says, without cycles), lint, type check."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_with_the_runtime_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package"
    assert root.get("format") == "3"
    assert root.findtext("name") == "liploc_ros"
    deps = {e.text for e in root.findall("exec_depend")}
    needed = {
        "rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_msgs", "std_srvs",
        "visualization_msgs", "diagnostic_msgs", "cv_bridge", "sensor_msgs_py", "tf2_ros",
        "launch", "launch_ros", "python3-torch", "python3-numpy", "python3-scipy",
        "python3-opencv",
    }  # fmt: skip
    assert needed <= deps, needed - deps
    assert root.find("export/build_type").text == "ament_python"


def test_versions_agree():
    import liploc_ros

    version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    assert version == liploc_ros.__version__
    assert f'version="{version}"' in (ROOT / "setup.py").read_text()


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_never_imports_rclpy():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "liploc_ros").rglob("*.py")
        if "ros" not in p.relative_to(ROOT / "liploc_ros").parts[:1]
        and "rclpy" in _imported_modules(p)
    ]
    assert offenders == []


def test_core_imports_without_rclpy_on_the_path(tmp_path):
    # A poisoned rclpy first on sys.path: importing the core must never touch it.
    (tmp_path / "rclpy").mkdir()
    (tmp_path / "rclpy" / "__init__.py").write_text("raise ImportError('rclpy imported')\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import liploc_ros.preprocess, liploc_ros.config, liploc_ros.cli, liploc_ros.datasets\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --- layering: the package-level import graph against docs/ARCHITECTURE.md's table ---

PACKAGE = ROOT / "liploc_ros"


def _unit(module: str) -> str | None:
    """The package (or top-level module) of liploc_ros that ``module`` belongs to."""
    parts = module.split(".")
    if parts[0] != "liploc_ros":
        return None
    return parts[1] if len(parts) > 1 else "liploc_ros"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import in ``path``, inside functions too, without the
    ``if TYPE_CHECKING:`` blocks; relative imports resolved; ``from liploc_ros import x``
    names the submodule x where there is one."""
    here = list(path.relative_to(ROOT).parts[:-1])  # the package a relative import starts at
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_node(other)
            else:
                visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for a in node.names:
                sub = f"{module}.{a.name}"
                is_sub = (ROOT / sub.replace(".", "/")).is_dir() or (
                    ROOT / (sub.replace(".", "/") + ".py")
                ).is_file()
                found.append((sub if is_sub else module, node.lineno))
        else:
            visit(node)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def import_graph() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package -> the import sites ("module.py:line")."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module, line in _imports(path):
            dst = _unit(module)
            if src and dst and dst != src:
                site = f"{path.relative_to(ROOT)}:{line}"
                edges.setdefault((src, dst), []).append(site)
    return edges


def allowed_imports() -> dict[str, set[str]]:
    """The table "Who may import whom" of docs/ARCHITECTURE.md: package -> what it may import
    ("the base": every package of layer 0)."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("### Who may import whom", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1].split("`")[1], cells[2]))
        elif rows and not line.startswith("|"):
            break
    base = {name for layer, name, _ in rows if layer == 0}
    table = {}
    for _, name, cell in rows:
        names = set(cell.split("`")[1::2])
        table[name] = names | (base if "the base" in cell else set())
    return table


def test_the_import_graph_follows_the_layers_of_architecture_md():
    table = allowed_imports()
    graph = import_graph()
    units = {
        p.stem if p.suffix else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    units.add("liploc_ros")
    assert units - set(table) == set(), "packages missing from the table in ARCHITECTURE.md"
    assert set(table) - units == set(), "rows of ARCHITECTURE.md's table name no package"
    wrong = {
        f"{a} -> {b}": sites[:3] for (a, b), sites in sorted(graph.items()) if b not in table[a]
    }
    assert wrong == {}, "imports the table in docs/ARCHITECTURE.md does not allow"


def _find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(succ.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(succ):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_no_cycle_between_packages():
    graph = import_graph()
    cycle = _find_cycle(set(graph))
    if cycle is not None:
        sites = {f"{a} -> {b}": graph[a, b][:3] for a, b in itertools.pairwise(cycle)}
        pytest.fail(f"import cycle {' -> '.join(cycle)}: {sites}")


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == ["a", "b", "c", "a"]
    assert _find_cycle({("a", "b"), ("a", "c"), ("b", "c")}) is None


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.prefix) / "bin/ruff").exists(),
                    reason="ruff is not installed")  # fmt: skip
def test_ruff_lint_and_format_are_clean():
    ruff = shutil.which("ruff") or str(Path(sys.prefix) / "bin/ruff")
    lint = subprocess.run(
        [ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [ruff, "format", "--check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_the_package_ships_its_py_typed_marker():
    assert (ROOT / "liploc_ros" / "py.typed").is_file()
    assert 'package_data={package_name: ["py.typed"]}' in (ROOT / "setup.py").read_text()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_finds_no_type_errors():
    # the [mypy] section of setup.cfg says what to check and how strictly (`make lint` too)
    out = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
