"""Peak resident memory and wall time of every notebook, executed headless in full mode.

Each notebook runs in a fresh kernel, one after another; the peak is the kernel's own, which the
kernel reports in a last cell added for the measurement. Processes the kernel forks (a subprocess
call) share its pages and would report the kernel's size again, so they are not counted. Binder
guarantees 1 GB, so the target is at most 1.0 GB per notebook.

Usage: python benchmarks/notebook_memory.py [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from activation_speed import machine
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TARGET_GB = 1.0
KERNEL_PEAK = "import resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
"""The kernel's own peak resident memory, in kilobytes (Linux)."""


def peak_memory(notebook: Path) -> tuple[float, float]:
    """Peak resident memory (GB) of the kernel while ``notebook`` runs in full mode, and the wall time (s)."""
    os.environ.pop("ACTLAB_QUICK", None)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(KERNEL_PEAK))
    start = time.perf_counter()
    NotebookClient(nb, timeout=1200, resources={"metadata": {"path": str(notebook.parent)}}).execute()
    kilobytes = int("".join(nb.cells[-1].outputs[0]["text"]).strip())
    return kilobytes / 1024**2, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to measure (default: all)")
    notebooks = parser.parse_args().notebooks or sorted([*NOTEBOOKS.glob("*.ipynb"), *NOTEBOOKS.glob("zh/*.ipynb")])
    print(machine())
    print(f"peak memory of the kernel in a full-mode run; target: at most {TARGET_GB:.1f} GB\n")
    over = []
    for notebook in notebooks:
        gigabytes, seconds = peak_memory(notebook)
        verdict = "within the target" if gigabytes <= TARGET_GB else "ABOVE THE TARGET"
        print(f"  {notebook.name:36} {gigabytes:5.2f} GB  {seconds:5.0f} s  {verdict}")
        if gigabytes > TARGET_GB:
            over.append(notebook.name)
    print("\nevery notebook within the target" if not over else f"\nabove {TARGET_GB:.1f} GB: {', '.join(over)}")


if __name__ == "__main__":
    main()
