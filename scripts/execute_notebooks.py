"""Executes notebooks headless, each on a study folder, and fails if any cell fails (issue 11: notebooks never rot).

Usage: python scripts/execute_notebooks.py [--all DIR] [--out DIR] NOTEBOOK=STUDY ...
       python scripts/execute_notebooks.py --clear NOTEBOOK ...

Each NOTEBOOK=STUDY pair runs in a fresh Python kernel (IPC transport: no TCP port) with SINGLORA_STUDY=STUDY and the
notebook's own folder as working directory. A notebook that carries outputs is refused: notebooks are committed
cleared (`--clear NOTEBOOK ...` clears them in place). `--all DIR` fails when a notebook of DIR is given no study;
`--out DIR` keeps the executed copies there.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config


def refuse_outputs(nb, path):
    """Exits naming the cells of a committed notebook that carry outputs or execution counts."""
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    if dirty:
        sys.exit(f"{path}: cells {dirty} carry outputs; clear them: python {sys.argv[0]} --clear {path}")


def clear(path):
    """Removes every output and execution count of `path`, in place."""
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nbformat.write(nb, path)


def execute(path, study, sockets, out):
    """Runs every cell of `path` on `study`; True if none failed."""
    nb = nbformat.read(path, as_version=4)
    refuse_outputs(nb, path)
    os.environ["SINGLORA_STUDY"] = str(study)
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(sockets / path.stem)
    client = NotebookClient(nb, config=config, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.time()
    try:
        client.execute()
        ok = True
    except CellExecutionError as e:
        print(f"FAILED {path} on {study}:\n{e}", file=sys.stderr)
        ok = False
    if out:
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{path.stem}__{Path(study).name}.ipynb")
    print(f"{'ok' if ok else 'FAILED'}: {path} on {study} ({time.time() - start:.1f} s)", flush=True)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", metavar="NOTEBOOK=STUDY")
    p.add_argument("--all", type=Path, help="fail when a notebook of this folder is given no study")
    p.add_argument("--out", type=Path, help="keep the executed notebooks here")
    p.add_argument("--clear", action="store_true", help="clear the outputs of the NOTEBOOK arguments, in place")
    a = p.parse_args()
    if a.clear:
        for path in a.pairs:
            clear(path)
        return
    pairs = []
    for pair in a.pairs:
        nbpath, sep, study = pair.partition("=")
        if not sep or not Path(nbpath).is_file() or not Path(study).is_dir():
            p.error(f"invalid pair {pair!r}: expected NOTEBOOK=STUDY, an existing notebook and study folder")
        pairs.append((Path(nbpath).resolve(), Path(study).resolve()))
    if a.all:
        missing = {n.resolve() for n in a.all.glob("*.ipynb")} - {n for n, _ in pairs}
        if missing:
            p.error(f"--all {a.all}: no study given for {sorted(m.name for m in missing)}")
    with tempfile.TemporaryDirectory() as sockets:
        results = [execute(n, s, Path(sockets), a.out) for n, s in pairs]
    if not all(results):
        sys.exit(f"{results.count(False)} of {len(results)} notebook runs failed")


if __name__ == "__main__":
    main()
