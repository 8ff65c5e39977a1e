import json
import pickle
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from actlab import checkpoints
from actlab.activations import get_activation
from actlab.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    checkpoint_exists,
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
    with pytest.raises(CheckpointError, match="parameters"):
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


def kill_at(monkeypatch, calls: int):
    """End the process at the ``calls``-th rename of ``write_atomic`` (a kill between two writes)."""
    count = {"n": 0}
    real = checkpoints.os.replace

    def dying(*args):
        count["n"] += 1
        if count["n"] == calls:
            raise SystemExit("killed")
        return real(*args)

    monkeypatch.setattr(checkpoints.os, "replace", dying)


@pytest.mark.parametrize("calls", [1, 2])
def test_a_kill_while_saving_another_network_never_pairs_its_weights_with_the_old_config(tmp_path, monkeypatch,
                                                                                           calls):
    old, new = small_net("tanh"), small_net("relu")
    save_model(old, tmp_path, "m")
    kill_at(monkeypatch, calls)
    with pytest.raises(SystemExit):
        save_model(new, tmp_path, "m")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="Could not find the model file"):
        load_model(tmp_path, "m", device=torch.device("cpu"))
    save_model(new, tmp_path, "m")
    assert same_parameters(load_model(tmp_path, "m", device=torch.device("cpu")), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]


def test_a_kill_while_saving_the_same_network_keeps_the_old_weights(tmp_path, monkeypatch):
    old = small_net("tanh")
    save_model(old, tmp_path, "m")
    newer = small_net("tanh")
    with torch.no_grad():
        newer.layers[0].weight.add_(1.0)
    kill_at(monkeypatch, 1)
    with pytest.raises(SystemExit):
        save_model(newer, tmp_path, "m")
    monkeypatch.undo()
    assert same_parameters(load_model(tmp_path, "m", device=torch.device("cpu")), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config", "m.tar"]  # the temporary file is gone


def test_no_write_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("m.tar", "m.config", ".m.tar.part", ".m.tar.abcdefgh.part"):
        (folder / name).symlink_to(outside / name)
    save_model(small_net(), folder, "m")
    assert not outside.exists()
    assert not (folder / "m.tar").is_symlink() and checkpoint_exists(folder, "m")


def test_readers_ignore_temporary_files_and_write_nothing(tmp_path):
    save_model(small_net(), tmp_path, "m")
    (tmp_path / ".m.tar.x1y2z3.part").write_bytes(b"half")
    before = sorted(p.name for p in tmp_path.iterdir())
    tmp_path.chmod(0o555)
    try:
        assert checkpoint_exists(tmp_path, "m") and load_model(tmp_path, "m", device=torch.device("cpu"))
    finally:
        tmp_path.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_long_model_name_is_refused_before_any_file_is_written(tmp_path):
    with pytest.raises(ValueError, match="bytes long"):
        save_model(small_net(), tmp_path, "m" * 200)
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_that_unpacks_to_more_than_any_network_is_refused_before_loading(tmp_path, monkeypatch):
    save_model(small_net(), tmp_path, "m")
    with zipfile.ZipFile(tmp_path / "m.tar") as archive:
        unpacked = sum(entry.file_size for entry in archive.infolist())
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", unpacked - 1)
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("loaded before the size check"))
    with pytest.raises(CheckpointError, match=f"unpacks to {unpacked:,} bytes, more than any network"):
        load_model(tmp_path, "m")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_parameters_of_the_wrong_type_are_refused_not_cast(tmp_path, dtype):
    net = small_net()
    save_model(net, tmp_path, "m")
    torch.save({key: value.to(dtype) for key, value in net.state_dict().items()}, tmp_path / "m.tar")
    with pytest.raises(CheckpointError, match=f"tensors of the wrong type for a network .*{dtype}"):
        load_model(tmp_path, "m")
