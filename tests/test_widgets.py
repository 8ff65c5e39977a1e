import matplotlib
import pytest
import torch

from actlab.activations import ActivationFunction, Param, act_fn_by_name, get_activation, register_activation
from actlab.gradients import first_batch
from actlab.training import History
from actlab.widgets import ActivationExplorer, CurveChooser, DepthExplorer, GradientExplorer, PhaseExplorer

matplotlib.use("Agg")


def test_explorer_follows_the_dropdown():
    explorer = ActivationExplorer("relu")
    assert explorer.data["curve"].name == "ReLU" and explorer.sliders == {}
    first_figure = explorer.figure
    explorer.activation.value = "sigmoid"
    assert explorer.data["curve"].name == "Sigmoid"
    assert explorer.figure is not first_figure
    assert explorer.figure.axes[0].get_title() == "Sigmoid: function"


def test_parameter_sliders_appear_and_act():
    explorer = ActivationExplorer("relu")
    explorer.activation.value = "leakyrelu"
    assert list(explorer.sliders) == ["alpha"] and explorer.param_box.children == (explorer.sliders["alpha"],)
    x, y = explorer.data["curve"].x, explorer.data["curve"].y
    assert torch.allclose(y[0], 0.1 * x[0])
    explorer.sliders["alpha"].value = 0.5
    assert torch.allclose(explorer.data["curve"].y[0], 0.5 * x[0])
    explorer.activation.value = "tanh"
    assert explorer.sliders == {} and explorer.param_box.children == ()


def test_x_range_and_builtin_overlay():
    explorer = ActivationExplorer("gelu")
    assert explorer.data["builtin"] is None
    explorer.x_range.value = (-2.0, 3.0)
    assert explorer.data["curve"].x[0] == -2 and explorer.data["curve"].x[-1] == 3
    explorer.compare.value = True
    builtin = explorer.data["builtin"]
    torch.testing.assert_close(builtin.y, explorer.data["curve"].y)
    assert any(line.get_label() == "torch built-in" for line in explorer.figure.axes[0].lines)


@pytest.fixture
def cube():
    @register_activation
    class Cube(ActivationFunction):
        r"$f(x) = x^3$"
        params = {"gain": Param(1.0, 0.0, 2.0)}

        def forward(self, x):
            return self.gain * x**3

    yield Cube
    del act_fn_by_name["cube"]


def test_registered_activation_appears_in_the_explorer(cube):
    explorer = ActivationExplorer()
    assert "cube" in explorer.activation.options
    explorer.activation.value = "cube"
    assert list(explorer.sliders) == ["gain"]
    explorer.sliders["gain"].value = 2.0
    curve = explorer.data["curve"]
    torch.testing.assert_close(curve.dy, 6 * curve.x**2)
    assert explorer.compare.disabled and "no built-in" in explorer.compare.description
    explorer.compare.value = True
    assert explorer.data["builtin"] is None
    explorer.activation.value = "tanh"
    assert not explorer.compare.disabled


@pytest.fixture(scope="module")
def batch(small_data):
    return first_batch(small_data)


def test_gradient_explorer_follows_the_dropdown(batch):
    explorer = GradientExplorer(*batch, activation="sigmoid")
    before = explorer.data["layers.0.weight"].std()
    explorer.activation.value = "relu"
    assert explorer.data["layers.0.weight"].std() > 10 * before
    assert "relu" in explorer.figure.texts[0].get_text()


def test_depth_explorer_follows_the_slider(batch):
    explorer = DepthExplorer(*batch, depth=2, width=32, activations=["sigmoid", "relu"])
    assert len(explorer.data["sigmoid"]) == 3
    explorer.depth.value = 6
    assert len(explorer.data["relu"]) == 7
    assert "6 hidden layers" in explorer.figure.axes[0].get_title()
    default_input = explorer.data["relu"][0]
    explorer.init.value = "he"
    assert explorer.data["relu"][0] > 10 * default_input
    assert "he init" in explorer.figure.axes[0].get_title()


def test_curve_chooser_follows_the_boxes():
    histories = {name: History(name, val_acc=[0.5, 0.6], best_epoch=2) for name in ("relu", "tanh", "elu")}
    chooser = CurveChooser(histories, selected=["relu"])
    assert list(chooser.data) == ["relu"]
    chooser.boxes["elu"].value = True
    assert list(chooser.data) == ["relu", "elu"]
    assert [line.get_label() for line in chooser.figure.axes[0].lines][:2] == ["relu", "elu"]
    elu_color = chooser.figure.axes[0].lines[1].get_color()
    chooser.boxes["relu"].value = False
    first = chooser.figure.axes[0].lines[0]
    assert first.get_label() == "elu" and first.get_color() == elu_color


def test_every_activation_keeps_one_colour_from_a_colour_blind_safe_palette():
    from actlab import plotting

    colours = [plotting.activation_style(name)["color"] for name in act_fn_by_name]
    assert len(set(colours)) == len(colours) and set(colours) <= set(plotting.PALETTE.values())
    assert plotting.activation_style("LeakyReLU, alpha = 0.1") == plotting.activation_style("leakyrelu")


def test_a_state_seen_before_comes_from_the_cache(monkeypatch):
    explorer = ActivationExplorer("relu")
    explorer.activation.value = "tanh"
    calls = []
    monkeypatch.setattr(explorer, "compute", lambda: calls.append(1))
    explorer.activation.value = "relu"
    assert calls == [] and explorer.data["curve"].name == "ReLU"
    assert bytes(explorer.image.value).startswith(b"\x89PNG")


def test_zero_width_range_is_reported_not_raised():
    explorer = ActivationExplorer("relu")
    explorer.x_range.value = (1.0, 1.0)
    assert "single point" in explorer.error and "single point" in explorer.status.value
    assert explorer.figure is None and explorer.image.layout.display == "none"
    explorer.x_range.value = (-1.0, 1.0)
    assert explorer.error is None and explorer.image.layout.display is None


def test_an_activation_that_raises_is_reported_and_hides_the_old_plot():
    @register_activation
    class Broken(ActivationFunction):
        r"$f(x)$ raises"
        def forward(self, x):
            raise RuntimeError("not written yet")

    try:
        explorer = ActivationExplorer("relu")
        explorer.activation.value = "broken"
        assert "not written yet" in explorer.status.value and explorer.figure is None
        assert explorer.image.layout.display == "none"
    finally:
        del act_fn_by_name["broken"]


def test_an_activation_registered_later_appears_in_an_existing_dropdown(batch):
    explorer = ActivationExplorer("relu")
    gradient_explorer = GradientExplorer(*batch, activation="relu")

    @register_activation
    class Late(ActivationFunction):
        r"$f(x) = x$"
        def forward(self, x):
            return x * torch.sigmoid(2 * x)

    try:
        explorer.activation.value = "elu"
        assert "late" in explorer.activation.options
        assert explorer.activation.value == "elu" and explorer.data["curve"].name == "ELU"
        assert list(explorer.sliders) == ["alpha"]
        gradient_explorer.update()
        assert "late" in gradient_explorer.activation.options
    finally:
        del act_fn_by_name["late"]


def test_text_fallback_says_how_to_use_the_widget():
    bundle = ActivationExplorer("relu")._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("ActivationExplorer: pick an activation")
    assert "VBox" not in bundle["text/plain"]


def test_statistics_explorer_follows_network_layer_and_epoch(small_data, tmp_path):
    from actlab.activation_stats import monitor
    from actlab.lab.train import train_model
    from actlab.network import BaseNetwork
    from actlab.settings import set_seed
    from actlab.widgets import StatisticsExplorer

    histories = {}
    for name, sizes in (("relu", [32, 16, 8]), ("sigmoid", [16])):
        set_seed(0)
        net = BaseNetwork(get_activation(name), hidden_sizes=sizes)
        histories[name] = train_model(net, name, max_epochs=2, model_path=tmp_path,
                                      data=small_data, monitor=monitor(small_data.val.images[:64]), progress=False)
    explorer = StatisticsExplorer({**histories, "untracked": History("untracked")}, network="relu")
    assert list(explorer.network.options) == ["relu", "sigmoid"]
    assert (explorer.layer.max, explorer.epoch.max) == (3, 2)
    explorer.layer.value, explorer.epoch.value = 3, 2
    assert explorer.data.layer == 3 and explorer.data.units == 8
    assert "relu, epoch 2" in explorer.figure.axes[0].get_title()
    explorer.network.value = "sigmoid"
    assert explorer.layer.max == 1 and explorer.layer.value == 1
    assert explorer.data.activation == "Sigmoid" and explorer.error is None


def test_experiment_explorer_filters_activations_and_switches_experiments():
    from actlab.widgets import ExperimentExplorer

    def rows(setting, values):
        return [{"activation": name, setting: v, "seed": 0, "test_acc": 0.5 + 0.01 * i, "init": "he"}
                for i, v in enumerate(values) for name in ("relu", "tanh")]

    explorer = ExperimentExplorer({"depth": {"rows": rows("depth", [2, 4]), "setting": "depth", "panels": "init"},
                                   "lr": {"rows": rows("lr", [0.01, 0.1]), "setting": "lr", "log_x": True}})
    assert len(explorer.data) == 4 and explorer.figure.axes[0].get_title() == "init = he"
    explorer.boxes["tanh"].value = False
    assert {row["activation"] for row in explorer.data} == {"relu"}
    explorer.experiment.value = "lr"
    assert explorer.figure.axes[0].get_xscale() == "log"
    explorer.boxes["relu"].value = False
    assert explorer.error is None and explorer.data == []
    assert "Tick at least one activation" in explorer.figure.axes[0].texts[0].get_text()


def test_phase_explorer_follows_its_controls(cube):
    explorer = PhaseExplorer("tanh", points={"tanh": {"critical": (1.76, 0.05)}})
    chi = explorer.data["chi"]
    assert chi.shape == (16, 32) and explorer.data["sigma_w2"][-1] == 4.0
    assert chi[0, 0] < 1 < chi[0, -1]
    assert any(text.get_text() == "critical" for text in explorer.figure.axes[0].get_legend().get_texts())
    explorer.activation.value = "relu"
    assert explorer.data["chi"] == pytest.approx(explorer.data["sigma_w2"][None, :] / 2 + 0 * explorer.data["chi"])
    explorer.largest.value = 128.0
    explorer.activation.value = "sigmoid"
    plain = explorer.data["chi"]
    explorer.centred.value = True
    assert (explorer.data["chi"] != plain).any() and "centred" in explorer.figure.axes[0].get_title()
    explorer.activation.value = "cube"
    assert explorer.error is None and explorer.data["chi"].shape == (16, 32)
    with pytest.raises(ValueError, match="largest must be one of"):
        PhaseExplorer(largest=5.0)
