"""How many threads torch computes with: the CPUs this process may use, fewer while others keep them busy.

torch starts one thread per core it sees. A container, a Binder session or a JupyterHub pod may use
fewer CPUs than it sees (an affinity mask, a cgroup CPU quota, JupyterHub's ``CPU_LIMIT``), and on a
busy machine threads that wait for each other at every step slow an epoch down several times over.
``size_threads`` sets torch's thread count to the smallest of these, less the cores that other
processes keep busy at that moment; ``actlab`` calls it on import and before every pass over a
data split. ``ACTLAB_THREADS`` (a number, or ``free`` for the default) overrides it, and so does a
count set with ``torch.set_num_threads``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

THREADS_ENV = "ACTLAB_THREADS"
CPU_LIMIT_ENV = "CPU_LIMIT"
PROC = Path("/proc")
SCANS = 3
"""How many looks at ``/proc`` a choice takes; the fewest busy threads seen counts, so a moment's burst does not."""


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and, in words, what decided it."""

    count: int
    reason: str


_last_set: int | None = None
"""The count ``size_threads`` last gave torch; any other count now was set by the user, who keeps it."""
_tallies: list[set[int]] = []


def thread_request() -> int | str | None:
    """What ``ACTLAB_THREADS`` asks for: a number of threads, ``"free"``, or None when it is unset.

    A number must be a whole number from 1 to the machine's CPU count; anything else is refused
    with a ``ValueError`` that names the setting, so a typo never silently falls back to the default.
    """
    raw = os.environ.get(THREADS_ENV, "")
    value = raw.strip().lower()
    if not value:
        return None
    if value == "free":
        return value
    cpus = os.cpu_count() or 1
    if value.isascii() and value.isdecimal() and 1 <= int(value) <= cpus:
        return int(value)
    raise ValueError(f"{THREADS_ENV}={raw!r} must be a whole number of threads from 1 to {cpus} (this machine's "
                     "CPUs), or 'free' (the default: the CPUs this process may use that others leave free)")


def usable_cpus() -> set[int]:
    """The CPUs the scheduler lets this process run on (its affinity mask; every CPU where none exists)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cgroup_mounts(mountinfo: list[str], version2: bool) -> list[tuple[str, Path]]:
    """Where the cgroup hierarchies holding the CPU controller are mounted: (root inside the hierarchy, mount point)."""
    mounts = []
    for line in mountinfo:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        kind, options = fields[dash + 1], fields[dash + 3].split(",") if len(fields) > dash + 3 else []
        if (version2 and kind == "cgroup2") or (not version2 and kind == "cgroup" and "cpu" in options):
            mounts.append((fields[3], Path(fields[4])))
    return mounts


def _quota(folder: Path, version2: bool) -> float | None:
    """The CPUs one cgroup folder's quota allows, or None where it sets none (or cannot be read)."""
    try:
        if version2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or float(period) <= 0:
            return None
        return float(quota) / float(period)
    except (OSError, ValueError):
        return None


@functools.cache
def cgroup_cpu_limit(proc_self: Path = PROC / "self") -> float | None:
    """The CPUs that cgroup quotas let this process use (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if unlimited.

    Every cgroup from the process's own up to its hierarchy's root can set a quota; the smallest holds.
    Read once per process: a container's quota does not change while it runs.
    """
    try:
        memberships = (proc_self / "cgroup").read_text().splitlines()
        mountinfo = (proc_self / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        version2 = hierarchy == "0" and not controllers
        if not version2 and "cpu" not in controllers.split(","):
            continue
        for root, mount_point in _cgroup_mounts(mountinfo, version2):
            if path != root and not path.startswith(root.rstrip("/") + "/"):
                continue
            folder = mount_point / path[len(root):].lstrip("/")
            while True:
                limits.append(_quota(folder, version2))
                if folder == mount_point:
                    break
                folder = folder.parent
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def cpu_budget() -> ThreadChoice:
    """The CPUs this process may use: the smallest of its affinity mask, its cgroup quota and ``CPU_LIMIT``.

    A quota of 1.5 CPUs gives 1 (a second thread would only wait); every limit gives at least 1.
    """
    choice = ThreadChoice(len(usable_cpus()), "the CPUs this process may use")
    quota = cgroup_cpu_limit()
    if quota is not None and max(1, math.floor(quota)) < choice.count:
        choice = ThreadChoice(max(1, math.floor(quota)), "the CPU quota of this container")
    try:
        limit = float(os.environ.get(CPU_LIMIT_ENV, "inf"))
    except ValueError:
        limit = math.inf
    if math.isfinite(limit) and max(1, math.floor(limit)) < choice.count:
        choice = ThreadChoice(max(1, math.floor(limit)), f"{CPU_LIMIT_ENV}={os.environ[CPU_LIMIT_ENV]}")
    return choice


def busy_elsewhere(cpus: set[int], proc: Path = PROC) -> int | None:
    """How many threads of other processes are running on ``cpus`` now; None where ``/proc`` cannot tell."""
    own = str(os.getpid())
    try:
        count = 0
        for task in proc.glob("[0-9]*/task/[0-9]*/stat"):
            if task.parts[-4] == own:
                continue
            try:
                stat = task.read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            count += len(fields) > 36 and fields[0] == b"R" and int(fields[36]) in cpus
        return count
    except OSError:
        return None


def choose_threads() -> ThreadChoice:
    """The thread count a pass over the data should use now, and why (see the module's docstring)."""
    request = thread_request()
    if isinstance(request, int):
        return ThreadChoice(request, f"{THREADS_ENV}={request}")
    if request is None and _last_set is not None and torch.get_num_threads() != _last_set:
        return ThreadChoice(torch.get_num_threads(), "set with torch.set_num_threads")
    budget = cpu_budget()
    busy = min(busy_elsewhere(usable_cpus()) or 0 for _ in range(SCANS)) if budget.count > 1 else 0
    if busy:
        return ThreadChoice(max(1, budget.count - busy),
                            f"{budget.reason}: {budget.count}, less {busy} kept busy by other processes")
    return budget


def size_threads() -> ThreadChoice:
    """Give torch the count ``choose_threads`` picks, and return that choice."""
    global _last_set
    choice = choose_threads()
    if choice.count != torch.get_num_threads():
        torch.set_num_threads(choice.count)
    if not choice.reason.startswith("set with"):
        _last_set = choice.count
    for counts in _tallies:
        counts.add(choice.count)
    return choice


@contextlib.contextmanager
def tally() -> Iterator[set[int]]:
    """Within the block, collect the thread count of every pass over the data (a run record keeps them)."""
    counts: set[int] = set()
    _tallies.append(counts)
    try:
        yield counts
    finally:
        _tallies.remove(counts)


def describe(choice: ThreadChoice) -> str:
    """``'2 threads (the CPUs this process may use)'``: a choice as the set-up line prints it."""
    return f"{choice.count} thread{'s' * (choice.count != 1)} ({choice.reason})"
