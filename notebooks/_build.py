"""Build the notebooks from their Python sources, execute them, and save them with their outputs.

    python notebooks/_build.py            # every notebook
    python notebooks/_build.py 02 05      # only these (by number or name)

Each notebook is written as a plain Python file in ``notebooks/src/`` in "percent" format:

    # %% [markdown]
    # # A title
    # Some words.

    # %%
    people = pe.segment(photo)

so it can be linted, diffed and reviewed like code. This script turns each source into
``notebooks/<name>.ipynb`` with nbformat, executes it with nbclient (working folder ``notebooks/``),
drops volatile metadata (timestamps), and writes it. The committed notebooks are the output of this
script; ``tests/test_notebooks.py`` re-executes them and checks their code still matches the sources.

While building, ``PERSON_ERASE_NOTEBOOK_BUILD=1`` is set in the kernel, so cells that would show
dev-set photos (which must never be committed) show nothing instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCES = HERE / "src"
KERNEL = "python3"


def parse_percent(text: str) -> list[tuple[str, str]]:
    """Split a percent-format source into ``(kind, source)`` cells, kind ``"markdown"`` or ``"code"``."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
            continue
        if not cells:  # anything before the first marker (a module docstring) is not part of the notebook
            continue
        kind, body = cells[-1]
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else line.lstrip("#")
        body.append(line)
    out = []
    for kind, body in cells:
        src = "\n".join(body).strip("\n")
        if src:
            out.append((kind, src))
    return out


def notebook_from_source(path: Path) -> nbformat.NotebookNode:
    """A fresh (unexecuted) notebook from one percent-format source file."""
    nb = nbformat.v4.new_notebook()
    for k, (kind, src) in enumerate(parse_percent(path.read_text(encoding="utf-8"))):
        cell = nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        cell.id = f"cell-{k:02d}"  # stable ids: rebuilding an unchanged notebook changes nothing
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"name": KERNEL, "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return nb


@contextlib.contextmanager
def python3_kernel() -> Iterator[dict[str, str]]:
    """A ``python3`` kernel spec that runs *this* interpreter, first on JUPYTER_PATH, plus the kernel env.

    Yields the environment variables to set while executing (the kernel inherits them).
    """
    with tempfile.TemporaryDirectory(prefix="pe-kernel-") as tmp:
        spec = Path(tmp) / "kernels" / KERNEL
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            # capture_fd_output off: native libraries' log lines (MediaPipe, TFLite) go to the kernel's own
            # stderr instead of into cells, and nothing writes to a closed event loop at kernel shutdown
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.capture_fd_output=False"],
            "display_name": "Python 3", "language": "python",
        }))
        paths = [tmp] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        pypath = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        yield {"JUPYTER_PATH": os.pathsep.join(paths), "PYTHONPATH": os.pathsep.join(pypath),
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(nb: nbformat.NotebookNode, *, timeout: int = 120, build: bool = False) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a fresh ``python3`` kernel with ``notebooks/`` as the working folder.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (the message shows the cell and traceback).
    """
    from nbclient import NotebookClient

    with python3_kernel() as env:
        if build:
            env["PERSON_ERASE_NOTEBOOK_BUILD"] = "1"
        with _env(env):
            client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL,
                                    resources={"metadata": {"path": str(HERE)}})
            client.execute()
    return nb


#: stderr lines from native libraries (TFLite, glog, the kernel's transport) that say nothing to a reader
_NOISE = ("INFO: Created TensorFlow Lite", "WARNING: All log messages before absl", "[IPKernelApp]")


_GLOG = re.compile(r"^[IWEF]\d{4} .*\.(cc|h):\d+\]")  # glog lines from MediaPipe / TFLite


def _noise(line: str) -> bool:
    return line.lstrip().startswith(_NOISE) or bool(_GLOG.match(line))


def _merge_streams(outputs: list) -> list:
    """Join neighbouring stream outputs of the same name (a line may arrive in pieces)."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == out.get("name")):
            prev["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def _tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timestamps and native-library log noise, so a rebuild gives a small, readable diff."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        kept = []
        for out in _merge_streams(cell.get("outputs", [])):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(line for line in out["text"].splitlines(keepends=True) if not _noise(line))
                if not text.strip():
                    continue
                out["text"] = text
            kept.append(out)
        if cell.cell_type == "code":
            cell.outputs = kept
    nb.metadata.pop("widgets", None)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def sources() -> list[Path]:
    return sorted(SOURCES.glob("[0-9][0-9]_*.py"))


def build(path: Path) -> tuple[Path, float, int]:
    """Build, execute and write one notebook; returns (ipynb path, seconds, bytes)."""
    t0 = time.perf_counter()
    nb = execute(notebook_from_source(path), build=True)
    out = HERE / f"{path.stem}.ipynb"
    nbformat.validate(_tidy(nb))
    nbformat.write(nb, out)
    return out, time.perf_counter() - t0, out.stat().st_size


def main(argv: list[str]) -> int:
    chosen = sources()
    if argv:
        chosen = [p for p in chosen if any(p.stem == a or p.stem.startswith(a) for a in argv)]
        if not chosen:
            print(f"no notebook source matches {' '.join(argv)} in {SOURCES}", file=sys.stderr)
            return 2
    for path in chosen:
        out, secs, size = build(path)
        print(f"{out.name:28s} {secs:6.1f} s  {size / 1024:7.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
