"""One training epoch under the conditions of a classroom server, with actlab's threads, one thread and torch's.

A classroom server, Binder or a JupyterHub pod shares its cores with other people's kernels, or lets
a process use fewer CPUs than it sees. This benchmark times one epoch of the source's network
(BaseNetwork(ReLU), 50,000 images, batches of 256, SGD) in a fresh process, under four conditions:
a quiet machine, 2 and 8 busy competitors (each a Python loop that never sleeps), and inside a cgroup
with a 1-CPU quota (created where this process may, as root; skipped with the reason otherwise);
each with three thread settings, timed in turns:

- **actlab**: no setting, the lab's default (``actlab.support.threads``: the CPUs the process may use, less
  those that other processes keep busy);
- **one**: ``ACTLAB_THREADS=1``;
- **torch**: torch's own default, one thread per visible core whatever else runs.

Printed: the median seconds of ``--rounds`` epochs per cell, and the ratios the lab's targets name.
Run it while nothing else runs on the machine.

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
from pathlib import Path

import torch

SPIN = "while True: pass"
POLICIES = ("actlab", "one", "torch")
CONDITIONS = ("quiet", "2 busy", "8 busy", "1-CPU quota")
TARGETS = (
    ("1-CPU quota", "one", 1.10, "actlab inside a 1-CPU quota, against ACTLAB_THREADS=1 there"),
    ("8 busy", "one", 1.20, "actlab with 8 busy competitors, against ACTLAB_THREADS=1 under the same load"),
    ("quiet", "fastest", 1.05, "actlab on the quiet machine, against the fastest setting"),
)
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")


def time_one_epoch() -> None:
    """In the child: get ready, wait for the parent's go on stdin, train one epoch, print its seconds."""
    from actlab import BaseNetwork, get_activation, load_fashion_mnist, set_seed
    from actlab.support import threads
    from actlab.training import FULL_PROTOCOL, make_optimizer, train_epoch

    if os.environ.get("BENCH_POLICY") == "torch":
        threads.size_threads = lambda: threads.ThreadChoice(os.cpu_count() or 1, "torch's default")
        torch.set_num_threads(os.cpu_count() or 1)
    data = load_fashion_mnist("cpu", quick=False)
    set_seed(0)
    net = BaseNetwork(get_activation("relu"))
    optimizer = make_optimizer(net, FULL_PROTOCOL)
    loader = data.train.loader(FULL_PROTOCOL.batch_size, shuffle=True, drop_last=True, seed=0)
    print("ready", flush=True)
    sys.stdin.read(1)
    start = time.perf_counter()
    train_epoch(net, loader, optimizer)
    print(f"{time.perf_counter() - start} {torch.get_num_threads()}", flush=True)


def child_env(policy: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("ACTLAB_THREADS", "CPU_LIMIT")}
    env["BENCH_POLICY"] = policy
    if policy == "one":
        env["ACTLAB_THREADS"] = "1"
    return env


def epoch(policy: str, cgroup: Path | None) -> tuple[float, int]:
    """Seconds and threads of one epoch in a fresh process (moved into ``cgroup`` before it starts to train)."""
    child = subprocess.Popen([sys.executable, __file__, "--child"], env=child_env(policy), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the timed process failed before its epoch")
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(child.pid))
        child.stdin.write("x")
        child.stdin.close()
        seconds, threads = child.stdout.readline().split()
        return float(seconds), int(threads)
    finally:
        child.kill()
        child.wait()


def one_cpu_cgroup() -> tuple[Path | None, str]:
    """A new cgroup limited to one CPU, or None and why none could be made."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return None, "creating a cgroup needs Linux and root"
    name = f"actlab-bench-{os.getpid()}"
    try:
        if (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
            (CGROUP_V1_CPU / name).mkdir()
            (CGROUP_V1_CPU / name / "cpu.cfs_quota_us").write_text("100000")
            return CGROUP_V1_CPU / name, ""
        if "cpu" in (CGROUP_V2 / "cgroup.subtree_control").read_text().split():
            (CGROUP_V2 / name).mkdir()
            (CGROUP_V2 / name / "cpu.max").write_text("100000 100000")
            return CGROUP_V2 / name, ""
    except OSError as err:
        return None, f"cannot create a cgroup here: {err}"
    return None, "no cgroup CPU controller to write to"


def measure(condition: str, rounds: int, cgroup: Path | None) -> dict[str, tuple[float, int]]:
    competitors = {"2 busy": 2, "8 busy": 8}.get(condition, 0)
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(competitors)]
    try:
        time.sleep(0.5)
        runs: dict[str, list[tuple[float, int]]] = {policy: [] for policy in POLICIES}
        for _ in range(rounds):
            for policy in POLICIES:
                runs[policy].append(epoch(policy, cgroup if condition == "1-CPU quota" else None))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return {policy: (statistics.median(s for s, _ in times), times[-1][1]) for policy, times in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="epochs per setting and condition (default: 3)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        time_one_epoch()
        return
    print(f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f} at the start; median of {args.rounds} epoch(s) per cell")
    cgroup, why_not = one_cpu_cgroup()
    results = {}
    try:
        for condition in CONDITIONS:
            if condition == "1-CPU quota" and cgroup is None:
                print(f"  {condition}: skipped ({why_not})")
                continue
            results[condition] = measure(condition, args.rounds, cgroup)
    finally:
        if cgroup is not None:
            cgroup.rmdir()
    print(f"\n{'condition':>12} " + " ".join(f"{policy + ' s (threads)':>18}" for policy in POLICIES))
    for condition, row in results.items():
        print(f"{condition:>12} " + " ".join(f"{row[p][0]:>13.2f} ({row[p][1]:>2})" for p in POLICIES))
    print()
    for condition, against, target, words in TARGETS:
        if condition not in results:
            continue
        row = results[condition]
        base = min(row["one"][0], row["torch"][0]) if against == "fastest" else row[against][0]
        ratio = row["actlab"][0] / base
        print(f"{words}: {ratio:.2f} x (target at most {target}): {'met' if ratio <= target else 'not met'}")


if __name__ == "__main__":
    main()
