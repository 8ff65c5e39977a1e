"""The lesson (``actlab/*.py``) never imports the lab (``actlab/lab/``), and plotting draws data only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "actlab"
ENTRY_POINT = PACKAGE / "__main__.py"
"""``python -m actlab`` runs the lab's command line: the one lesson-level file that names the lab."""
LESSON = sorted(path for path in PACKAGE.glob("*.py") if path != ENTRY_POINT)


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_there_are_two_layers():
    assert len(LESSON) >= 10 and len(list((PACKAGE / "lab").glob("*.py"))) >= 5


@pytest.mark.parametrize("module", LESSON, ids=lambda path: path.name)
def test_the_lesson_never_imports_the_lab(module):
    lab = sorted(name for name in imported_modules(module) if name == "actlab.lab" or name.startswith("actlab.lab."))
    assert not lab, f"actlab/{module.name} imports the lab: {lab}"


def test_the_check_sees_an_import_of_the_lab(tmp_path):
    for line in ("from actlab.lab import compare", "import actlab.lab.runs", "from actlab import lab"):
        module = tmp_path / "m.py"
        module.write_text(line + "\n")
        assert any(name.startswith("actlab.lab") for name in imported_modules(module)), line


DATA_TYPES = {"actlab.activations", "actlab.activations.Curve", "actlab.activations.act_fn_by_name", "actlab.training",
              "actlab.training.History"}
"""What plotting may import from actlab: the types of the data it draws, and the activations' names (for colours)."""


def test_plotting_draws_data_and_computes_nothing():
    ours = {name for name in imported_modules(PACKAGE / "plotting.py") if name.startswith("actlab")}
    assert ours <= DATA_TYPES, ours


def test_importing_the_package_draws_nothing():
    """``import actlab`` and the command line load no plotting library: drawing is imported where it is used."""
    code = ("import sys, actlab, actlab.lab.cli\n"
            "print(sorted(m for m in ('matplotlib', 'ipywidgets') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
