import pytest
import torch

from actlab import activations
from actlab.activations import (
    BUILTIN_NAMES,
    ActivationFunction,
    UnknownActivationError,
    act_fn_by_name,
    activation_curve,
    from_config,
    get_activation,
    register_activation,
)

NAMES = sorted(BUILTIN_NAMES)
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}
PARAMETRIZED = [("leakyrelu", {"alpha": 0.3}), ("elu", {"alpha": 0.5}), ("softplus", {"beta": 2.0})]


def value_and_grad(fn, x):
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), grad


def test_every_builtin_has_a_torch_reference():
    assert set(activations.SOURCE_ACTIVATIONS) <= BUILTIN_NAMES
    assert {"gelu", "mish", "softplus"} <= BUILTIN_NAMES
    assert all(get_activation(name).builtin() is not None for name in NAMES)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "params"), [(n, {}) for n in NAMES] + PARAMETRIZED)
def test_matches_torch_forward_and_gradient(name, params, dtype):
    act = get_activation(name, **params)
    x = torch.cat([torch.linspace(-100, 100, 20_001, dtype=dtype), torch.tensor([0.0, 1e-8, -1e-8], dtype=dtype)])
    y, grad = value_and_grad(act, x)
    y_ref, grad_ref = value_and_grad(act.builtin(), x)
    torch.testing.assert_close(y, y_ref, **TOLERANCE[dtype])
    torch.testing.assert_close(grad, grad_ref, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_no_nan_or_inf_for_huge_inputs(name, dtype):
    x = torch.tensor([-1e4, -1e3, -89.0, -88.0, 0.0, 88.0, 89.0, 1e3, 1e4], dtype=dtype)
    y, grad = value_and_grad(get_activation(name), x)
    assert torch.isfinite(y).all(), y
    assert torch.isfinite(grad).all(), grad


def test_naive_formula_would_fail_where_ours_does_not():
    x = torch.tensor([-1e4], requires_grad=True)
    naive = 1 / (1 + torch.exp(-x))
    (grad,) = torch.autograd.grad(naive.sum(), x)
    assert torch.isnan(grad).all()


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownActivationError) as err:
        get_activation("relu6")
    assert "Unknown activation 'relu6'" in str(err.value)
    for name in NAMES:
        assert name in str(err.value)
    with pytest.raises(KeyError):
        act_fn_by_name["nope"]


def test_names_are_case_insensitive():
    assert isinstance(get_activation("LeakyReLU"), activations.LeakyReLU)


@pytest.mark.parametrize("value", ["0.1", None, [0.1], True])
def test_non_numeric_parameter_is_refused(value):
    with pytest.raises(TypeError, match="LeakyReLU: parameter alpha must be a number"):
        get_activation("leakyrelu", alpha=value)


def test_invalid_parameters():
    with pytest.raises(TypeError, match="unknown parameter"):
        get_activation("relu", alpha=0.1)
    with pytest.raises(ValueError, match="must be finite"):
        get_activation("elu", alpha=float("nan"))
    with pytest.raises(ValueError, match="must be positive"):
        get_activation("softplus", beta=0)


@pytest.mark.parametrize(
    "config",
    [
        {"name": "LeakyReLU", "alpha": 0.1},
        {"name": "Tanh"},
        {"name": "ELU", "alpha": 0.25},
        {"name": "Softplus", "beta": 3.0},
    ],
)
def test_config_round_trip(config):
    act = from_config(dict(config))
    assert act.config == config
    assert from_config(act.config).config == config


def test_source_configs():
    assert get_activation("leakyrelu").config == {"name": "LeakyReLU", "alpha": 0.1}
    assert get_activation("sigmoid").config == {"name": "Sigmoid"}
    assert get_activation("swish").config == {"name": "Swish"}


def test_bad_config():
    with pytest.raises(ValueError, match="must be a dict with a 'name'"):
        from_config({"alpha": 0.1})


@pytest.fixture
def registered():
    @register_activation
    class Square(ActivationFunction):
        params = {"scale": activations.Param(1.0, 0.1, 2.0)}

        def forward(self, x):
            return self.scale * x * x

    yield Square
    del act_fn_by_name["square"]


def test_registered_activation_is_everywhere(registered):
    assert act_fn_by_name["square"] is registered
    act = from_config({"name": "Square", "scale": 2.0})
    curve = activation_curve(act, -1, 1, steps=3)
    assert curve.y.tolist() == [2.0, 0.0, 2.0] and curve.dy.tolist() == [-4.0, 0.0, 4.0]


def test_reregistering_replaces_but_builtins_are_protected(registered):
    class Square(ActivationFunction):
        def forward(self, x):
            return x * x

    assert register_activation(Square) is act_fn_by_name["square"]

    class ReLU(ActivationFunction):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="one of actlab's own"):
        register_activation(ReLU)
    with pytest.raises(TypeError, match="subclass of ActivationFunction"):
        register_activation(lambda x: x)


def test_curve_has_autograd_derivative():
    curve = activation_curve(get_activation("sigmoid"), -6, 6, steps=1201)
    assert curve.name == "Sigmoid" and curve.x.shape == (1201,)
    assert curve.dy.max().item() == pytest.approx(0.25)
    relu = activation_curve(get_activation("relu"), -2, 2, steps=5)
    assert relu.dy.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="x_min must be below x_max"):
        activation_curve(torch.relu, 1, 1)


def test_properties_table():
    rows = {name: activations.activation_properties(get_activation(name)) for name in NAMES}
    assert rows["sigmoid"]["max derivative"] == 0.25 and not rows["sigmoid"]["zero-centred"]
    assert rows["tanh"]["zero-centred"] and rows["tanh"]["mean output, x ~ N(0, 1)"] == 0.0
    assert rows["relu"]["dead region (x < -1)"] and not rows["relu"]["smooth"]
    assert not rows["leakyrelu"]["dead region (x < -1)"]
    assert rows["elu"]["smooth"] and rows["swish"]["max derivative"] == pytest.approx(1.1, abs=1e-3)
    assert not rows["swish"]["monotonic"] and rows["softplus"]["monotonic"]
    assert rows["relu"]["mean output, x ~ N(0, 1)"] == pytest.approx(1 / (2 * 3.14159265) ** 0.5, abs=1e-3)
