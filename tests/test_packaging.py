"""The distribution: a wheel built from the checkout holds every subpackage and runs without the checkout."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel of this checkout, installed (not editable) into a folder of its own."""
    folder, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    shutil.copytree(ROOT / "actlab", source / "actlab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(folder), str(source)], check=True, timeout=300)
    (wheel,) = folder.glob("actlab-*.whl")
    site = folder / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    return wheel, site


def run_installed(site: Path, *args: str) -> subprocess.CompletedProcess:
    """Python on the installed wheel: ``-S`` skips the .pth files, so the checkout's editable install is not seen."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    return subprocess.run([sys.executable, "-S", *args], cwd=site, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_wheel_holds_every_module(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "actlab").rglob("*.py")}
    assert modules <= names, sorted(modules - names)


def test_the_installed_wheel_runs_every_command(installed):
    _, site = installed
    found = run_installed(site, "-c", "import actlab, actlab.lab.cli; print(actlab.__file__)")
    assert found.returncode == 0 and found.stdout.startswith(str(site)), found.stderr
    for command in ([], ["compare"], ["grid"], ["references"], ["data"]):
        done = run_installed(site, "-m", "actlab", *command, "--help")
        assert done.returncode == 0 and "usage:" in done.stdout, (command, done.stderr[-2000:])


def test_the_installed_wheel_imports_every_module_and_compares(installed, tmp_path, monkeypatch):
    _, site = installed
    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts) for path in (ROOT / "actlab").rglob("*.py")
                     if path.name != "__main__.py")
    imported = run_installed(site, "-c", f"import importlib; [importlib.import_module(m) for m in {modules!r}]")
    assert imported.returncode == 0, imported.stderr[-2000:]
    monkeypatch.setenv("ACTLAB_QUICK", "1")
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path / "cache"))
    done = run_installed(site, "-m", "actlab", "compare", "--activations", "relu", "--seeds", "1", "--epochs", "1",
                         "--hidden-sizes", "16", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "results.json").is_file()
