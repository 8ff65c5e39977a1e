"""Peak resident memory and wall time of every notebook, executed headless in full mode.

Each notebook runs in a fresh kernel, one after another; the peak is that of the largest process
(the kernel). Binder guarantees 1 GB, so the target is at most 1.0 GB per notebook.

Usage: python benchmarks/notebook_memory.py [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from activation_speed import machine

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TARGET_GB = 1.0

PEAK_OF_CHILDREN = (
    "import resource, subprocess, sys\n"
    "subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'notebook', '--execute',\n"
    "                '--stdout', sys.argv[1]], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_memory(notebook: Path) -> tuple[float, float]:
    """Peak resident memory (GB) of the largest process while ``notebook`` runs in full mode, and the wall time (s)."""
    env = {key: value for key, value in os.environ.items() if key != "ACTLAB_QUICK"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK_OF_CHILDREN, str(notebook)], capture_output=True, text=True,
                         env=env, check=True)
    return int(out.stdout.strip()) / 1024**2, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to measure (default: all)")
    notebooks = parser.parse_args().notebooks or sorted([*NOTEBOOKS.glob("*.ipynb"), *NOTEBOOKS.glob("zh/*.ipynb")])
    print(machine())
    print(f"peak memory of a full-mode run (largest process: the kernel); target: at most {TARGET_GB:.1f} GB\n")
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
