from pathlib import Path

import pytest
import torch

from actlab import settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("on", True), ("yes", True), ("true", True), (" TRUE ", True),
     ("0", False), ("off", False), ("no", False), ("false", False), ("", False), ("Off", False)],
)
def test_quick_mode_switch(monkeypatch, value, expected):
    monkeypatch.setenv("ACTLAB_QUICK", value)
    assert settings.quick_mode() is expected


def test_quick_mode_unset_is_off(monkeypatch):
    monkeypatch.delenv("ACTLAB_QUICK", raising=False)
    assert settings.quick_mode() is False


def test_quick_mode_refuses_an_unclear_value(monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "maybe")
    with pytest.raises(ValueError, match="ACTLAB_QUICK='maybe' is neither on"):
        settings.quick_mode()


def test_quick_and_full_results_never_share_a_folder(monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "1")
    quick = settings.results_dir()
    monkeypatch.setenv("ACTLAB_QUICK", "0")
    assert quick == Path("results/quick") and settings.results_dir() == Path("results/full")


def test_quick_mode_never_writes_into_the_references(monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "1")
    scratch = settings.checkpoint_path()
    assert scratch != settings.SAVED_MODELS and settings.SAVED_MODELS not in scratch.parents
    monkeypatch.setenv("ACTLAB_QUICK", "0")
    assert settings.checkpoint_path() == settings.SAVED_MODELS


def test_quick_mode_reuses_one_folder_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTLAB_QUICK", "1")
    monkeypatch.delenv("ACTLAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert settings.checkpoint_path() == settings.checkpoint_path() == tmp_path / "cache" / "actlab" / "quick"
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path / "mine"))
    assert settings.checkpoint_path() == tmp_path / "mine"


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTLAB_DATA", str(tmp_path))
    assert settings.data_dir() == tmp_path
    monkeypatch.delenv("ACTLAB_DATA")
    assert settings.data_dir() == settings.REPO_ROOT / "data"


def test_set_seed_repeats_draws():
    settings.set_seed(3)
    a = torch.rand(4)
    settings.set_seed(3)
    assert torch.equal(a, torch.rand(4))


def test_device_is_available():
    device = settings.get_device()
    assert torch.zeros(1, device=device).device.type == device.type


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64 - 1, 1.5, True, "3"])
def test_seeds_outside_what_every_generator_takes_are_refused(seed):
    with pytest.raises(ValueError, match=r"a seed must be an integer from 0 to 2\*\*32 - 1"):
        settings.set_seed(seed)


def test_the_extreme_seeds_work():
    for seed in (0, settings.MAX_SEED):
        settings.set_seed(seed)
