"""The notebooks run headless, without errors, and match their sources.

Select them with ``pytest -k notebook``. Each notebook runs in a fresh ``python3`` kernel (this
interpreter) with ``notebooks/`` as the working folder; a failing cell fails the test with the cell
and its traceback. The committed ``.ipynb`` files are built by ``notebooks/_build.py`` from
``notebooks/src/*.py``; ``test_notebook_matches_source`` catches edits made to one and not the other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = sorted(p.stem for p in (NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))


def _builder():
    spec = importlib.util.spec_from_file_location("_notebook_build", NOTEBOOKS / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_every_notebook_source_is_built() -> None:
    built = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert built == NAMES, "run `python notebooks/_build.py` after adding or renaming a notebook source"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_matches_source(name: str) -> None:
    built = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    fresh = _builder().notebook_from_source(NOTEBOOKS / "src" / f"{name}.py")
    assert [(c.cell_type, c.source) for c in built.cells] == [(c.cell_type, c.source) for c in fresh.cells], (
        f"{name}.ipynb is out of date with src/{name}.py: run `python notebooks/_build.py {name[:2]}`"
    )
    errors = [o for c in built.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}.ipynb was committed with an error output: {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name: str) -> None:
    """Run the committed notebook top to bottom (fresh kernel, cwd notebooks/); any cell error fails."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    _builder().execute(nb, timeout=120)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count is not None for c in ran)
    assert not [o for c in ran for o in c.outputs if o.output_type == "error"]
