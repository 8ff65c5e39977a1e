"""The committed notebooks as readers meet them: executed, static where widgets cannot render, honest about code.

nbval (over ``notebooks/``) executes them; these tests read the committed files themselves.
"""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
BOTH_EDITIONS = NOTEBOOKS + sorted((Path(__file__).resolve().parent.parent / "notebooks" / "zh").glob("*.ipynb"))
"""The English notebooks and their Chinese twins (``notebooks/zh``), whose code cells are the same."""


def label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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


@pytest.mark.parametrize("notebook", BOTH_EDITIONS, ids=label)
def test_committed_after_a_full_top_to_bottom_run(notebook):
    counts = [cell.get("execution_count") for cell in code_cells(notebook)]
    assert None not in counts, f"{notebook.name} has cells that were not run"
    assert counts == list(range(1, len(counts) + 1)), f"{notebook.name} was not run top to bottom in one kernel"
    assert not any(output.get("output_type") == "error" for cell in code_cells(notebook) for output in
                   cell.get("outputs", [])), f"{notebook.name} has an error output"


@pytest.mark.parametrize("notebook", BOTH_EDITIONS, ids=label)
def test_no_execution_timestamps(notebook):
    stamped = [i for i, cell in enumerate(cells(notebook)) if "execution" in cell["metadata"]]
    assert not stamped, f"{notebook.name}: cells {stamped} carry execution timestamps (make run leaves them out)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_test_markers_are_tags_not_comments(notebook):
    marked = [i for i, cell in enumerate(cells(notebook)) if "NBVAL_" in source(cell)]
    assert not marked, f"{notebook.name}: cells {marked} use NBVAL_ comments; use nbval-* cell tags"


@pytest.mark.parametrize("notebook", BOTH_EDITIONS, ids=label)
def test_every_widget_has_a_static_figure_beside_it(notebook):
    code = code_cells(notebook)
    for i, cell in enumerate(code):
        if WIDGET_VIEW in mimetypes(cell):
            near = mimetypes(cell) | (mimetypes(code[i + 1]) if i + 1 < len(code) else set())
            assert "image/png" in near, f"{notebook.name}, code cell {i}: a widget without a static figure beside it"
            plain = [o["data"].get("text/plain", "") for o in cell["outputs"] if WIDGET_VIEW in o.get("data", {})]
            assert not any("Box(children" in "".join(text) for text in plain), "the widget's fallback is its repr"


def parsed(cell: dict) -> ast.Module:
    return ast.parse(TransformerManager().transform_cell(source(cell)))


def show_source_calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "show_source"]


def shown_sources() -> list[tuple[Path, int, dict]]:
    """Every code cell that mentions ``show_source(``, whatever else is on the line."""
    return [(notebook, i, cell) for notebook in NOTEBOOKS for i, cell in enumerate(code_cells(notebook))
            if "show_source(" in source(cell) and "import" not in source(cell)]


def test_every_show_source_call_is_found():
    assert len(shown_sources()) >= 18
    cell = {"source": ["show_source(training.fit)  # the epoch loop;"]}
    assert [ast.unparse(call.args[0]) for call in show_source_calls(parsed(cell))] == ["training.fit"]


@pytest.mark.parametrize(("notebook", "index", "cell"), shown_sources(),
                         ids=lambda value: value.name if isinstance(value, Path) else None)
def test_shown_source_is_the_current_source(notebook, index, cell):
    tree = parsed(cell)
    calls = show_source_calls(tree)
    where = f"{notebook.name}, code cell {index}"
    assert len(calls) == source(cell).count("show_source(") == 1, f"{where}: one show_source call per cell"
    last = tree.body[-1]
    assert isinstance(last, ast.Expr) and last.value is calls[0], f"{where}: show_source must be the cell's result"
    target = ast.unparse(calls[0].args[0])
    shown = [o["data"]["text/plain"] for o in cell.get("outputs", []) if "text/plain" in o.get("data", {})]
    assert shown, f"{where} shows nothing (a trailing ';' hides it?)"
    obj = eval(target, imports_of(notebook))
    assert "".join(shown[0]).rstrip() == inspect.getsource(obj).rstrip(), (
        f"{where} shows an outdated {target}: run `make run` to refresh it")


TAUGHT = {"ActivationFunction": "01", "BaseNetwork": "03", "network.initialize": "03", "network.glorot_gain": "03",
          "training.fit": "04", "hooks.recording_activations": "05"}
"""What the notebooks teach, and the notebook that shows its source."""


@pytest.mark.parametrize(("target", "number"), TAUGHT.items())
def test_what_is_taught_is_shown(target, number):
    shown = {(notebook.name[:2], ast.unparse(show_source_calls(parsed(cell))[0].args[0]))
             for notebook, _, cell in shown_sources()}
    assert (number, target) in shown


def bound_names(tree: ast.AST) -> set[str]:
    """Names that assignments, loops, ``with`` and definitions bind (not imports)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_variable_shadows_an_import(notebook):
    trees = [parsed(cell) for cell in code_cells(notebook)]
    imported = {(alias.asname or alias.name).split(".")[0] for tree in trees for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    shadowed = sorted(imported & set().union(*(bound_names(tree) for tree in trees)))
    assert not shadowed, f"{notebook.name} re-binds imported names: {shadowed}"


@pytest.mark.parametrize("notebook", BOTH_EDITIONS, ids=label)
def test_the_set_up_cell_says_the_mode_and_the_committed_outputs_come_from_full_mode(notebook):
    code = code_cells(notebook)
    setup = next(cell for cell in code if "from actlab" in source(cell))
    assert "print(mode_line(" in source(setup), f"{notebook.name}: the set-up cell does not print mode_line"
    stated = ["".join(o["text"]) for cell in code if "mode_line(" in source(cell) for o in cell["outputs"]
              if o.get("output_type") == "stream"]
    assert stated and all(out.startswith("full mode") and "thread" in out for out in stated), stated


def tiny_notebook(path: Path, printed: str) -> Path:
    """A notebook whose committed outputs say ``printed``, then a memory address."""
    cells = [
        {"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": ["print(6 * 7)"],
         "outputs": [{"name": "stdout", "output_type": "stream", "text": [f"{printed}\n"]}]},
        {"cell_type": "code", "execution_count": 2, "id": "b", "metadata": {}, "source": ["print(hex(id(object())))"],
         "outputs": [{"name": "stdout", "output_type": "stream", "text": ["0x7f0000000000\n"]}]},
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


@pytest.mark.parametrize(("printed", "passes"), [("42", True), ("43", False)])
def test_nbval_compares_every_output_as_make_test_runs_it(tmp_path, printed, passes):
    notebook = tiny_notebook(tmp_path / "tiny.ipynb", printed)
    root = NOTEBOOKS[0].parent.parent
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                          str(root / "pyproject.toml"), str(notebook)],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == (0 if passes else 1), run.stdout[-2000:]
    assert ("2 passed" if passes else "1 failed, 1 passed") in run.stdout


def names_outside_classes(tree: ast.AST, ctx: type) -> set[str]:
    """Names used in ``ctx`` (``ast.Store`` or ``ast.Load``), class bodies (attributes) left out."""
    found, stack = set(), [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ClassDef):
            stack.extend(node.bases + node.decorator_list)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ctx):
            found.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_unused_variables(notebook):
    trees = [parsed(cell) for cell in code_cells(notebook)]
    stored = set().union(*(names_outside_classes(tree, ast.Store) for tree in trees))
    loaded = set().union(*(names_outside_classes(tree, ast.Load) for tree in trees))
    unused = sorted(stored - loaded - {"fig", "_"})  # `fig = plot...` keeps a figure from printing its repr
    assert not unused, f"{notebook.name} assigns names it never uses: {unused}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption(notebook):
    all_cells = cells(notebook)
    for i, cell in enumerate(all_cells):
        if cell["cell_type"] == "code" and "image/png" in mimetypes(cell):
            following = all_cells[i + 1] if i + 1 < len(all_cells) else {"cell_type": "", "source": []}
            assert following["cell_type"] == "markdown" and source(following).startswith("*Figure:"), (
                f"{notebook.name}: the figure of cell {i} has no caption cell after it")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_folded_under_their_headings(notebook):
    headings = [cell for cell in cells(notebook) if source(cell).startswith("### Solution to exercise")]
    assert headings, f"{notebook.name} has no worked solution"
    for cell in headings:
        assert source(cell).count("\n") == 0, "a solution heading stands alone in its cell"
        assert cell["metadata"].get("jp-MarkdownHeadingCollapsed") is True, source(cell)


def test_the_guides_state_the_run_all_times_that_the_benchmark_measured():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "run_all.py"
    spec = importlib.util.spec_from_file_location("run_all", path)
    assert spec is not None and spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    results = json.loads(run_all.RESULTS.read_text())
    assert set(results["quiet"]) == {notebook.name[:2] for notebook in NOTEBOOKS} == set(results["busy"])
    for guide in run_all.GUIDES:
        stated = {match.group(2): match.group(3) for line in guide.read_text(encoding="utf-8").splitlines()
                  if (match := run_all.ROW.match(line))}
        expected = {number: run_all.guide_cell(guide, results["quiet"][number], results["busy"][number])
                    for number in results["quiet"]}
        assert stated == expected, guide.name
