import json
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actlab import checkpoints
from actlab.activations import get_activation
from actlab.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    checkpoint_exists,
    commit,
    load_model,
    read_config,
    save_model,
)
from actlab.network import BaseNetwork

SOURCE_CONFIG = {"act_fn": {"name": "Tanh"}, "input_size": 784, "num_classes": 10, "hidden_sizes": [512, 256, 256, 128]}


def small_net(name="leakyrelu", **params):
    torch.manual_seed(0)
    return BaseNetwork(get_activation(name, **params), input_size=12, num_classes=3, hidden_sizes=[8, 6])


def same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Marker:
    """Unpickling this creates a file: a stand-in for a pickle that runs code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_source_config_and_shapes():
    net = BaseNetwork(get_activation("tanh"))
    assert net.config == SOURCE_CONFIG
    assert json.loads(json.dumps(net.config)) == SOURCE_CONFIG
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    sizes = [(m.in_features, m.out_features) for m in linears]
    assert sizes == [(784, 512), (512, 256), (256, 256), (256, 128), (128, 10)]
    assert net(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize(
    "kwargs",
    [{"hidden_sizes": []}, {"hidden_sizes": [0]}, {"hidden_sizes": [-4]}, {"hidden_sizes": [2.5]},
     {"hidden_sizes": [True]}, {"hidden_sizes": "512"}, {"input_size": 0}, {"num_classes": 1.0}],
)
def test_invalid_sizes(kwargs):
    with pytest.raises(ValueError, match="must be"):
        BaseNetwork(get_activation("relu"), **kwargs)


def test_activation_must_be_an_instance():
    with pytest.raises(TypeError, match="ActivationFunction instance"):
        BaseNetwork(torch.relu)


def test_round_trip_with_and_without_net(tmp_path):
    net = small_net(alpha=0.3)
    save_model(net, tmp_path, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]
    rebuilt = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert rebuilt.config == net.config and rebuilt.layers[1].alpha == 0.3
    assert same_parameters(rebuilt, net)
    into = load_model(tmp_path, "m", net=small_net(alpha=0.3), device=torch.device("cpu"))
    assert same_parameters(into, net)
    x = torch.randn(4, 12)
    assert torch.equal(rebuilt(x), net(x))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=rf"config file m.config in {tmp_path}"):
        load_model(tmp_path, "m")
    save_model(small_net(), tmp_path, "m")
    (tmp_path / "m.tar").unlink()
    with pytest.raises(CheckpointError, match=rf"model file m.tar in {tmp_path}"):
        load_model(tmp_path, "m")


def test_unknown_activation_in_config(tmp_path):
    save_model(small_net(), tmp_path, "m")
    config = json.loads((tmp_path / "m.config").read_text())
    config["act_fn"] = {"name": "Sparkle"}
    (tmp_path / "m.config").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cannot be built: Unknown activation 'sparkle'. Registered"):
        load_model(tmp_path, "m")


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"act_fn": {"name": "ReLU"}}'])
def test_foreign_config(tmp_path, text):
    save_model(small_net(), tmp_path, "m")
    (tmp_path / "m.config").write_text(text)
    with pytest.raises(CheckpointError, match="m.config"):
        read_config(tmp_path, "m")


def test_state_dict_that_does_not_fit(tmp_path):
    save_model(small_net(), tmp_path, "m")
    config = json.loads((tmp_path / "m.config").read_text())
    config["hidden_sizes"] = [8, 7]
    (tmp_path / "m.config").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"do not fit the network of its config:\n  "
                       r"layers.2.weight: \(6, 8\) in the file vs \(7, 8\) in the config"):
        load_model(tmp_path, "m")


def test_truncated_checkpoint(tmp_path):
    save_model(small_net(), tmp_path, "m")
    blob = (tmp_path / "m.tar").read_bytes()
    (tmp_path / "m.tar").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch checkpoint"):
        load_model(tmp_path, "m")


def test_not_a_checkpoint(tmp_path):
    save_model(small_net(), tmp_path, "m")
    (tmp_path / "m.tar").write_text("hello, I am a text file")
    with pytest.raises(CheckpointError, match="m.tar"):
        load_model(tmp_path, "m")
    torch.save([1, 2, 3], tmp_path / "m.tar")
    with pytest.raises(CheckpointError, match="does not hold a state dict of tensors"):
        load_model(tmp_path, "m")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_that_runs_code_is_refused_not_run(tmp_path, writer):
    save_model(small_net(), tmp_path, "m")
    marker = tmp_path / "code-ran"
    payload = {"layers.0.weight": Marker(marker)}
    if writer == "torch":
        torch.save(payload, tmp_path / "m.tar")
    else:
        (tmp_path / "m.tar").write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="Refused to load .*objects other than tensors"):
        load_model(tmp_path, "m")
    assert not marker.exists()


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path):
    good = small_net()
    save_model(good, tmp_path, "m")
    script = (
        "import os, torch, actlab.checkpoints as c\n"
        "from actlab.activations import get_activation\n"
        "from actlab.network import BaseNetwork\n"
        "def die(obj, f, *a, **k):\n"
        "    f.write(b'half a checkpoint')\n"
        "    os._exit(1)\n"
        "torch.save = die\n"
        "net = BaseNetwork(get_activation('relu'), input_size=12, num_classes=3, hidden_sizes=[8, 6])\n"
        f"c.save_model(net, {str(tmp_path)!r}, 'm')\n"
    )
    assert subprocess.run([sys.executable, "-c", script]).returncode == 1
    assert same_parameters(load_model(tmp_path, "m", device=torch.device("cpu")), good)


def test_loading_into_another_network_is_refused(tmp_path):
    save_model(small_net("tanh"), tmp_path, "m")
    with pytest.raises(CheckpointMismatchError, match="act_fn.name: 'Tanh' stored vs 'Sigmoid' requested"):
        load_model(tmp_path, "m", net=small_net("sigmoid"))
    with pytest.raises(CheckpointMismatchError, match=r"act_fn.alpha: 0.1 stored vs 0.3 requested"):
        save_model(small_net("leakyrelu"), tmp_path, "n")
        load_model(tmp_path, "n", net=small_net("leakyrelu", alpha=0.3))
    wider = BaseNetwork(get_activation("tanh"), input_size=12, num_classes=3, hidden_sizes=[8, 7])
    with pytest.raises(CheckpointMismatchError, match=r"hidden_sizes: \[8, 6\] stored vs \[8, 7\] requested"):
        load_model(tmp_path, "m", net=wider)


@pytest.mark.parametrize("hidden", [[30000, 30000], [10**9]])
def test_a_crafted_config_is_refused_before_allocating(tmp_path, hidden):
    save_model(small_net(), tmp_path, "m")
    config = json.loads((tmp_path / "m.config").read_text())
    (tmp_path / "m.config").write_text(json.dumps({**config, "hidden_sizes": hidden}))
    start = time.perf_counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="do not fit the network of its config"):
        load_model(tmp_path, "m", device=torch.device("cpu"))
    assert time.perf_counter() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 50_000  # KiB


@pytest.mark.parametrize("config", [{"hidden_sizes": [0]}, {"hidden_sizes": []}, {"input_size": "784"},
                                    {"num_classes": True}])
def test_a_config_with_bad_sizes_is_named(tmp_path, config):
    save_model(small_net(), tmp_path, "m")
    stored = json.loads((tmp_path / "m.config").read_text())
    (tmp_path / "m.config").write_text(json.dumps({**stored, **config}))
    with pytest.raises(CheckpointError, match="m.config is not a BaseNetwork config"):
        load_model(tmp_path, "m")


@pytest.mark.parametrize("name", ["", "..", "../m", "/tmp/m", "a/b", "a\\b", ".hidden", "c:m", 7])
def test_model_names_that_leave_the_folder_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="model name"):
        save_model(small_net(), tmp_path, name)
    with pytest.raises(ValueError, match="model name"):
        load_model(tmp_path, name)
    assert not list(tmp_path.parent.glob("m.*")) and not list(tmp_path.iterdir())


def test_save_model_drops_the_history_and_record_of_another_run(tmp_path):
    commit(tmp_path, "m", {"history": b"{}", "record": b"{}"})
    save_model(small_net(), tmp_path, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]


def kill_after(monkeypatch, calls: int, target: str):
    """Make the ``calls``-th call of ``os.replace`` or of the file writer in checkpoints end the process."""
    count = {"n": 0}
    real = checkpoints.os.replace if target == "replace" else checkpoints._write_synced

    def dying(*args):
        count["n"] += 1
        if count["n"] == calls:
            raise SystemExit("killed")
        return real(*args)

    if target == "replace":
        monkeypatch.setattr(checkpoints.os, "replace", dying)
    else:
        monkeypatch.setattr(checkpoints, "_write_synced", dying)


@pytest.mark.parametrize(("target", "calls"), [("write", 1), ("write", 2), ("write", 3), ("replace", 1)])
def test_a_kill_before_the_manifest_keeps_the_old_checkpoint(tmp_path, monkeypatch, target, calls):
    old, new = small_net("tanh"), small_net("relu")
    save_model(old, tmp_path, "m")
    kill_after(monkeypatch, calls, target)
    with pytest.raises(SystemExit):
        save_model(new, tmp_path, "m")
    monkeypatch.undo()
    loaded = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert loaded.config == old.config and same_parameters(loaded, old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]


@pytest.mark.parametrize("calls", [2, 3])
def test_a_kill_after_the_manifest_completes_the_new_checkpoint(tmp_path, monkeypatch, calls):
    old, new = small_net("tanh"), small_net("relu")
    save_model(old, tmp_path, "m")
    kill_after(monkeypatch, calls, "replace")
    with pytest.raises(SystemExit):
        save_model(new, tmp_path, "m")
    monkeypatch.undo()
    assert (tmp_path / "m.pending").exists()
    loaded = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert loaded.config == new.config and same_parameters(loaded, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]


def test_stale_part_files_are_cleaned_up(tmp_path):
    save_model(small_net(), tmp_path, "m")
    for name in (".m.tar.part", ".m.config.part", ".m.run.json.part", ".m.pending.part"):
        (tmp_path / name).write_bytes(b"half")
    assert checkpoint_exists(tmp_path, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]
