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
HALF_TOLERANCE = {torch.float16: {"rtol": 1e-3, "atol": 1e-5}, torch.bfloat16: {"rtol": 8e-3, "atol": 1e-5}}
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}
PARAMETRIZED = [("leakyrelu", {"alpha": 0.3}), ("elu", {"alpha": 0.5}), ("softplus", {"beta": 2.0})]
ALL_CONFIGS = [(n, {}) for n in NAMES] + PARAMETRIZED


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
@pytest.mark.parametrize(("name", "params"), ALL_CONFIGS)
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


@pytest.mark.parametrize(("name", "params"), ALL_CONFIGS)
def test_hand_written_derivative_passes_gradcheck(name, params):
    act = get_activation(name, **params)
    x = torch.cat([torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 4,
                   torch.tensor([-30.0, -8.0, 8.0, 30.0], dtype=torch.float64)])
    assert torch.autograd.gradcheck(act, (x.requires_grad_(),))


@pytest.mark.parametrize("name", NAMES)
def test_autograd_records_one_step_per_activation(name):
    x = torch.randn(5, requires_grad=True)
    y = get_activation(name)(x)
    assert type(y.grad_fn).__name__ == "_HandDerivedFunctionBackward"
    assert [type(fn).__name__ for fn, _ in y.grad_fn.next_functions if fn is not None] == ["AccumulateGrad"]


@pytest.mark.parametrize("name", NAMES)
def test_inputs_gradients_and_saved_tensors_are_left_intact(name):
    x = torch.linspace(-6, 6, 101, requires_grad=True)
    x_before = x.detach().clone()
    upstream = torch.linspace(-1, 1, 101)
    y = get_activation(name)(x)
    (first,) = torch.autograd.grad(y, x, upstream, retain_graph=True)
    (second,) = torch.autograd.grad(y, x, upstream)
    assert torch.equal(x.detach(), x_before) and torch.equal(upstream, torch.linspace(-1, 1, 101))
    assert torch.equal(first, second)


def test_second_derivatives_are_refused_rather_than_wrong():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(get_activation("swish")(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(grad.sum(), x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("name", "params"), ALL_CONFIGS)
def test_half_precision_matches_torch_in_float32(name, params, dtype):
    act = get_activation(name, **params)
    x = torch.cat([torch.linspace(-20, 20, 4001), torch.tensor([-1e4, 0.0, 1e4])]).to(dtype)
    y, grad = value_and_grad(act, x)
    assert y.dtype == grad.dtype == dtype
    y_ref, grad_ref = value_and_grad(act.builtin(), x.float())
    torch.testing.assert_close(y.float(), y_ref, **HALF_TOLERANCE[dtype])
    torch.testing.assert_close(grad.float(), grad_ref, **HALF_TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64, torch.bool])
@pytest.mark.parametrize("name", NAMES)
def test_integer_inputs_are_computed_in_floating_point(name, dtype):
    act = get_activation(name)
    x = torch.tensor([0, 1, 3, 200]).to(dtype)
    y = act(x)
    assert y.dtype == torch.get_default_dtype()
    torch.testing.assert_close(y, act.builtin()(x.to(torch.get_default_dtype())))


def test_sigmoid_and_tanh_of_a_byte():
    three = torch.tensor([3], dtype=torch.uint8)
    assert get_activation("sigmoid")(three).item() == pytest.approx(0.952574, abs=1e-6)
    assert get_activation("tanh")(three).item() == pytest.approx(0.995055, abs=1e-6)


def test_relu_of_infinities():
    x = torch.tensor([-float("inf"), float("inf")], requires_grad=True)
    y, grad = value_and_grad(get_activation("relu"), x)
    assert y.tolist() == [0.0, float("inf")] and grad.tolist() == [0.0, 1.0]


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


@pytest.mark.parametrize(("name", "key", "value"), [("softplus", "beta", 1e300), ("softplus", "beta", 1e-300),
                                                    ("elu", "alpha", 1e300), ("leakyrelu", "alpha", 2.0)])
def test_parameters_beyond_their_bounds_are_refused(name, key, value):
    with pytest.raises(ValueError, match=f"parameter {key} must lie between"):
        get_activation(name, **{key: value})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "key"), [("leakyrelu", "alpha"), ("elu", "alpha"), ("softplus", "beta")])
def test_no_nan_or_inf_at_the_parameter_bounds(name, key, dtype):
    x = torch.tensor([-1e4, -1.0, 0.0, 1.0, 1e4], dtype=dtype)
    for value in act_fn_by_name[name].params[key].bounds:
        y, grad = value_and_grad(get_activation(name, **{key: value}), x)
        assert torch.isfinite(y).all() and torch.isfinite(grad).all(), (value, y, grad)


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
        r"$f(x) = x^2$"
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
        r"$f(x) = x^2$"
        def forward(self, x):
            return x * x

    assert register_activation(Square) is act_fn_by_name["square"]

    class ReLU(ActivationFunction):
        r"$f(x) = \max(x, 0)$"
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


def test_properties_print_no_negative_zero():
    from actlab.activations import activation_properties

    assert activation_properties(get_activation("relu"))["range on [-20, 20]"] == "[0, 20]"


def test_an_activation_without_its_formula_is_not_registered():
    from actlab.activations import ActivationFunction, act_fn_by_name, register_activation

    class Nameless(ActivationFunction):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="Nameless needs a docstring that gives its formula"):
        register_activation(Nameless)
    assert "nameless" not in act_fn_by_name
