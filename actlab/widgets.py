"""Interactive controls that connect the computations to the plots; they compute and draw nothing themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from actlab import plotting
from actlab.activations import act_fn_by_name, activation_curve, get_activation
from actlab.gradients import INITS, fresh_network, gradient_overview, weight_gradients


class PlotWidget:
    """A row of controls above an Output that redraws in place whenever a control changes.

    ``data`` holds what was last computed and ``figure`` what was last drawn, so tests can
    change a control's value and check that both followed.
    """

    def __init__(self, controls: Sequence[w.Widget]) -> None:
        self.output = w.Output()
        self.controls = w.HBox(list(controls), layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([self.controls, self.output])
        self.data: object = None
        self.figure: Figure | None = None
        for control in controls:
            control.observe(self._on_change, names="value")

    def compute(self) -> object:
        raise NotImplementedError

    def draw(self, data: object) -> Figure:
        raise NotImplementedError

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute, redraw, and replace the figure in the Output."""
        self.data = self.compute()
        self.figure = self.draw(self.data)
        with self.output:
            clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)

    def _ipython_display_(self) -> None:
        display(self.widget)


def _activation_dropdown(value: str) -> w.Dropdown:
    options = list(act_fn_by_name)
    return w.Dropdown(options=options, value=value if value in options else options[0], description="activation")


class ActivationExplorer(PlotWidget):
    """Pick an activation and its parameters, see the function and its derivative, optionally against torch's."""

    def __init__(self, activation: str = "relu", x_range: tuple[float, float] = (-5.0, 5.0)) -> None:
        self.activation = _activation_dropdown(activation)
        self.x_range = w.FloatRangeSlider(value=x_range, min=-10, max=10, step=0.5, description="x range")
        self.compare = w.Checkbox(value=False, description="overlay torch's built-in")
        self.param_box = w.VBox()
        self.sliders: dict[str, w.FloatSlider] = {}
        super().__init__([self.activation, self.x_range, self.compare])
        self.widget.children = (self.controls, self.param_box, self.output)
        self._make_sliders()
        self.update()

    def _make_sliders(self) -> None:
        spec = act_fn_by_name[self.activation.value].params
        self.sliders = {
            key: w.FloatSlider(value=p.default, min=p.low, max=p.high, step=(p.high - p.low) / 100, description=key)
            for key, p in spec.items()
        }
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        self.param_box.children = tuple(self.sliders.values())

    def _on_change(self, change: dict) -> None:
        if change["owner"] is self.activation:
            self._make_sliders()
        self.update()

    def compute(self) -> dict:
        act_fn = get_activation(self.activation.value, **{k: s.value for k, s in self.sliders.items()})
        x_min, x_max = self.x_range.value
        builtin = act_fn.builtin() if self.compare.value else None
        return {
            "curve": activation_curve(act_fn, x_min, x_max),
            "builtin": activation_curve(builtin, x_min, x_max, name="torch") if builtin else None,
        }

    def draw(self, data: dict) -> Figure:
        return plotting.plot_activation(data["curve"], data["builtin"])


class GradientExplorer(PlotWidget):
    """Pick an activation, see the gradient histograms of a freshly initialized network."""

    def __init__(self, imgs: torch.Tensor, labels: torch.Tensor, activation: str = "sigmoid") -> None:
        self.imgs, self.labels = imgs, labels
        self.activation = _activation_dropdown(activation)
        super().__init__([self.activation])
        self.update()

    def compute(self) -> dict:
        net = fresh_network(self.activation.value).to(self.imgs.device)
        return weight_gradients(net, self.imgs, self.labels)

    def draw(self, data: dict) -> Figure:
        index = list(act_fn_by_name).index(self.activation.value)
        return plotting.plot_gradient_histograms(data, self.activation.value, color=f"C{index}")


class DepthExplorer(PlotWidget):
    """Pick the number of hidden layers, see every activation's gradient scale layer by layer."""

    def __init__(self, imgs: torch.Tensor, labels: torch.Tensor, depth: int = 4, width: int = 256,
                 activations: Sequence[str] | None = None) -> None:
        self.imgs, self.labels, self.width = imgs, labels, width
        self.names = list(activations or act_fn_by_name)
        self.depth = w.IntSlider(value=depth, min=1, max=16, description="hidden layers")
        self.init = w.Dropdown(options=[(text, key) for key, text in INITS.items()], value="default",
                               description="init", layout=w.Layout(width="420px"))
        super().__init__([self.depth, self.init])
        self.update()

    def compute(self) -> dict[str, list[float]]:
        return gradient_overview(self.names, self.imgs, self.labels, [self.width] * self.depth.value,
                                 init=self.init.value)

    def draw(self, data: dict[str, list[float]]) -> Figure:
        return plotting.plot_gradient_overview(
            data, f"Gradient scale per layer: {self.depth.value} hidden layers of {self.width}, {self.init.value} init")


class CurveChooser(PlotWidget):
    """Tick which trained models' validation curves to overlay."""

    def __init__(self, histories: Mapping[str, object], selected: Sequence[str] | None = None) -> None:
        self.histories = dict(histories)
        chosen = set(selected or self.histories)
        self.boxes = {name: w.Checkbox(value=name in chosen, description=name, indent=False,
                                       layout=w.Layout(width="auto")) for name in self.histories}
        super().__init__(list(self.boxes.values()))
        self.update()

    def compute(self) -> dict[str, object]:
        return {name: self.histories[name] for name, box in self.boxes.items() if box.value}

    def draw(self, data: dict[str, object]) -> Figure:
        return plotting.plot_validation_curves(data)

