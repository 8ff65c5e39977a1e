import math

import numpy as np
import pytest
import torch

from actlab import gradients, network
from actlab.activations import get_activation
from actlab.gradients import (
    depth_sweep,
    first_batch,
    fresh_network,
    gradient_overview,
    gradient_scales,
    weight_gradients,
)
from actlab.network import glorot_gain


@pytest.fixture(scope="module")
def batch(small_data):
    return first_batch(small_data)


def test_first_batch_is_the_unshuffled_start(small_data, batch):
    imgs, labels = batch
    assert imgs.shape == (256, 1, 28, 28) and (labels == small_data.train.labels[:256]).all()


def test_one_gradient_per_weight_matrix(batch):
    grads = weight_gradients(fresh_network("relu"), *batch)
    assert list(grads) == [f"layers.{i}.weight" for i in (0, 2, 4, 6, 8)]
    assert [g.size for g in grads.values()] == [784 * 512, 512 * 256, 256 * 256, 256 * 128, 128 * 10]
    assert all(np.isfinite(g).all() and np.abs(g).max() > 0 for g in grads.values())


def test_gradients_leave_the_network_clean(batch):
    net = fresh_network("tanh")
    weight_gradients(net, *batch)
    assert all(p.grad is None or not p.grad.any() for p in net.parameters())


def test_same_seed_same_numbers(batch):
    a = weight_gradients(fresh_network("elu"), *batch)
    b = weight_gradients(fresh_network("elu"), *batch)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = weight_gradients(fresh_network("elu", seed=7), *batch)
    assert not np.array_equal(a["layers.0.weight"], c["layers.0.weight"])


def test_every_activation_starts_from_the_same_weights():
    a, b = fresh_network("relu"), fresh_network("sigmoid")
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters()))


def test_sigmoid_gradient_vanishes_towards_the_input(batch):
    overview = gradient_overview(["sigmoid", "relu"], *batch)
    sigmoid, relu = overview["sigmoid"], overview["relu"]
    assert len(sigmoid) == 5
    assert sigmoid[-1] / sigmoid[0] > 100
    assert relu[-1] / relu[0] < 10


def test_scales_are_standard_deviations():
    assert gradient_scales({"a": np.array([1.0, -1.0]), "b": np.zeros(3)}) == [1.0, 0.0]


def test_depth_sweep_shape(batch):
    sweep = depth_sweep(["tanh"], [1, 3], *batch, width=32)
    assert sorted(sweep["tanh"]) == [1, 3]
    assert [len(v) for v in sweep["tanh"].values()] == [2, 4]


def test_initializations():
    default = fresh_network("relu")
    he = fresh_network("relu", init="he")
    assert he.layers[0].weight.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.02)
    assert default.layers[0].weight.std().item() == pytest.approx((1 / (3 * 784)) ** 0.5, rel=0.02)
    assert not he.layers[0].bias.any()
    with pytest.raises(ValueError, match="init must be one of default, he, glorot"):
        fresh_network("relu", init="lecun")


@pytest.mark.parametrize(
    ("activation", "gain"),
    [("sigmoid", 4.0), ("tanh", 5 / 3), ("relu", math.sqrt(2)), ("leakyrelu", math.sqrt(2 / (1 + 0.1**2))),
     ("elu", 1.0), ("gelu", 1.0)],
)
def test_glorot_gain_follows_the_activation(activation, gain):
    net = fresh_network(activation, init="glorot")
    assert glorot_gain(get_activation(activation)) == pytest.approx(gain)
    first, last = net.layers[0].weight, net.layers[-1].weight
    assert first.std().item() == pytest.approx(gain * math.sqrt(2 / (784 + 512)), rel=0.02)
    assert first.abs().max().item() <= gain * math.sqrt(6 / (784 + 512))
    assert last.std().item() == pytest.approx(math.sqrt(2 / (128 + 10)), rel=0.1)
    assert not net.layers[0].bias.any()


def test_inits_stay_importable_from_gradients():
    assert gradients.INITS is network.INITS and gradients.initialize is network.initialize
    assert "gain 4 for sigmoid" in network.INITS["glorot"]


def test_he_init_keeps_relu_gradients_in_deep_networks(batch):
    default = gradient_overview(["relu"], *batch, hidden_sizes=[256] * 12)["relu"]
    he = gradient_overview(["relu"], *batch, hidden_sizes=[256] * 12, init="he")["relu"]
    assert he[-1] / he[0] < 100 < default[-1] / default[0]


def test_preactivations_are_the_inputs_of_each_activation(batch):
    imgs, _ = batch
    net = gradients.fresh_network("tanh", [16, 8])
    pre = gradients.preactivations(net, imgs)
    assert [tuple(p.shape) for p in pre] == [(len(imgs), 16), (len(imgs), 8)]
    first, second = net.layers[0], net.layers[2]
    expected = second(torch.tanh(first(imgs.flatten(1))))
    torch.testing.assert_close(pre[1], expected)
