"""Each hand-written activation against torch's own kernel, in the same training loop, side by side.

For every built-in activation, one epoch of ``train_epoch`` over the same 50 batches of 256 training
images trains ``BaseNetwork`` (default sizes, SGD) twice: once with actlab's activation, once with
the same network whose activation calls torch's kernel (``act.builtin()``). The two networks take
each batch in turns, so that a busy machine slows both alike; each one's epoch time is the sum of
its batches. The median over the rounds is compared: at most 1.2 per activation, aim 1.1.

Usage: python benchmarks/activation_speed.py [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from typing_extensions import override

from actlab import BaseNetwork, load_fashion_mnist, set_seed
from actlab.activations import BUILTIN_NAMES, ActivationFunction, act_fn_by_name, get_activation
from actlab.data import FashionMNISTData
from actlab.network import DEFAULT_HIDDEN_SIZES
from actlab.training import FULL_PROTOCOL, make_optimizer, train_epoch

NAMES = tuple(name for name in act_fn_by_name if name in BUILTIN_NAMES)
BATCHES = 50
BATCH_SIZE = 256
LIMIT, AIM = 1.2, 1.1

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


class TorchKernel(ActivationFunction):
    """The same activation, computed by torch's own kernel."""

    def __init__(self, act: ActivationFunction) -> None:
        super().__init__()
        self.name = f"torch {act.name}"
        self.kernel: Callable[[torch.Tensor], torch.Tensor] = act.builtin()

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernel(x)


def fresh_training(act: ActivationFunction) -> tuple[BaseNetwork, torch.optim.Optimizer]:
    """A seeded BaseNetwork with ``act`` and its SGD optimizer, as every notebook trains it."""
    set_seed(0)
    net = BaseNetwork(act)
    return net, make_optimizer(net, FULL_PROTOCOL)


def epoch_seconds(acts: Sequence[ActivationFunction], batches: Batches) -> list[float]:
    """Seconds of one ``train_epoch`` over ``batches`` for each activation, trained in turns batch by batch.

    Each batch goes through ``train_epoch`` for every network in turn, first one way round, then the
    other, and each network's times are summed: a busy machine slows them all alike.
    """
    runs = [fresh_training(act) for act in acts]
    seconds = [0.0] * len(runs)
    for index, batch in enumerate(batches):
        order = range(len(runs)) if index % 2 == 0 else reversed(range(len(runs)))
        for run in order:
            net, optimizer = runs[run]
            start = time.perf_counter()
            train_epoch(net, [batch], optimizer)
            seconds[run] += time.perf_counter() - start
    return seconds


def measure(names: Sequence[str], batches: Batches, rounds: int) -> dict[str, tuple[float, float]]:
    """Median epoch seconds (hand-written, torch's kernel) per activation over ``rounds`` rounds."""
    pairs = {name: (get_activation(name), TorchKernel(get_activation(name))) for name in names}
    for pair in pairs.values():
        epoch_seconds(pair, batches[:5])
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, pair in pairs.items():
            times[name].append(epoch_seconds(pair, batches))
    return {name: tuple(statistics.median(column) for column in zip(*rows)) for name, rows in times.items()}


def verdict(ratio: float) -> str:
    """The ratio, as printed, against the target."""
    if ratio <= AIM:
        return "aim met"
    if ratio <= LIMIT:
        return f"within {LIMIT}, above the aim of {AIM}"
    return f"NOT MET: above {LIMIT}"


def report(batches: Batches, rounds: int) -> dict[str, float]:
    """Print the table of epoch times and ratios; return the ratio per activation, as printed."""
    print(f"hand-written activation against torch's kernel: {len(batches)} batches of {BATCH_SIZE}, "
          f"BaseNetwork 784-{'-'.join(map(str, DEFAULT_HIDDEN_SIZES))}-10, SGD, median of {rounds} rounds")
    print(f"target: at most {LIMIT} per activation, aim {AIM}\n")
    load_at_start = load()
    print(f"{'activation':12}{'hand-written s':>16}{'built-in s':>12}{'ratio':>8}   verdict")
    ratios = {}
    for name, (hand, kernel) in measure(NAMES, batches, rounds).items():
        ratios[name] = round(hand / kernel, 2)
        print(f"{name:12}{hand:16.3f}{kernel:12.3f}{ratios[name]:8.2f}   {verdict(ratios[name])}")
    print(f"load average {load_at_start:.1f} at the start, {load():.1f} at the end, on {os.cpu_count()} CPUs: "
          "other programs on the CPUs slow the hand-written side more, as it runs more, smaller operations")
    missed = [name for name, ratio in ratios.items() if ratio > LIMIT]
    if missed:
        print(f"\nthe target of {LIMIT} is NOT met on this machine for: {', '.join(missed)}")
    else:
        print(f"\nevery activation within {LIMIT} of torch's kernel; worst ratio {max(ratios.values()):.2f}")
    return ratios


def machine() -> str:
    """Processor model, CPU count, torch's thread count and torch's version, in one line."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.is_file() else []
    processor = models[0] if models else platform.processor() or platform.machine()
    return f"{processor}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, torch {torch.__version__}"


def load() -> float:
    """The machine's load average over the last minute (nan where the system does not tell)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def first_batches(data: FashionMNISTData, count: int = BATCHES) -> Batches:
    """The first ``count`` batches of the training split, in order: the same for every run."""
    return list(data.train.head(count * BATCH_SIZE).loader(BATCH_SIZE, drop_last=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    wall = time.perf_counter()
    report(first_batches(load_fashion_mnist("cpu", quick=False)), args.rounds)
    print(f"\nwall time: {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
