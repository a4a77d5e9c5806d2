"""Executes every notebook in notebooks/ on the real "latentgan" evcxr kernel, one at a time.

A notebook fails on: an error output; "panicked at" in any stderr stream (evcxr reports a
panicking cell as a success); or a cell tagged `expect:<mime>` that did not produce an output of
that MIME type (e.g. `expect:image/png`, `expect:image/svg+xml`).

Run: .venv/bin/python -m pytest tests/notebooks (after `bash kernel/install.sh`).
Set LATENTGAN_UPDATE_NOTEBOOKS=1 to write the executed outputs back into notebooks/;
LATENTGAN_KERNEL=latentgan-wgpu (or latentgan-cuda) to run them on a GPU kernel
(`bash kernel/install.sh --backend wgpu`); LATENTGAN_EXECUTED_DIR=DIR to keep the executed copies
there (outputs and images); LATENTGAN_SKIP_TAG=fid to leave out the cells tagged `fid` (Inception
on lavapipe takes minutes per 100 images); LATENTGAN_README_CELL=1 to run the README's cell too.
"""
import copy
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BROKEN = Path(__file__).resolve().parent / "broken"
KERNEL = os.environ.get("LATENTGAN_KERNEL", "latentgan")
# The first notebook compiles latentgan and Burn inside the kernel (~11 min on 2 cores).
CELL_TIMEOUT = int(os.environ.get("LATENTGAN_CELL_TIMEOUT", "3600"))


def execute(path, nb=None):
    """Runs a notebook (read from `path` unless given) on the kernel in `path`'s folder; returns
    the executed copy."""
    nb = nb or nbformat.read(path, as_version=4)
    skip = os.environ.get("LATENTGAN_SKIP_TAG")
    if skip:
        nb.cells = [c for c in nb.cells if skip not in c.get("metadata", {}).get("tags", [])]
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        # A GPU kernel checks its build of latentgan (init.evcxr) before it answers.
        startup_timeout=900,
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def problems(nb):
    """Everything wrong with an executed notebook, one line each."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"cell {index} ({cell.source.strip().splitlines()[0][:60] if cell.source.strip() else 'empty'})"
        mimes = set()
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"{where}: error output {out.get('ename')}: {out.get('evalue')}")
            elif out.output_type == "stream" and out.name == "stderr" and "panicked at" in out.text:
                found.append(f"{where}: panic on stderr: {out.text.strip()[:300]}")
            elif out.output_type in ("display_data", "execute_result"):
                mimes.update(out.get("data", {}).keys())
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("expect:") and tag[len("expect:"):] not in mimes:
                found.append(f"{where}: expected an output of type {tag[len('expect:'):]}, got {sorted(mimes) or 'none'}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_clean(path):
    nb = execute(path)
    if os.environ.get("LATENTGAN_UPDATE_NOTEBOOKS") == "1":
        nbformat.write(nb, path)
    if os.environ.get("LATENTGAN_EXECUTED_DIR"):
        keep = Path(os.environ["LATENTGAN_EXECUTED_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    assert not problems(nb), "\n".join(problems(nb))


@pytest.mark.skipif(os.environ.get("LATENTGAN_README_CELL") != "1",
                    reason="trains for about 5 min: set LATENTGAN_README_CELL=1")
def test_the_readmes_cell_runs_unchanged():
    """A user's notebook written from the README: its two cells, as they are, on this kernel."""
    readme = (ROOT / "README.md").read_text()
    cells = [block.split("```", 1)[0] for block in readme.split("```rust\n")[1:3]]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.cells[-1].metadata["tags"] = ["expect:image/png"]
    nb = execute(ROOT / "notebooks" / "readme-cell.ipynb", nb)
    assert not problems(nb), "\n".join(problems(nb))
    print("".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream"))


def test_a_cells_first_question_mark_still_shows_its_image():
    """evcxr 0.22.0 printed a final `show_grid(..)?` with Debug in the first cell that uses `?`
    (kernel/evcxr-display.patch)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(':dep latentgan = { path = ".." }\nuse latentgan::prelude::*;'),
        nbformat.v4.new_code_cell('let faces = load_images("../datasets/lfw-faces", 32)?;\n'
                                  'show_grid(&faces.images(4), GridOptions::default())?'),
    ]
    nb.cells[-1].metadata["tags"] = ["expect:image/png"]
    nb = execute(ROOT / "notebooks" / "first-question-mark.ipynb", nb)
    assert not problems(nb), "\n".join(problems(nb))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


def test_harness_fails_a_notebook_that_panics():
    """The harness itself: a real kernel run of a cell that panics must be flagged."""
    nb = execute(BROKEN / "panic.ipynb")
    found = problems(nb)
    assert any("panicked at" in p for p in found), found
    assert any("expected an output of type image/png" in p for p in found), found


def _cell(source, outputs, tags=()):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    cell.metadata["tags"] = list(tags)
    return cell


def test_problems_flags_errors_panics_and_missing_outputs():
    good_png = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _cell("ok", [good_png], tags=["expect:image/png"]),
        _cell("err", [{"output_type": "error", "ename": "Error", "evalue": "boom", "traceback": []}]),
        _cell("panic", [{"output_type": "stream", "name": "stderr", "text": "thread 'main' panicked at src/lib.rs:1:1"}]),
        _cell("svg", [good_png], tags=["expect:image/svg+xml"]),
    ]
    found = problems(copy.deepcopy(nb))
    assert len(found) == 3, found
    assert "boom" in found[0] and "panicked at" in found[1] and "image/svg+xml" in found[2]
    nb.cells = nb.cells[:1]
    assert problems(nb) == []
