import torch

from actlab import settings


def test_quick_mode_switch(monkeypatch):
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False), ("false", False)):
        monkeypatch.setenv("ACTLAB_QUICK", value)
        assert settings.quick_mode() is expected


def test_quick_mode_never_writes_into_the_references(monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "1")
    scratch = settings.checkpoint_path()
    assert scratch != settings.SAVED_MODELS and scratch.is_dir()
    assert settings.SAVED_MODELS not in scratch.parents
    monkeypatch.setenv("ACTLAB_QUICK", "0")
    assert settings.checkpoint_path() == settings.SAVED_MODELS


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
