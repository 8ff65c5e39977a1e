"""One training epoch on a quiet machine and on a shared one, with torch's default threads and with actlab's.

A classroom server or Binder shares its cores with other people's kernels. This benchmark starts 0, 1
and then 2 busy competing processes (each a Python loop that never sleeps), and times one epoch of
the source's network (BaseNetwork(ReLU), 50,000 images, batches of 256) under each, twice:

- **default**: torch's own choice, one thread per core, whatever else runs;
- **actlab**: ``ACTLAB_THREADS=free``, as a shared machine should set it: before each epoch ``fit``
  (here ``settings.use_free_cores``) takes one thread per core that other processes leave free.

The two are timed in turns within each condition, and each time is the median of ``--rounds``
epochs. Printed: the seconds, and each time as a ratio to the quiet epoch with torch's default, the
number that matters to a student waiting for a cell. Run it while nothing else runs on the machine.

Usage: python benchmarks/contention.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from actlab import BaseNetwork, get_activation, load_fashion_mnist, set_seed
from actlab.settings import THREADS_ENV, use_free_cores
from actlab.training import FULL_PROTOCOL, make_optimizer, train_epoch

TARGET_SHARED = 1.8
"""actlab's epoch with two busy competitors, as a multiple of the quiet epoch with torch's default."""
TARGET_QUIET = 1.05
"""actlab's quiet epoch, as a multiple of torch's default on the same quiet machine."""
SPIN = "while True: pass"


def epoch_seconds(data, threads_policy: str, default_threads: int) -> float:
    if threads_policy == "actlab":
        os.environ[THREADS_ENV] = "free"
        use_free_cores()
    else:
        os.environ.pop(THREADS_ENV, None)
        torch.set_num_threads(default_threads)
    set_seed(0)
    net = BaseNetwork(get_activation("relu"))
    optimizer = make_optimizer(net, FULL_PROTOCOL)
    loader = data.train.loader(FULL_PROTOCOL.batch_size, shuffle=True, drop_last=True, seed=0)
    start = time.perf_counter()
    train_epoch(net, loader, optimizer)
    return time.perf_counter() - start


def measure(data, competitors: int, rounds: int, default_threads: int) -> dict[str, float]:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(competitors)]
    try:
        time.sleep(0.5)
        times: dict[str, list[float]] = {"default": [], "actlab": []}
        threads = {}
        for _ in range(rounds):
            for policy in times:
                times[policy].append(epoch_seconds(data, policy, default_threads))
                threads[policy] = torch.get_num_threads()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    print(f"  {competitors} busy competitor(s): threads default {threads['default']}, actlab {threads['actlab']}")
    return {policy: statistics.median(values) for policy, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="epochs per policy and condition (default: 3)")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    data = load_fashion_mnist("cpu", quick=False)
    cores = len(os.sched_getaffinity(0))
    print(f"{platform.machine()}, {cores} cores, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f} "
          f"at the start; {args.rounds} epoch(s) per cell, median")
    epoch_seconds(data, "default", default_threads)  # warm up
    results = {competitors: measure(data, competitors, args.rounds, default_threads) for competitors in (0, 1, 2)}
    quiet = results[0]["default"]
    print(f"\n{'busy competitors':>17} {'default (s)':>12} {'actlab (s)':>11} {'default / quiet':>16} "
          f"{'actlab / quiet':>15}")
    for competitors, row in results.items():
        print(f"{competitors:>17} {row['default']:>12.2f} {row['actlab']:>11.2f} {row['default'] / quiet:>16.2f} "
              f"{row['actlab'] / quiet:>15.2f}")
    shared, calm = results[2]["actlab"] / quiet, results[0]["actlab"] / quiet
    print(f"\nactlab with 2 busy competitors: {shared:.2f} x the quiet epoch (target at most {TARGET_SHARED}): "
          f"{'met' if shared <= TARGET_SHARED else 'not met'}")
    print(f"actlab on the quiet machine: {calm:.2f} x torch's default (target at most {TARGET_QUIET}): "
          f"{'met' if calm <= TARGET_QUIET else 'not met'}")


if __name__ == "__main__":
    main()
