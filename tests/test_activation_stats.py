import json

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from actlab import plotting
from actlab.activation_stats import (
    DEFAULT_BINS,
    LayerStatistics,
    activation_range,
    activation_statistics,
    dead_neurons,
    monitor,
    statistics_over_epochs,
)
from actlab.activations import ActivationFunction, act_fn_by_name, get_activation, register_activation
from actlab.network import BaseNetwork
from actlab.weight_change import weight_monitor

matplotlib.use("Agg")


def set_layer(layer: torch.nn.Linear, weight: float | torch.Tensor, bias: float | list[float]) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).expand_as(layer.weight))
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32).expand_as(layer.bias))


def images(n: int = 20, pixels: int = 4, seed: int = 0) -> torch.Tensor:
    """Random 'images' of ``pixels`` values, shaped N x 1 x 1 x pixels."""
    return torch.randn(n, 1, 1, pixels, generator=torch.Generator().manual_seed(seed))


def independent_dead_count(net: BaseNetwork, inputs: torch.Tensor) -> list[int]:
    counts = []
    with torch.no_grad():
        h = inputs.flatten(1)
        for module in net.layers[:-1]:
            h = module(h)
            if isinstance(module, ActivationFunction):
                counts.append(int((h == 0).all(0).sum()))
    return counts


@pytest.fixture
def hard_clip():
    @register_activation
    class HardClip(ActivationFunction):
        r"$f(x) = \min(\max(x, -1), 1)$"

        def forward(self, x):
            return torch.minimum(torch.maximum(x, -torch.ones_like(x)), torch.ones_like(x))

    yield HardClip
    del act_fn_by_name["hardclip"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize(
    ("name", "low", "high", "max_slope"),
    [("sigmoid", 0.0, 1.0, 0.25), ("tanh", -1.0, 1.0, 1.0), ("relu", 0.0, 8.0, 1.0), ("elu", -1.0, 8.0, 1.0)],
)
def test_bins_fit_the_activation(name, low, high, max_slope):
    reference = activation_range(get_activation(name))
    assert (reference.low, reference.high) == (low, high)
    assert reference.max_slope == pytest.approx(max_slope, rel=1e-3)


def test_a_layer_forced_dead_counts_all_its_units():
    net = BaseNetwork(get_activation("relu"), input_size=4, hidden_sizes=[3, 5], num_classes=2)
    set_layer(net.layers[0], 0.0, -1.0)
    x = images()
    assert dead_neurons(net, x)[0] == 3
    stats = activation_statistics(net, x)[0]
    assert stats.dead_units == 3 and stats.dead_fraction == 1.0
    assert stats.counts[0] == 3 * len(x) and sum(stats.counts) == 3 * len(x)
    assert (stats.inactive, stats.saturated, stats.effectively_dead_units) == (1.0, 0.0, 3)


def test_the_shared_activation_is_counted_per_layer():
    net = BaseNetwork(get_activation("relu"), input_size=4, hidden_sizes=[3, 5], num_classes=2)
    assert net.layers[1] is net.layers[3]
    set_layer(net.layers[0], 0.0, [-1.0, 0.5, 2.0])
    set_layer(net.layers[2], 0.0, [1.0, -1.0, 1.0, -1.0, -2.0])
    x = images()
    assert dead_neurons(net, x) == [1, 3] == independent_dead_count(net, x)
    first, second = activation_statistics(net, x)
    assert (first.layer, first.units, first.dead_units) == (1, 3, 1)
    assert (second.layer, second.units, second.dead_units) == (2, 5, 3)
    assert first.mean == pytest.approx(2.5 / 3, rel=1e-3) and second.mean == pytest.approx(2 / 5)


def test_huge_weights_saturate_a_sigmoid():
    net = BaseNetwork(get_activation("sigmoid"), input_size=4, hidden_sizes=[6], num_classes=2)
    set_layer(net.layers[0], 1000.0, 0.0)
    x = images().abs() + 0.1
    (stats,) = activation_statistics(net, x)
    assert (stats.inactive, stats.saturated, stats.effectively_dead_units) == (0.0, 1.0, 6)
    assert stats.dead_units == 0 and stats.mean == pytest.approx(1.0)
    assert stats.counts[-1] == 6 * len(x)


def test_a_constant_sigmoid_layer_has_known_statistics():
    net = BaseNetwork(get_activation("sigmoid"), input_size=4, hidden_sizes=[6], num_classes=2)
    set_layer(net.layers[0], 0.0, 0.0)
    (stats,) = activation_statistics(net, images(), bins=64)
    assert stats.value_range == (0.0, 1.0) and len(stats.counts) == 64
    assert stats.counts[32] == 6 * 20 and sum(stats.counts) == 6 * 20
    assert (stats.mean, stats.std, stats.unit_std) == (0.5, 0.0, (0.0, 0.0, 0.0))
    assert (stats.inactive, stats.saturated, stats.effectively_dead_units, stats.clipped) == (0.0, 0.0, 0, 0.0)


def test_a_student_activation_gets_its_derivative_by_autograd(hard_clip):
    net = BaseNetwork(get_activation("HardClip"), input_size=2, hidden_sizes=[2], num_classes=2)
    set_layer(net.layers[0], torch.eye(2), 0.0)
    x = torch.tensor([[0.5, 3.0], [-2.0, 0.2]]).view(2, 1, 1, 2)
    (stats,) = activation_statistics(net, x, bins=4)
    assert stats.activation == "HardClip" and stats.value_range == (-1.0, 1.0)
    assert (stats.inactive, stats.saturated, stats.effectively_dead_units) == (0.0, 0.5, 0)
    assert stats.counts == (1, 0, 1, 2)
    assert stats.mean == pytest.approx((0.5 + 1.0 - 1.0 + 0.2) / 4)


@pytest.mark.parametrize("depth", [1, 2, 7])
def test_any_depth(depth):
    torch.manual_seed(0)
    net = BaseNetwork(get_activation("tanh"), input_size=4, hidden_sizes=[5] * depth, num_classes=3)
    stats = activation_statistics(net, images())
    assert [s.layer for s in stats] == list(range(1, depth + 1))
    assert all(s.units == 5 and s.images == 20 and sum(s.counts) == 100 for s in stats)
    assert len(dead_neurons(net, images())) == depth


def test_moments_match_torch_and_do_not_depend_on_the_batch_size():
    torch.manual_seed(1)
    net = BaseNetwork(get_activation("relu"), input_size=16, hidden_sizes=[32, 16], num_classes=3)
    for layer in net.layers[::2]:
        torch.nn.init.constant_(layer.bias, -0.4)
    x = images(n=300, pixels=16)
    whole = activation_statistics(net, x)
    batched = activation_statistics(net, x, batch_size=7)
    assert dead_neurons(net, x, batch_size=7) == dead_neurons(net, x) == independent_dead_count(net, x)
    assert any(count > 0 for count in dead_neurons(net, x))
    with torch.no_grad():
        post = net.layers[1](net.layers[0](x.flatten(1)))
    unit_std = post.std(0, correction=0)
    for stats in (whole[0], batched[0]):
        assert stats.mean == pytest.approx(post.mean().item(), rel=1e-3)
        assert stats.std == pytest.approx(post.std(correction=0).item(), rel=1e-3)
        assert stats.unit_std[1] == pytest.approx(unit_std.median().item(), rel=2e-2)
    for a, b in zip(whole, batched):
        assert a.counts == b.counts and a.dead_units == b.dead_units and a.saturated == b.saturated
        assert a.mean == pytest.approx(b.mean, rel=1e-3) and a.std == pytest.approx(b.std, rel=1e-3)


def test_outputs_beyond_the_bins_land_in_the_end_bins():
    net = BaseNetwork(get_activation("relu"), input_size=4, hidden_sizes=[2], num_classes=2)
    set_layer(net.layers[0], 0.0, [20.0, 1.0])
    (stats,) = activation_statistics(net, images())
    assert stats.clipped == 0.5 and stats.counts[-1] == 20


def test_monitor_records_are_json_and_round_trip():
    torch.manual_seed(0)
    net = BaseNetwork(get_activation("elu"), input_size=4, hidden_sizes=[8, 6], num_classes=3)
    record = monitor(images())(net)
    text = json.dumps(record, allow_nan=False)
    assert len(text) < 2000
    loaded = json.loads(text)
    assert loaded == record
    assert all(isinstance(c, int) for layer in loaded["layers"] for c in layer["counts"])
    stats = [LayerStatistics.from_dict(values) for values in loaded["layers"]]
    assert stats == activation_statistics(net, images())
    assert [s.to_dict() for s in stats] == record["layers"]


def test_statistics_over_epochs_stacks_the_records():
    torch.manual_seed(0)
    net = BaseNetwork(get_activation("relu"), input_size=4, hidden_sizes=[8, 6], num_classes=3)
    fn = monitor(images())
    records = []
    for _ in range(3):
        records.append(json.loads(json.dumps(fn(net))))
        with torch.no_grad():
            net.layers[0].bias -= 0.5
    series = statistics_over_epochs(records)
    assert [s.layer for s in series] == [1, 2] and series[0].units == 8
    assert series[0].histograms.shape == (3, DEFAULT_BINS) and series[0].edges.shape == (DEFAULT_BINS + 1,)
    assert series[0].unit_std.shape == (3, 3) and series[0].epochs.tolist() == [0, 1, 2]
    for name in ("mean", "std", "inactive", "saturated", "effectively_dead", "dead", "clipped"):
        assert getattr(series[1], name).shape == (3,)
    assert np.all(np.diff(series[0].inactive) >= 0) and not series[0].saturated.any()
    bad = json.loads(json.dumps(records[0]))
    bad["layers"][0]["value_range"] = [0.0, 1.0]
    with pytest.raises(ValueError, match="different histogram bins"):
        statistics_over_epochs([records[0], bad])


def test_no_images_is_refused():
    net = BaseNetwork(get_activation("relu"), input_size=4, hidden_sizes=[3], num_classes=2)
    with pytest.raises(ValueError, match="at least one image"):
        activation_statistics(net, images(n=0))


def test_plots_return_figures():
    torch.manual_seed(0)
    nets = {name: BaseNetwork(get_activation(name), input_size=4, hidden_sizes=[8, 6], num_classes=3)
            for name in ("sigmoid", "relu")}
    stats = {name: activation_statistics(net, images()) for name, net in nets.items()}
    assert isinstance(plotting.plot_activation_distributions(stats), Figure)
    assert isinstance(plotting.plot_dead_neurons(stats), Figure)
    series = {name: statistics_over_epochs([monitor(images())(net)] * 3) for name, net in nets.items()}
    fig = plotting.plot_statistics_over_training(series)
    assert isinstance(fig, Figure) and len([ax for ax in fig.axes if ax.get_visible()]) == 2 * (2 + 3) + 1


def test_statistics_work_where_autograd_is_off():
    from actlab.activations import get_activation
    from actlab.network import BaseNetwork

    net = BaseNetwork(get_activation("sigmoid"), hidden_sizes=[8])
    with torch.no_grad():
        stats = activation_statistics(net, torch.randn(16, 1, 28, 28))
    assert len(stats) == 1


def test_dead_neurons_of_the_shipped_relu_network_match_an_independent_count(small_data):
    from actlab.checkpoints import load_model
    from actlab.settings import SAVED_MODELS

    net = load_model(SAVED_MODELS, "FashionMNIST_relu", device=torch.device("cpu"))
    images = small_data.test.images
    expected, h = [], images.flatten(1)
    with torch.no_grad():
        for linear in net.layers[:-1:2]:
            h = torch.clamp(linear(h), min=0)
            expected.append(int((h == 0).all(dim=0).sum()))
    assert dead_neurons(net, images) == expected
    assert sum(expected) > 0


def test_an_elu_unit_far_below_zero_is_effectively_dead_but_not_dead():
    net = BaseNetwork(get_activation("elu"), input_size=4, hidden_sizes=[3], num_classes=2)
    set_layer(net.layers[0], 0.0, [-6.0, -1.0, 2.0])
    (stats,) = activation_statistics(net, images())
    assert (stats.dead_units, stats.effectively_dead_units, stats.inactive) == (0, 1, 0.0)
    assert stats.saturated == pytest.approx(1 / 3)


def test_the_weight_monitor_records_relative_changes_from_the_start_and_per_call():
    net = BaseNetwork(get_activation("relu"), input_size=4, hidden_sizes=[3], num_classes=2)
    with torch.no_grad():
        net.layers[0].bias.zero_()
    record = weight_monitor()
    first = {row["name"]: row for row in record(net)["parameters"]}
    assert first["layers.0.weight"] == {"name": "layers.0.weight", "from_start": 0.0, "per_epoch": 0.0}
    assert first["layers.0.bias"]["from_start"] is None
    with torch.no_grad():
        net.layers[0].weight.mul_(1.5)
    second = {row["name"]: row for row in record(net)["parameters"]}
    assert second["layers.0.weight"]["from_start"] == pytest.approx(0.5)
    assert second["layers.0.weight"]["per_epoch"] == pytest.approx(0.5)
    assert second["layers.2.weight"]["from_start"] == 0.0
    with torch.no_grad():
        net.layers[0].weight.mul_(2.0)
    third = {row["name"]: row for row in record(net)["parameters"]}
    assert third["layers.0.weight"]["from_start"] == pytest.approx(2.0)
    assert third["layers.0.weight"]["per_epoch"] == pytest.approx(1.0)
    json.dumps(third, allow_nan=False)
