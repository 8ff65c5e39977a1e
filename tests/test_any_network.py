"""A student's own network (nn.Sequential, BatchNorm, LayerNorm, Dropout, a residual block) goes through the lesson."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actlab.activation_stats import activation_statistics, dead_neurons, monitor, statistics_over_epochs
from actlab.activations import get_activation
from actlab.gradients import preactivations, weight_gradients
from actlab.hooks import recording_activations
from actlab.settings import set_seed
from actlab.training import Protocol, evaluate, fit


class Residual(nn.Module):
    """h + act(LayerNorm(W h + b))."""

    def __init__(self, width: int, act: nn.Module) -> None:
        super().__init__()
        self.linear, self.norm, self.act = nn.Linear(width, width), nn.LayerNorm(width), act

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.norm(self.linear(h)))


def student_network() -> nn.Sequential:
    set_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.BatchNorm1d(64), get_activation("relu"), nn.Dropout(0.3),
        Residual(64, get_activation("tanh")), nn.Linear(64, 32), nn.LayerNorm(32), get_activation("elu"),
        nn.Linear(32, 10),
    )


def images(n: int = 200) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_statistics_find_every_activation_in_order_of_use_in_eval_mode():
    net = student_network().train()
    running_mean = net[2].running_mean.clone()
    first = activation_statistics(net, images(), batch_size=64)
    second = activation_statistics(net, images(), batch_size=64)
    assert [(s.layer, s.activation, s.units) for s in first] == [(1, "ReLU", 64), (2, "Tanh", 64), (3, "ELU", 32)]
    assert first == second  # Dropout was off, so the statistics do not change from call to call
    assert net.training and all(module.training for module in net.modules())
    assert torch.equal(net[2].running_mean, running_mean)  # BatchNorm used its running statistics, not the batch's


def test_dead_units_equal_a_count_by_hand():
    net = student_network()
    with torch.no_grad():
        net[2].bias[:5] = -50.0  # BatchNorm's shift: these five ReLU units can never fire
    dead = dead_neurons(net, images(), batch_size=64)
    net.eval()
    with torch.no_grad():
        relu_out = net[:4](images())
    assert dead[0] == int((relu_out == 0).all(0).sum()) >= 5 and dead[0] < 64
    assert len(dead) == 3 and dead[1:] == [0, 0]


def test_preactivations_and_gradients_follow_the_network():
    net = student_network().eval()
    x = images(32)
    pre = preactivations(net, x)
    with torch.no_grad():
        assert torch.equal(pre[0], net[:3](x))
    assert [tuple(p.shape) for p in pre] == [(32, 64), (32, 64), (32, 32)]
    grads = weight_gradients(net.train(), x, torch.arange(32) % 10)
    assert list(grads) == ["1.weight", "5.linear.weight", "6.weight", "9.weight"]
    assert net.training


def test_fit_and_the_monitor_train_it(small_data):
    net = student_network()
    probe = small_data.val.images[:100]
    history = fit(net, small_data, Protocol(max_epochs=2, batch_size=128), monitor=monitor(probe), progress=False)
    assert history.epochs == 2 and len(history.monitor) == 3
    assert evaluate(net, small_data.val)[1] > 0.5
    series = statistics_over_epochs(history.monitor)
    assert [s.activation for s in series] == ["ReLU", "Tanh", "ELU"] and series[0].histograms.shape[0] == 3


def test_a_reused_module_gives_one_entry_per_use():
    act = get_activation("sigmoid")
    set_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), act, nn.Linear(16, 8), act, nn.Linear(8, 10))
    with recording_activations(net) as calls:
        net(images(4))
    assert [tuple(call.post.shape) for call in calls] == [(4, 16), (4, 8)]
    assert not act._forward_hooks  # the hooks are gone after the block


def test_a_network_without_actlab_activations_is_named():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10))
    with pytest.raises(ValueError, match="holds no actlab ActivationFunction"):
        activation_statistics(net, images(4))
