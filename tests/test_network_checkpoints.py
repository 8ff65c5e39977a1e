import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actlab.activations import get_activation
from actlab.checkpoints import CheckpointError, load_model, read_config, save_model
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
    into = load_model(tmp_path, "m", net=small_net("relu"), device=torch.device("cpu"))
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
    with pytest.raises(CheckpointError, match="(?s)do not fit the network: .*size mismatch"):
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
