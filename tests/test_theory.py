import math

import numpy as np
import pytest
import torch
from numpy.polynomial.hermite_e import hermegauss
from typing_extensions import override

from actlab import BaseNetwork, get_activation, initialize, set_seed, theory
from actlab.activations import ActivationFunction
from actlab.hooks import recording_activations
from actlab.mean_field import gaussian_scales
from actlab.network import check_init


class Identity(ActivationFunction):
    """f(x) = x"""

    @override
    def forward(self, x):
        return x


class Softsign(ActivationFunction):
    """f(x) = x / (1 + |x|): an activation written only as a forward pass."""

    @override
    def forward(self, x):
        return x / (1 + x.abs())


@pytest.mark.parametrize("sigma_b2", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("sigma_w2", [0.5, 1.0, 2.0, 3.0])
def test_relu_chi_1_is_half_of_sigma_w2(sigma_w2, sigma_b2):
    assert theory.chi_1("relu", sigma_w2, sigma_b2) == pytest.approx(sigma_w2 / 2, rel=1e-6)


@pytest.mark.parametrize("sigma_w2", [0.3, 0.9, 1.7])
def test_the_identity_has_chi_1_equal_to_sigma_w2_and_its_fixed_point(sigma_w2):
    assert theory.chi_1(Identity(), sigma_w2, 0.1) == pytest.approx(sigma_w2, rel=1e-6)
    if sigma_w2 < 1:
        assert theory.length_fixed_point(Identity(), sigma_w2, 0.1) == pytest.approx(0.1 / (1 - sigma_w2), rel=1e-6)
    else:
        assert math.isinf(theory.length_fixed_point(Identity(), sigma_w2, 0.1))


def test_tanh_critical_line_matches_the_published_value():
    assert theory.critical_sigma_w2("tanh", 0.05) == pytest.approx(1.76, rel=0.01)
    assert theory.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, rel=1e-2)
    assert theory.critical_sigma_w2(get_activation("tanh"), 0.05) == theory.critical_sigma_w2("tanh", 0.05)


def test_relu_is_critical_at_he():
    assert theory.critical_sigma_w2("relu", 0.0) == pytest.approx(2.0, rel=1e-6)


def test_sigmoid_at_pytorchs_default_loses_a_factor_of_seven_per_layer():
    assert math.sqrt(theory.chi_1("sigmoid", 1 / 3, 1 / 768)) == pytest.approx(0.1414, abs=1e-3)


def _independent_depth_scale(phi, dphi, sigma_w2, sigma_b2):
    """xi_c from its definition, with Gauss-Hermite quadrature and NumPy's own functions."""
    z, w = hermegauss(120)
    w = w / w.sum()
    q = 1.0
    for _ in range(5000):
        q = sigma_w2 * (phi(math.sqrt(q) * z) ** 2) @ w + sigma_b2
    z1, z2 = (a.ravel() for a in np.meshgrid(z, z, indexing="ij"))
    w2 = np.outer(w, w).ravel()

    def cmap(c):
        u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
        return (sigma_w2 * (phi(u1) * phi(u2)) @ w2 + sigma_b2) / q

    slope = sigma_w2 * (dphi(math.sqrt(q) * z) ** 2) @ w
    c = 1.0
    if slope > 1:
        c = 0.3
        for _ in range(3000):
            c = cmap(c)
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(max(0.0, 1 - c * c)) * z2)
    return -1 / math.log(sigma_w2 * (dphi(u1) * dphi(u2)) @ w2)


@pytest.mark.parametrize("sigma_w2", [1.0, 1.3, 2.5, 4.0])
def test_depth_scale_agrees_with_an_independent_computation_in_both_phases(sigma_w2):
    expected = _independent_depth_scale(np.tanh, lambda x: 1 / np.cosh(x) ** 2, sigma_w2, 0.05)
    assert theory.depth_scale("tanh", sigma_w2, 0.05) == pytest.approx(expected, rel=0.05)


def test_the_correlation_approaches_its_fixed_point_at_the_depth_scale():
    sigma_w2, sigma_b2 = 1.2, 0.05
    q = theory.length_fixed_point("tanh", sigma_w2, sigma_b2)
    c = theory.layer_correlations("tanh", sigma_w2, sigma_b2, [q] * 40, 0.5)
    rate = math.log((1 - c[30]) / (1 - c[20])) / 10
    assert -1 / rate == pytest.approx(theory.depth_scale("tanh", sigma_w2, sigma_b2), rel=0.05)


def test_chaos_pulls_images_apart_and_order_pulls_them_together():
    assert theory.correlation_fixed_point("tanh", 1.0, 0.05) == 1.0
    assert 0 < theory.correlation_fixed_point("tanh", 4.0, 0.05) < 0.3
    assert math.isinf(theory.depth_scale("tanh", theory.critical_sigma_w2("tanh", 0.05), 0.05))


def test_a_students_activation_works_without_a_derivative():
    critical = theory.critical_sigma_w2(Softsign(), 0.01)
    assert theory.chi_1(Softsign(), critical, 0.01) == pytest.approx(1.0, abs=1e-6)


def test_arrays_give_a_whole_phase_diagram_at_once():
    sigma_w2, sigma_b2 = np.meshgrid([1.0, 2.0, 3.0], [0.0, 0.1])
    grid = theory.chi_1("relu", sigma_w2, sigma_b2)
    assert grid.shape == (2, 3) and np.allclose(grid, sigma_w2 / 2)


def test_bad_variances_are_refused():
    with pytest.raises(ValueError, match="sigma_w2 must be positive"):
        theory.chi_1("tanh", 0.0, 0.05)
    with pytest.raises(ValueError, match="sigma_w2 must be positive"):
        theory.critical_sigma_w2("tanh", -1.0)
    with pytest.raises(ValueError, match="grows without bound"):
        theory.depth_scale("relu", 3.0, 0.0)


def test_gaussian_inits_are_named_with_their_variances():
    assert gaussian_scales("gaussian-1.5-0.05") == (1.5, 0.05)
    assert gaussian_scales("gaussian-0-0.05") is None and gaussian_scales("gaussian-1e-3-0") is None
    assert check_init("critical-orthogonal") == "critical-orthogonal"
    with pytest.raises(ValueError, match="gaussian-W-B"):
        check_init("lecun")


def test_a_gaussian_init_draws_the_asked_variances():
    set_seed(0)
    net = initialize(BaseNetwork(get_activation("tanh"), hidden_sizes=[512, 512]), "gaussian-2.0-0.25")
    weight, bias = net.layers[2].weight, net.layers[2].bias
    assert weight.var().item() * 512 == pytest.approx(2.0, rel=0.02)
    assert bias.var().item() == pytest.approx(0.25, rel=0.2)


def _pre_activations(net):
    torch.manual_seed(1)
    with torch.no_grad(), recording_activations(net) as calls:
        net(torch.randn(1024, 784))
    return [call.pre for call in calls]


@pytest.mark.parametrize("init", ["critical", "critical-orthogonal"])
def test_critical_tanh_keeps_the_variance_at_its_fixed_point(init):
    set_seed(0)
    net = initialize(BaseNetwork(get_activation("tanh"), hidden_sizes=[256] * 30), init)
    q_star = theory.length_fixed_point("tanh", theory.critical_sigma_w2("tanh", 0.05), 0.05)
    measured = [pre.var().item() for pre in _pre_activations(net)[5:]]
    assert np.median(measured) == pytest.approx(q_star, rel=0.25)


def test_critical_sigmoid_cancels_the_mean_each_layer_passes_on():
    def offsets(init):
        set_seed(0)
        net = initialize(BaseNetwork(get_activation("sigmoid"), hidden_sizes=[256] * 4), init)
        return [pre.mean(dim=0).abs().mean().item() for pre in _pre_activations(net)]

    sigma_w2 = theory.critical_sigma_w2("sigmoid", 0.05, centred=True)
    centred, plain = offsets("critical"), offsets(f"gaussian-{sigma_w2:.3f}-0.05")
    assert centred[0] == pytest.approx(plain[0], rel=0.05)
    assert centred[1] < 0.2 * plain[1]


def test_critical_inits_refuse_normalized_or_residual_networks():
    with pytest.raises(ValueError, match="plain stacks"):
        initialize(BaseNetwork(get_activation("tanh"), hidden_sizes=[64, 64], norm="batch"), "critical")
    with pytest.raises(ValueError, match="plain stacks"):
        initialize(BaseNetwork(get_activation("tanh"), hidden_sizes=[64, 64], residual=True), "gaussian-1.0-0.0")


def test_init_variances_name_the_scale_of_every_initialization():
    from actlab.mean_field import init_variances

    assert init_variances("default", "tanh") == pytest.approx((1 / 3, 1 / 768, False))
    assert init_variances("he", "relu") == (2.0, 0.0, False)
    assert init_variances("glorot", "sigmoid")[0] == pytest.approx(16.0)
    assert init_variances("gaussian-1.5-0.2", "tanh") == (1.5, 0.2, False)
    sigma_w2, sigma_b2, centred = init_variances("critical", "sigmoid")
    assert centred and sigma_b2 == 0.05 and theory.chi_1("sigmoid", sigma_w2, sigma_b2, True) == pytest.approx(1)


def test_measured_propagation_reads_q_and_c_off_the_pre_activations():
    set_seed(0)
    net = BaseNetwork(get_activation("tanh"), input_size=20, hidden_sizes=[16, 16])
    x = torch.randn(5, 20)
    q, c = theory.measured_propagation(net, x)
    z1 = net.layers[0](x)
    assert q[0] == pytest.approx(z1.square().mean().item(), rel=1e-5)
    unit = z1 / z1.norm(dim=1, keepdim=True)
    pairs = [(unit[i] @ unit[j]).item() for i in range(5) for j in range(5) if i != j]
    assert c[0] == pytest.approx(sum(pairs) / len(pairs), rel=1e-5)


def test_jacobian_singular_values_match_autograd():
    set_seed(0)
    net = BaseNetwork(get_activation("tanh"), input_size=12, hidden_sizes=[8, 8, 8])
    x = torch.randn(2, 12)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]

    def hidden(z):
        h = torch.tanh(z)
        for linear in linears[1:-1]:
            h = torch.tanh(linear(h))
        return h

    with torch.no_grad():
        starts = linears[0](x)
    expected = np.concatenate([torch.linalg.svdvals(torch.autograd.functional.jacobian(hidden, z)).numpy()
                               for z in starts])
    assert theory.jacobian_singular_values(net, x) == pytest.approx(expected, rel=1e-4, abs=1e-6)
