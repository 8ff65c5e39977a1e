"""BaseNetwork's ``norm`` and ``residual`` options, from the network to the command line."""

import itertools
import json
import math
import shlex
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from actlab import settings
from actlab.activations import get_activation
from actlab.checkpoints import CheckpointError, load_model, save_model
from actlab.lab.cli import build_parser, main, settings_of
from actlab.lab.compare import (
    ComparisonSettings,
    Experiment,
    compare_activations,
    experiment_rows,
    load_experiments,
    load_results,
)
from actlab.lab.grid import GridSpec, GridSpecError, _label, experiments
from actlab.lab.runs import DataSpec
from actlab.network import (
    NORMS,
    BaseNetwork,
    Residual,
    build_network,
    check_config,
    hidden_layer,
    initialize,
    network_config,
    parameter_shapes,
)
from actlab.training import default_protocol

SOURCE_CONFIG = {"act_fn": {"name": "Tanh"}, "input_size": 784, "num_classes": 10, "hidden_sizes": [512, 256, 256, 128]}
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "1")


def small_net(norm="none", residual=False, name="tanh", hidden_sizes=(8, 8, 6), seed=0):
    torch.manual_seed(seed)
    return BaseNetwork(get_activation(name), input_size=12, num_classes=3, hidden_sizes=list(hidden_sizes),
                       norm=norm, residual=residual)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- the source network is untouched -----------------------------------------------------------------------


def test_source_network_config_and_keys_are_unchanged_with_the_options_off():
    for net in (BaseNetwork(get_activation("tanh")), BaseNetwork(get_activation("tanh"), norm="none", residual=False)):
        assert net.config == SOURCE_CONFIG
        assert set(net.config) == {"act_fn", "input_size", "num_classes", "hidden_sizes"}
        assert list(net.state_dict()) == [f"layers.{i}.{p}" for i in range(0, 9, 2) for p in ("weight", "bias")]
        assert check_config(json.loads(json.dumps(net.config))) == SOURCE_CONFIG
    assert network_config(get_activation("tanh")) == SOURCE_CONFIG
    assert network_config(get_activation("tanh"), norm="none", residual=False) == SOURCE_CONFIG


def test_the_same_seed_draws_the_same_weights_as_before():
    settings.set_seed(7)
    default = BaseNetwork(get_activation("relu"))
    settings.set_seed(7)
    explicit = BaseNetwork(get_activation("relu"), norm="none", residual=False)
    settings.set_seed(7)  # the source's network, written out: its linear layers drawn in order
    sizes = [784, 512, 256, 256, 128, 10]
    source = [nn.Linear(fan_in, fan_out) for fan_in, fan_out in itertools.pairwise(sizes)]
    assert same_state(default, explicit)
    linears = [m for m in default.layers if isinstance(m, nn.Linear)]
    assert len(linears) == len(source)
    for mine, theirs in zip(linears, source):
        assert torch.equal(mine.weight, theirs.weight) and torch.equal(mine.bias, theirs.bias)
    settings.set_seed(8)
    assert not torch.equal(BaseNetwork(get_activation("relu")).layers[0].weight, default.layers[0].weight)


@pytest.mark.parametrize(("norm", "residual"), [("batch", False), ("layer", False), ("none", True), ("batch", True)])
def test_norm_and_residual_draw_the_same_linear_weights_as_the_plain_network(norm, residual):
    plain, other = small_net(), small_net(norm, residual)
    mine = [m for m in other.modules() if isinstance(m, nn.Linear)]
    theirs = [m for m in plain.modules() if isinstance(m, nn.Linear)]
    assert all(torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) for a, b in zip(mine, theirs))


# --- where the norms and the residual blocks sit -----------------------------------------------------------


@pytest.mark.parametrize(("norm", "kind"), [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_sits_between_each_hidden_linear_and_its_activation(norm, kind):
    net = small_net(norm, hidden_sizes=(8, 6))
    types = [type(m) for m in net.layers]
    act = type(get_activation("tanh"))
    assert types == [nn.Linear, kind, act, nn.Linear, kind, act, nn.Linear]
    widths = [m.num_features if norm == "batch" else m.normalized_shape[0] for m in net.layers if isinstance(m, kind)]
    assert widths == [8, 6]
    assert net.config == {"act_fn": {"name": "Tanh"}, "input_size": 12, "num_classes": 3, "hidden_sizes": [8, 6],
                          "norm": norm}
    assert NORMS[norm] is kind


def test_layer_norm_network_computes_linear_then_norm_then_activation():
    net = small_net("layer", hidden_sizes=(8, 6)).eval()
    with torch.no_grad():
        for m in net.layers:  # give the norms weights that are not 1 and 0, so that they count
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    x = torch.randn(5, 12)
    h = x
    with torch.no_grad():
        for linear, norm in ((net.layers[0], net.layers[1]), (net.layers[3], net.layers[4])):
            h = torch.tanh(F.layer_norm(F.linear(h, linear.weight, linear.bias), norm.normalized_shape,
                                        norm.weight, norm.bias, norm.eps))
        expected = F.linear(h, net.layers[6].weight, net.layers[6].bias)
        assert torch.allclose(net(x), expected, atol=1e-6)


def test_batch_norm_normalizes_each_hidden_unit_over_the_batch_in_training():
    net = small_net("batch", name="relu", hidden_sizes=(8,)).train()
    seen = []
    net.layers[1].register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    net(torch.randn(64, 12) * 5 + 3)
    assert torch.allclose(seen[0].mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(seen[0].var(0, unbiased=False), torch.ones(8), atol=1e-3)


def test_residual_block_adds_its_input():
    torch.manual_seed(1)
    block = nn.Linear(4, 4)
    x = torch.randn(3, 4)
    assert torch.allclose(Residual(block)(x), x + block(x))


def test_residual_network_adds_the_input_only_where_the_sizes_match():
    net = small_net(residual=True, hidden_sizes=(8, 8, 6)).eval()
    layers = list(net.layers)
    assert [type(m).__name__ for m in layers] == ["Linear", "Tanh", "Residual", "Linear", "Tanh", "Linear"]
    block = layers[2].block
    assert [type(m).__name__ for m in block] == ["Linear", "Tanh"] and block[0].in_features == 8
    assert net.config["residual"] is True and "norm" not in net.config
    assert "layers.2.block.0.weight" in net.state_dict()
    x = torch.randn(5, 12)
    with torch.no_grad():
        h1 = torch.tanh(F.linear(x, layers[0].weight, layers[0].bias))
        h2 = h1 + torch.tanh(F.linear(h1, block[0].weight, block[0].bias))
        h3 = torch.tanh(F.linear(h2, layers[3].weight, layers[3].bias))
        expected = F.linear(h3, layers[5].weight, layers[5].bias)
        assert torch.allclose(net(x), expected, atol=1e-6)
        without = torch.tanh(F.linear(h1, block[0].weight, block[0].bias))  # the same block, no skip
        assert not torch.allclose(h2, without)


def test_residual_block_holds_the_norm():
    net = small_net("batch", True, hidden_sizes=(8, 8))
    assert [type(m) for m in net.layers] == [nn.Linear, nn.BatchNorm1d, type(get_activation("tanh")), Residual,
                                             nn.BatchNorm1d, nn.Linear]
    block = net.layers[3].block
    assert [type(m) for m in block] == [nn.Linear, nn.BatchNorm1d, type(get_activation("tanh"))]
    assert "layers.3.block.1.running_mean" in net.state_dict()
    assert [type(m) for m in hidden_layer(12, 8, get_activation("relu"), "layer", True)] == \
        [nn.Linear, nn.LayerNorm, type(get_activation("relu"))]  # 12 -> 8: sizes differ, plain


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_a_deep_normalized_residual_network_starts_at_a_sane_loss(norm):
    torch.manual_seed(0)
    net = BaseNetwork(get_activation("relu"), hidden_sizes=[64] * 32, norm=norm, residual=True).train()
    x, labels = torch.randn(128, 784), torch.randint(0, 10, (128,))
    with torch.no_grad():
        assert F.cross_entropy(net(x), labels).item() < 3.0
    assert isinstance(net.layers[-2], nn.BatchNorm1d if norm == "batch" else nn.LayerNorm)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in small_net("none", True).layers)


def test_residual_is_refused_where_no_block_could_be_residual():
    with pytest.raises(ValueError, match=r"needs two consecutive hidden layers of the same size, and \[8, 6, 4\]"):
        small_net(residual=True, hidden_sizes=(8, 6, 4))


def test_batch_norm_refuses_batches_of_one(small_data, tmp_path):
    with pytest.raises(ValueError, match="BatchNorm normalizes over the batch: it needs a batch_size of at least 2"):
        compare_activations(["relu"], [42], tmp_path, small_data, progress=False,
                            protocol=default_protocol(batch_size=1, max_epochs=1), hidden_sizes=[8], norm="batch")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"norm": "group"}, "norm must be one of none, batch, layer, not 'group'"),
    ({"norm": None}, "norm must be one of none, batch, layer, not None"),
    ({"residual": "yes"}, "residual must be true or false, not 'yes'"),
    ({"residual": 1}, "residual must be true or false, not 1"),
])
def test_bad_options_are_refused_when_building(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BaseNetwork(get_activation("relu"), input_size=12, num_classes=3, hidden_sizes=[8], **kwargs)


# --- checkpoints -------------------------------------------------------------------------------------------


def test_batch_norm_residual_network_round_trips_through_a_checkpoint(tmp_path):
    net = small_net("batch", True, name="relu").train()
    for _ in range(3):
        net(torch.randn(32, 12) * 2 + 1)  # moves the running statistics away from 0 and 1
    running = net.layers[3].block[1].running_mean.clone()
    assert not torch.equal(running, torch.zeros_like(running))
    save_model(net, tmp_path, "m")
    stored = json.loads((tmp_path / "m.config").read_text())
    assert stored == {"act_fn": {"name": "ReLU"}, "input_size": 12, "num_classes": 3, "hidden_sizes": [8, 8, 6],
                      "norm": "batch", "residual": True}
    rebuilt = load_model(tmp_path, "m", device=CPU)
    assert rebuilt.config == net.config and same_state(rebuilt, net)
    assert torch.equal(rebuilt.layers[3].block[1].running_mean, running)
    assert int(rebuilt.layers[1].num_batches_tracked) == 3
    x = torch.randn(4, 12)
    assert torch.equal(rebuilt.eval()(x), net.eval()(x))
    into = load_model(tmp_path, "m", net=small_net("batch", True, name="relu", seed=5), device=CPU)
    assert same_state(into, net)


def test_a_checkpoint_of_a_normalized_network_does_not_load_under_a_plain_config(tmp_path):
    save_model(small_net("batch"), tmp_path, "m")
    config = json.loads((tmp_path / "m.config").read_text())
    del config["norm"]
    (tmp_path / "m.config").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"do not fit the network of its config:\n  layers.1.weight"):
        load_model(tmp_path, "m", device=CPU)


@pytest.mark.parametrize(("change", "message"), [
    ({"norm": "group"}, "norm must be one of none, batch, layer, not 'group'"),
    ({"norm": 3}, "norm must be one of none, batch, layer, not 3"),
    ({"residual": "yes"}, "residual must be true or false, not 'yes'"),
    ({"norm": "none"}, "a config leaves norm out when there is none"),
    ({"residual": False}, "a config leaves residual out when it is false"),
    ({"dropout": 0.5}, "a BaseNetwork config has the keys"),
])
def test_a_config_with_bad_options_is_refused(tmp_path, change, message):
    save_model(small_net("batch", True), tmp_path, "m")
    config = {**json.loads((tmp_path / "m.config").read_text()), **change}
    with pytest.raises(ValueError, match=message):
        check_config(config)
    with pytest.raises(ValueError, match=message):
        build_network(config)
    (tmp_path / "m.config").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=rf"m.config is not a BaseNetwork config: {message}"):
        load_model(tmp_path, "m", device=CPU)


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("residual", [False, True])
def test_parameter_shapes_are_those_of_the_real_network(norm, residual):
    net = small_net(norm, residual)
    real = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    assert parameter_shapes(net.config) == real
    unknown = {**net.config, "act_fn": {"name": "Sparkle"}}
    assert parameter_shapes(unknown) == real
    if norm == "batch":
        assert real["layers.1.running_var"] == (8,) and real["layers.1.num_batches_tracked"] == ()


# --- initialization ----------------------------------------------------------------------------------------


def glorot_bound(linear, gain):
    return gain * math.sqrt(6.0 / (linear.in_features + linear.out_features))


@pytest.mark.parametrize(("norm", "residual"), [("batch", False), ("layer", False), ("batch", True)])
def test_glorot_skips_the_norm_to_find_the_sigmoid(norm, residual):
    torch.manual_seed(0)
    net = BaseNetwork(get_activation("sigmoid"), input_size=400, num_classes=10, hidden_sizes=[300, 300],
                      norm=norm, residual=residual)
    initialize(net, "glorot")
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for linear, gain in zip(linears, (4.0, 4.0, 1.0)):
        bound = glorot_bound(linear, gain)
        weight = linear.weight.detach()
        assert weight.abs().max() <= bound * (1 + 1e-6)
        assert weight.abs().max() > 0.99 * bound
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        assert torch.equal(linear.bias, torch.zeros_like(linear.bias))
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm))]
    assert len(norms) == 2 + residual  # a residual network normalizes its last hidden layer too
    for m in norms:
        assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))


# --- experiments and comparison settings -------------------------------------------------------------------


def experiment(**options):
    return Experiment((16, 16), default_protocol(), "default", DataSpec("quick", 1024, 512, 512), **options)


def test_experiment_round_trip_leaves_the_options_out_when_off():
    plain = experiment()
    values = plain.to_dict()
    assert "norm" not in values and "residual" not in values
    assert Experiment.from_dict(json.loads(json.dumps(values))) == plain
    assert plain.network("relu").config == network_config(get_activation("relu"), hidden_sizes=[16, 16])
    assert "norm" not in plain.request("relu", 42).network


def test_experiment_round_trip_with_the_options_on():
    for options in ({"norm": "batch", "residual": True}, {"norm": "layer"}, {"residual": True}):
        exp = experiment(**options)
        values = exp.to_dict()
        assert {key: values[key] for key in ("norm", "residual") if key in values} == options
        assert Experiment.from_dict(json.loads(json.dumps(values))) == exp
        net = exp.network("tanh")
        assert {key: net.config[key] for key in ("norm", "residual") if key in net.config} == options
        assert exp.request("tanh", 42).network == net.config
    assert experiment(norm="batch") != experiment()


@pytest.mark.parametrize(("options", "message"), [
    ({"norm": "group"}, "norm must be one of none, batch, layer"),
    ({"residual": "yes"}, "residual must be true or false"),
])
def test_experiment_refuses_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        experiment(**options)


def test_comparison_settings_take_norm_and_residual():
    values = {"activations": ["relu"], "seeds": 1, "epochs": 1, "hidden_sizes": [16, 16]}
    on = ComparisonSettings.from_values({**values, "norm": "batch", "residual": True})
    assert on.norm == "batch" and on.residual is True
    off = ComparisonSettings.from_values(values)
    assert off.norm == "none" and off.residual is False
    assert {"norm", "residual"} <= set(ComparisonSettings.OPTIONS)
    command = on.command(Path("out"))
    assert "--hidden-sizes 16 16 --norm batch --residual --out out" in command
    assert "--norm" not in off.command(Path("out")) and "--residual" not in off.command(Path("out"))
    for settings_ in (on, off):  # the command asks for the same settings again
        args = build_parser().parse_args(shlex.split(settings_.command(Path("out")))[3:])
        assert settings_of(args) == settings_


@pytest.mark.parametrize(("values", "message"), [
    ({"norm": "group"}, "norm must be one of none, batch, layer, not 'group'"),
    ({"norm": 1}, "norm must be a name, not 1"),
    ({"residual": "yes"}, "residual must be true or false, not 'yes'"),
])
def test_comparison_settings_refuse_bad_options(values, message):
    with pytest.raises(ValueError, match=message):
        ComparisonSettings.from_values(values)


# --- command line and grid ---------------------------------------------------------------------------------


def test_compare_records_norm_and_residual(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compare", "--activations", "relu", "--seeds", "1", "--epochs", "1", "--batch-size", "500",
            "--hidden-sizes", "16", "16", "--norm", "batch", "--residual", "--out", str(out)]
    assert main(argv) == 0
    values = json.loads((out / "results.json").read_text())
    assert values["protocol"]["norm"] == "batch" and values["protocol"]["residual"] is True
    assert "--norm batch --residual" in values["command"]
    checkpoints = out / "checkpoints"
    record = json.loads((checkpoints / "FashionMNIST_relu_seed42.run.json").read_text())
    assert record["network"]["norm"] == "batch" and record["network"]["residual"] is True
    assert record["status"] == "finished"
    net = load_model(checkpoints, "FashionMNIST_relu_seed42", device=CPU)
    assert isinstance(net.layers[3], Residual) and int(net.layers[1].num_batches_tracked) > 0
    results = load_results(out / "results.json")
    assert results.experiment.norm == "batch" and results.experiment.residual is True
    rows = experiment_rows(load_experiments(tmp_path))
    assert [(row["norm"], row["residual"]) for row in rows] == [("batch", True)]
    capsys.readouterr()
    assert main(argv) == 0  # the finished run is reused
    assert "skipping training" in capsys.readouterr().out
    plain = [arg for arg in argv if arg not in ("--norm", "batch", "--residual")]
    assert main(plain) == 2  # another network: refused, nothing retrained
    assert "norm: 'batch' stored vs None requested" in capsys.readouterr().err


def test_compare_refuses_an_unknown_norm(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--norm", "bogus", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--norm: invalid choice: 'bogus'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_grid_labels_name_long_lists_by_their_length():
    assert _label([256] * 64) == "64-layers-of-256"
    assert _label([8] * 17) == "17-layers-of-8"
    assert _label([8, 8]) == "8x8"
    assert _label([8] * 16) == "x".join(["8"] * 16)
    assert _label([8] * 20 + [4]) == "x".join(["8"] * 20 + ["4"])
    assert _label("batch") == "batch" and _label(True) == "True"


def test_grid_varies_norm_and_residual(small_data):
    spec = GridSpec({"activations": ["relu"], "seeds": 1, "epochs": 1},
                    {"hidden_sizes": [[256] * 64, [8, 8]], "norm": ["none", "batch"], "residual": [False, True]})
    found = experiments(spec, small_data)
    names = [name for name, _ in found]
    assert names[0] == "hidden_sizes=64-layers-of-256_norm=none_residual=False"
    assert names[-1] == "hidden_sizes=8x8_norm=batch_residual=True"
    assert len(set(names)) == 8
    assert [(s.norm, s.residual) for _, s in found[4:]] == [("none", False), ("none", True), ("batch", False),
                                                           ("batch", True)]
    bad = GridSpec({"activations": ["relu"], "seeds": 1}, {"norm": ["batch", "group"]})
    with pytest.raises(GridSpecError, match="experiment norm=group: norm must be one of none, batch, layer"):
        experiments(bad, small_data)
