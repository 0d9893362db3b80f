"""Package hygiene: manifest, layering (the core never imports rclpy), lint, type check."""

from __future__ import annotations

import ast
import importlib.util
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
