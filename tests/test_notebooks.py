"""The committed notebooks as readers meet them: executed, static where widgets cannot render, honest about code.

nbval (over ``notebooks/``) executes them; these tests read the committed files themselves.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SHOW_SOURCE = re.compile(r"^show_source\((?P<target>[\w.]+)\)$")


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def code_cells(notebook: Path) -> list[dict]:
    return [cell for cell in cells(notebook) if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def mimetypes(cell: dict) -> set[str]:
    return {kind for output in cell.get("outputs", []) for kind in output.get("data", {})}


def imports_of(notebook: Path) -> dict:
    """A namespace holding only what the notebook's import statements bring in."""
    namespace: dict = {}
    for cell in code_cells(notebook):
        tree = ast.parse(TransformerManager().transform_cell(source(cell)))
        statements = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(statements, type_ignores=[]), str(notebook), "exec"), namespace)
    return namespace


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_after_a_full_top_to_bottom_run(notebook):
    counts = [cell.get("execution_count") for cell in code_cells(notebook)]
    assert None not in counts, f"{notebook.name} has cells that were not run"
    assert counts == list(range(1, len(counts) + 1)), f"{notebook.name} was not run top to bottom in one kernel"
    assert not any(output.get("output_type") == "error" for cell in code_cells(notebook) for output in
                   cell.get("outputs", [])), f"{notebook.name} has an error output"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_execution_timestamps(notebook):
    stamped = [i for i, cell in enumerate(cells(notebook)) if "execution" in cell["metadata"]]
    assert not stamped, f"{notebook.name}: cells {stamped} carry execution timestamps (make run leaves them out)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_test_markers_are_tags_not_comments(notebook):
    marked = [i for i, cell in enumerate(cells(notebook)) if "NBVAL_" in source(cell)]
    assert not marked, f"{notebook.name}: cells {marked} use NBVAL_ comments; use nbval-* cell tags"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_widget_has_a_static_figure_beside_it(notebook):
    code = code_cells(notebook)
    for i, cell in enumerate(code):
        if WIDGET_VIEW in mimetypes(cell):
            near = mimetypes(cell) | (mimetypes(code[i + 1]) if i + 1 < len(code) else set())
            assert "image/png" in near, f"{notebook.name}, code cell {i}: a widget without a static figure beside it"
            plain = [o["data"].get("text/plain", "") for o in cell["outputs"] if WIDGET_VIEW in o.get("data", {})]
            assert not any("Box(children" in "".join(text) for text in plain), "the widget's fallback is its repr"


def shown_sources() -> list[tuple[Path, str, str]]:
    found = []
    for notebook in NOTEBOOKS:
        for cell in code_cells(notebook):
            match = SHOW_SOURCE.match(source(cell).strip())
            if match:
                shown = [o["data"]["text/plain"] for o in cell["outputs"] if "text/plain" in o.get("data", {})]
                found.append((notebook, match["target"], "".join(shown[0]) if shown else ""))
    return found


@pytest.mark.parametrize(("notebook", "target", "shown"), shown_sources(),
                         ids=lambda value: value.name if isinstance(value, Path) else None)
def test_shown_source_is_the_current_source(notebook, target, shown):
    obj = eval(target, imports_of(notebook))
    assert shown.rstrip() == inspect.getsource(obj).rstrip(), (
        f"{notebook.name} shows an outdated {target}: run `make run` to refresh it")
