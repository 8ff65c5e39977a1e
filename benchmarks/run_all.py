"""How long Run All takes for each notebook in full mode, quiet and beside two busy processes.

Each English notebook is executed top to bottom in a fresh kernel (kernel start included), as a
student's *Run All* would, without writing the notebook back. First on a quiet machine, then while
two processes keep a core busy each (a Python loop that never sleeps), as on a shared classroom
server. The results go to ``benchmarks/run_all.json``; ``--update-guide`` then writes them into the
"run all" column of the teacher's guide (``docs/teaching.md`` and ``docs/teaching.zh-CN.md``), which
``tests/test_notebooks.py`` checks against that file. Run it while nothing else runs on the machine.

Usage: python benchmarks/run_all.py [--update-guide]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "run_all.json"
GUIDES = {
    ROOT / "docs" / "teaching.md": "about {quiet} s ({busy} s beside two busy processes)",
    ROOT / "docs" / "teaching.zh-CN.md":
        "约 {quiet} s\N{FULLWIDTH LEFT PARENTHESIS}旁边有两个繁忙进程时 {busy} s\N{FULLWIDTH RIGHT PARENTHESIS}",
}
"""Each guide and how its "run all" column words a notebook's two times."""
ROW = re.compile(r"^(\| \[?(\d\d) · [^|]*\| )([^|]*)( \|.*)$")


def run_all_seconds(notebook: Path) -> float:
    """Seconds to execute ``notebook`` in full mode in a fresh kernel, started in its folder."""
    os.environ["ACTLAB_QUICK"] = "0"
    start = time.perf_counter()
    NotebookClient(nbformat.read(notebook, as_version=4), timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    return time.perf_counter() - start


def measure(notebooks: list[Path], busy: int) -> dict[str, float]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        times = {}
        for notebook in notebooks:
            times[notebook.name[:2]] = run_all_seconds(notebook)
            print(f"  {notebook.name}, {busy} busy: {times[notebook.name[:2]]:.0f} s", flush=True)
        return times
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def rounded(seconds: float) -> int:
    """Seconds rounded up to a multiple of 5, as the guide states them."""
    return 5 * math.ceil(seconds / 5)


def guide_cell(guide: Path, quiet: float, busy: float) -> str:
    """The "run all" cell of one notebook's row in ``guide``."""
    return GUIDES[guide].format(quiet=rounded(quiet), busy=rounded(busy))


def update_guides(results: dict) -> None:
    """Write the measured times into the "run all" column of each guide's table."""
    for guide in GUIDES:
        lines = guide.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(lines):
            match = ROW.match(line)
            if match and match.group(2) in results["quiet"]:
                number = match.group(2)
                cell = guide_cell(guide, results["quiet"][number], results["busy"][number])
                lines[i] = f"{match.group(1)}{cell}{match.group(4)}"
        guide.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-guide", action="store_true", help="write the times into the teacher's guides")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    machine = f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs"
    print(f"{machine}, load average {os.getloadavg()[0]:.2f} at the start")
    results = {"machine": machine, "quiet": measure(notebooks, 0), "busy": measure(notebooks, 2)}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{'notebook':10}{'quiet':>8}{'2 busy':>8}{'ratio':>7}")
    for number, quiet in results["quiet"].items():
        busy = results["busy"][number]
        print(f"{number:10}{quiet:>7.0f}s{busy:>7.0f}s{busy / quiet:>7.2f}")
    print(f"\nWritten to {RESULTS.relative_to(ROOT)}.")
    if args.update_guide:
        update_guides(results)
        print("The teacher's guides now state these times.")


if __name__ == "__main__":
    main()
