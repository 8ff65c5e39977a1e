"""Shared fixtures: small fabricated IDX files and a small slice of the real data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from actlab.data import FILES, FashionMNISTData, load_fashion_mnist


def idx_bytes(array: np.ndarray) -> bytes:
    """An array of unsigned bytes in IDX format."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_files(n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict[str, bytes]:
    """The four FashionMNIST files, fabricated: random images and labels."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = FILES[split]
        files[images] = idx_bytes(rng.integers(0, 256, size=(n, 28, 28)))
        files[labels] = idx_bytes(rng.integers(0, 10, size=n))
    return files


@pytest.fixture
def fake_system_dir(tmp_path: Path) -> Path:
    """A folder laid out like the Debian package: the four files, gzipped."""
    folder = tmp_path / "system"
    folder.mkdir()
    for name, blob in fake_files().items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
    return folder


@pytest.fixture(scope="session")
def small_data() -> FashionMNISTData:
    """A few real images per split, on the CPU: enough to train for a couple of epochs in a second."""
    full = load_fashion_mnist("cpu", quick=True)
    return FashionMNISTData(full.train.head(1024), full.val.head(512), full.test.head(512))


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One thread in every test: the lab's default follows the load, and a test that compares two runs must not."""
    monkeypatch.setenv("ACTLAB_THREADS", "1")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
