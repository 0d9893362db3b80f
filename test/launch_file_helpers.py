"""Reading a launch file without importing it (launch_ros is not installable everywhere)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_launch(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def console_scripts() -> dict[str, str]:
    """name -> 'module:function' of setup.py's console_scripts."""
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


def keyword_strings(tree: ast.Module, keyword: str) -> list[str]:
    """The constant string values given to ``keyword=`` in any call."""
    return [
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == keyword and isinstance(kw.value, ast.Constant)
    ]


def import_roots(tree: ast.Module) -> set[str]:
    """The top-level packages the file imports."""
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    return roots
