"""Threads sized to the CPUs a process may use: affinity, cgroup quotas (v1 and v2), CPU_LIMIT, busy neighbours."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actlab.data import TensorLoader
from actlab.notebook import mode_line
from actlab.support import threads


@pytest.fixture(autouse=True)
def keep_threads(monkeypatch):
    """Each test starts with no setting and leaves torch's thread count and the module's memory as it found them."""
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.delenv(threads.CPU_LIMIT_ENV, raising=False)
    before, last = torch.get_num_threads(), threads._last_set
    yield
    torch.set_num_threads(before)
    threads._last_set = last


def fake_proc(tmp_path: Path, membership: str, mount: str) -> Path:
    """A ``/proc/self`` with one cgroup membership line and one mountinfo line."""
    proc_self = tmp_path / "self"
    proc_self.mkdir()
    (proc_self / "cgroup").write_text(membership + "\n")
    (proc_self / "mountinfo").write_text(mount + "\n")
    return proc_self


def test_a_v2_quota_is_read_and_the_smallest_on_the_path_holds(tmp_path):
    root = tmp_path / "cg"
    (root / "pod" / "kernel").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "pod" / "cpu.max").write_text("250000 100000\n")
    (root / "pod" / "kernel" / "cpu.max").write_text("max 100000\n")
    proc_self = fake_proc(tmp_path, "0::/pod/kernel", f"30 25 0:26 / {root} rw - cgroup2 cgroup2 rw")
    assert threads.cgroup_cpu_limit(proc_self) == 2.5
    (root / "pod" / "kernel" / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(proc_self) == 2.5  # read once per process
    threads.cgroup_cpu_limit.cache_clear()
    assert threads.cgroup_cpu_limit(proc_self) == 1.5


def test_a_v1_quota_is_read_from_the_cpu_hierarchy(tmp_path):
    root = tmp_path / "cpu,cpuacct"
    (root / "docker" / "abc").mkdir(parents=True)
    (root / "docker" / "abc" / "cpu.cfs_quota_us").write_text("50000\n")
    (root / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    proc_self = fake_proc(tmp_path, "4:cpu,cpuacct:/docker/abc",
                          f"31 25 0:27 / {root} rw - cgroup cgroup rw,cpu,cpuacct")
    assert threads.cgroup_cpu_limit(proc_self) == 0.5


def test_no_quota_and_no_cgroup_mean_no_limit(tmp_path):
    root = tmp_path / "cpu"
    root.mkdir()
    (root / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(fake_proc(tmp_path, "1:cpu:/", f"31 25 0:27 / {root} rw - cgroup cgroup rw,cpu")) \
        is None
    assert threads.cgroup_cpu_limit(tmp_path / "missing") is None


@pytest.mark.parametrize(("quota", "limit", "expected", "reason"), [
    (None, None, 4, "the CPUs this process may use"),
    (1.5, None, 1, "the CPU quota of this container"),
    (0.25, None, 1, "the CPU quota of this container"),
    (None, "2.0", 2, "CPU_LIMIT=2.0"),
    (3.0, "1", 1, "CPU_LIMIT=1"),
    (None, "lots", 4, "the CPUs this process may use"),
])
def test_the_budget_is_the_smallest_limit_rounded_down(monkeypatch, quota, limit, expected, reason):
    monkeypatch.setattr(threads, "usable_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: quota)
    if limit is not None:
        monkeypatch.setenv(threads.CPU_LIMIT_ENV, limit)
    assert threads.cpu_budget() == threads.ThreadChoice(expected, reason)


def test_busy_neighbours_take_their_cores_away(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cpus: 1)
    assert threads.choose_threads().count == 3
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cpus: 8)
    choice = threads.choose_threads()
    assert choice.count == 1 and "less 8 kept busy by other processes" in choice.reason


def test_a_running_neighbour_is_seen_in_proc():
    cpus = threads.usable_cpus()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = max(threads.busy_elsewhere(cpus) or 0 for _ in range(5))
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 1


def test_a_setting_overrides_and_a_bad_one_is_refused(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "1")
    assert threads.size_threads() == threads.ThreadChoice(1, "ACTLAB_THREADS=1") and torch.get_num_threads() == 1
    monkeypatch.setenv(threads.THREADS_ENV, " FREE ")
    assert threads.thread_request() == "free"


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", "²", "50000", " 2 threads"])
def test_a_thread_setting_that_is_no_count_is_refused(monkeypatch, value):
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.THREADS_ENV, value)
    with pytest.raises(ValueError, match="ACTLAB_THREADS=.* must be a whole number of threads from 1 to"):
        threads.size_threads()
    assert torch.get_num_threads() == before


def test_a_count_the_user_sets_in_torch_is_kept_until_a_setting_asks_otherwise(monkeypatch):
    monkeypatch.setattr(threads, "cpu_budget", lambda: threads.ThreadChoice(2, "the CPUs this process may use"))
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cpus: 0)
    assert threads.size_threads().count == 2
    torch.set_num_threads(1)
    assert threads.size_threads() == threads.ThreadChoice(1, "set with torch.set_num_threads")
    monkeypatch.setenv(threads.THREADS_ENV, "free")
    assert threads.size_threads().count == 2 == torch.get_num_threads()


def test_every_pass_over_a_cpu_split_sizes_the_threads(monkeypatch):
    monkeypatch.setattr(threads, "choose_threads", lambda: threads.ThreadChoice(1, "test"))
    torch.set_num_threads(2)
    loader = TensorLoader(torch.zeros(4, 3), torch.zeros(4), batch_size=2)
    assert len(list(loader)) == 2
    assert torch.get_num_threads() == 1


def test_the_set_up_line_says_how_many_threads_and_why_without_setting_them(monkeypatch, small_data):
    monkeypatch.setattr(threads, "choose_threads", lambda: threads.ThreadChoice(1, "the CPU quota of this container"))
    torch.set_num_threads(2)
    assert mode_line(small_data).endswith("on cpu with 1 thread (the CPU quota of this container)")
    assert torch.get_num_threads() == 2


CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")


def quota_cgroup(tmp_name: str) -> tuple[Path, str]:
    """A fresh cgroup with a 1-CPU quota and the file that moves a process into it, or a skip saying why not."""
    if os.geteuid() != 0:
        pytest.skip("creating a cgroup needs root")
    if (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
        folder = CGROUP_V1_CPU / tmp_name
        folder.mkdir()
        (folder / "cpu.cfs_quota_us").write_text("100000")
        return folder, "cgroup.procs"
    if "cpu" in (CGROUP_V2 / "cgroup.subtree_control").read_text(errors="replace").split():
        folder = CGROUP_V2 / tmp_name
        folder.mkdir()
        (folder / "cpu.max").write_text("100000 100000")
        return folder, "cgroup.procs"
    pytest.skip("no cgroup CPU controller this process may write to")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroups are Linux's")
def test_inside_a_one_cpu_quota_the_set_up_line_says_one_thread():
    try:
        folder, procs = quota_cgroup(f"actlab-test-{os.getpid()}")
    except OSError as err:
        pytest.skip(f"cannot create a cgroup here: {err}")
    script = ("import sys, torch, actlab; from actlab.support import threads; "
              "sys.stdout.write(threads.describe(threads.choose_threads()) + ' ' + str(torch.get_num_threads()))")
    child = subprocess.Popen([sys.executable, "-c", f"import sys; sys.stdin.read(1); {script}"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={
                                 key: value for key, value in os.environ.items()
                                 if key not in (threads.THREADS_ENV, threads.CPU_LIMIT_ENV)})
    try:
        (folder / procs).write_text(str(child.pid))
        out, _ = child.communicate("x", timeout=120)
    finally:
        child.kill()
        child.wait()
        folder.rmdir()
    assert out == "1 thread (the CPU quota of this container) 1"
