"""How long each widget takes to answer a change of one control: a new state, and one seen before.

The widgets are driven from Python exactly as a click would drive them (setting a control's value
runs the callback); a state seen before comes from the widget's cache. Full-size data.

``--busy N`` measures while N processes keep a core busy each (a Python loop that never sleeps),
as on a shared classroom server.

Usage: python benchmarks/widget_response.py [--busy N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import matplotlib
from activation_speed import machine

from actlab import gradients, load_fashion_mnist
from actlab.lab.compare import experiment_rows, load_experiments
from actlab.lab.references import SOURCE_RUNS
from actlab.lab.runs import load_history
from actlab.settings import SAVED_MODELS
from actlab.widgets import (
    ActivationExplorer,
    CurveChooser,
    DepthExplorer,
    ExperimentExplorer,
    GradientExplorer,
    StatisticsExplorer,
)

matplotlib.use("Agg")
TARGET_S = 1.0


def seconds_to_set(control, value) -> float:
    """Seconds until setting ``control`` to ``value`` has run the widget's callback."""
    start = time.perf_counter()
    control.value = value
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="busy competing processes during the measurement")
    args = parser.parse_args()
    print(machine())
    data = load_fashion_mnist(quick=False)
    imgs, labels = gradients.first_batch(data)
    histories = {run.activation: load_history(SAVED_MODELS, run.name) for run in SOURCE_RUNS}
    rows = experiment_rows(load_experiments(SAVED_MODELS / "multiseed"))
    cases = {
        "ActivationExplorer, activation": (ActivationExplorer("relu"), "activation", ["elu", "gelu", "relu"]),
        "ActivationExplorer, x range": (ActivationExplorer("elu"), "x_range", [(-8.0, 8.0), (-2.0, 2.0), (-5.0, 5.0)]),
        "GradientExplorer, activation": (GradientExplorer(imgs, labels), "activation", ["relu", "tanh", "sigmoid"]),
        "DepthExplorer, 16 layers": (DepthExplorer(imgs, labels), "depth", [16, 12, 4]),
        "DepthExplorer, init": (DepthExplorer(imgs, labels, depth=16), "init", ["he", "glorot", "default"]),
        "StatisticsExplorer, epoch": (StatisticsExplorer(histories), "epoch", [5, 10, 0]),
        "ExperimentExplorer, activation box": (
            ExperimentExplorer({"seeds": {"rows": rows, "setting": "seed"}}), None, None),
        "CurveChooser, box": (CurveChooser(histories, selected=["relu"]), None, None),
    }
    print(f"\nseconds to answer one change with {args.busy} busy competitor(s) "
          f"(target: at most {TARGET_S:.1f} s after the first use)")
    print(f"{'widget, control':40} {'new state':>10} {'seen before':>12}")
    worst = 0.0
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        worst = measure(cases)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    verdict = "every widget within the target" if worst <= TARGET_S else "SLOWER THAN THE TARGET"
    print(f"\nslowest new state: {worst:.2f} s: {verdict}")


def measure(cases: dict) -> float:
    """Print each case's seconds for a new state and a state seen before; return the slowest new state."""
    worst = 0.0
    time.sleep(0.5)
    for name, (widget, attribute, values) in cases.items():
        if attribute is None:
            control = next(iter(widget.boxes.values()))
            values = [not control.value, control.value, not control.value]
        else:
            control = getattr(widget, attribute)
        new = statistics.median(seconds_to_set(control, value) for value in values[:2])
        seen = seconds_to_set(control, values[0])
        worst = max(worst, new)
        print(f"{name:40} {new:>9.2f}s {seen:>11.3f}s")
    return worst


if __name__ == "__main__":
    main()
