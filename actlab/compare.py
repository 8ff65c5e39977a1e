"""Train every activation on several seeds and summarize the test accuracies."""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from actlab import settings
from actlab.activations import get_activation
from actlab.data import FashionMNISTData, load_fashion_mnist
from actlab.network import BaseNetwork
from actlab.training import History, load_history, train_model

FAILED_BELOW = 0.2
"""A run whose test accuracy stays below this has not learned (chance is 10%)."""

SOURCE_TEST_ACCURACY = {
    "sigmoid": 0.1000, "tanh": 0.8759, "relu": 0.8862, "leakyrelu": 0.8892, "elu": 0.8727, "swish": 0.8873,
}
"""The test accuracies that the source article reports, one seed each."""


def run_name(activation: str, seed: int) -> str:
    """The checkpoint name of one run of the comparison."""
    return f"FashionMNIST_{activation}_seed{seed}"


def summarize(accuracies: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation, minimum, maximum and failure count of test accuracies.

    A run without a test accuracy (it diverged before its first epoch ended) counts as failed.
    """
    measured = [acc for acc in accuracies if acc is not None]
    nan = float("nan")
    return {
        "runs": len(accuracies),
        "mean": statistics.fmean(measured) if measured else nan,
        "std": statistics.stdev(measured) if len(measured) > 1 else 0.0,
        "min": min(measured, default=nan),
        "max": max(measured, default=nan),
        "failed": len(accuracies) - sum(acc >= FAILED_BELOW for acc in measured),
    }


def compare_activations(
    activations: Sequence[str],
    seeds: Sequence[int],
    checkpoint_dir: Path,
    data: FashionMNISTData | None = None,
    progress: bool = True,
    **train_kwargs,
) -> dict:
    """Train a ``BaseNetwork`` per activation and seed; return every run and a summary per activation.

    Runs whose checkpoint already exists are loaded, not trained again.
    """
    data = data or load_fashion_mnist()
    device = settings.get_device()
    start = time.perf_counter()
    runs = []
    jobs = [(name, seed) for name in activations for seed in seeds]
    for name, seed in tqdm(jobs, desc="runs", unit="run", disable=not progress):
        settings.set_seed(seed)
        net = BaseNetwork(get_activation(name)).to(device)
        history = train_model(
            net, run_name(name, seed), model_path=checkpoint_dir, data=data, seed=seed, progress=progress,
            **train_kwargs,
        )
        runs.append({
            "activation": name, "seed": seed, "test_acc": history.test_acc, "best_epoch": history.best_epoch,
            "epochs": history.epochs, "wall_time": history.wall_time, "stop_reason": history.stop_reason,
        })
    summary = {
        name: summarize([run["test_acc"] for run in runs if run["activation"] == name])
        for name in activations
    }
    return {
        "protocol": {"seeds": list(seeds), "train_size": len(data.train), "val_size": len(data.val),
                     "test_size": len(data.test), **train_kwargs},
        "environment": {"device": str(device), "machine": platform.machine(), "processor": platform.processor(),
                        "cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                        "torch": torch.__version__},
        "wall_time": time.perf_counter() - start,
        "summary": summary,
        "runs": runs,
    }


def save_results(results: dict, path: Path) -> None:
    """Write the comparison's results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


def load_results(path: Path) -> dict:
    """Read a comparison's results written by ``save_results``."""
    return json.loads(Path(path).read_text())


def format_table(summary: dict) -> str:
    """The summary as a plain-text table, one row per activation."""
    lines = [f"{'activation':<12}{'runs':>5}{'mean':>9}{'std':>8}{'min':>9}{'max':>9}{'failed':>8}"]
    for name, row in summary.items():
        lines.append(
            f"{name:<12}{row['runs']:>5}{row['mean']:>9.2%}{row['std']:>8.2%}{row['min']:>9.2%}{row['max']:>9.2%}{row['failed']:>8}"
        )
    return "\n".join(lines)


def mean_differences(summary: dict, reference: str) -> list[dict]:
    """Each activation's mean test accuracy minus ``reference``'s, with the standard error of that difference.

    A difference smaller than about twice its standard error is within the noise between seeds.
    """
    ref = summary[reference]
    rows = []
    for name, row in summary.items():
        if name == reference:
            continue
        stderr = math.sqrt(row["std"] ** 2 / row["runs"] + ref["std"] ** 2 / ref["runs"])
        diff = row["mean"] - ref["mean"]
        rows.append({"activation": name, "difference": diff, "standard error": stderr,
                     "beyond seed noise": abs(diff) > 2 * stderr})
    return rows


def load_run_histories(folder: Path, activation: str) -> dict[str, History]:
    """The training history of every seed of ``activation`` in a comparison's output folder, by seed."""
    results = load_results(Path(folder) / "results.json")
    return {
        f"seed {run['seed']}": load_history(Path(folder) / "checkpoints", run_name(activation, run["seed"]))
        for run in results["runs"]
        if run["activation"] == activation
    }
