"""Interactive controls that connect the computations to the plots; they compute and draw nothing themselves."""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from html import escape
from typing import Any, cast

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from typing_extensions import override

from actlab import plotting, theory
from actlab.activation_stats import LayerStatistics, recorded_layer
from actlab.activations import act_fn_by_name, activation_curve, get_activation
from actlab.gradients import INITS, fresh_network, gradient_overview, weight_gradients
from actlab.support import threads
from actlab.training import History

CACHE_SIZE = 64
"""How many computed states a widget keeps, so that going back to one is instant."""

BUSY = "<span style='color: #777'>computing…</span>"
LABEL = {"description_width": "initial"}
"""Labels as wide as their text, never cut off."""
INIT_LABELS = {"default": "PyTorch's default", "he": "He (Kaiming)", "glorot": "Glorot (Xavier) with gain"}
"""Short names of the initializations; ``actlab.network.INITS`` gives their formulas."""
RUN_IT = "Run the notebook to use it; the static figure beside it shows the states that the text discusses."


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=plotting.png_dpi(), bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


class PlotWidget:
    """A row of controls above an image that is redrawn whenever a control changes.

    Each state of the controls is computed once and cached. ``data`` holds what was last computed
    and ``figure`` what was last drawn, so tests can change a control's value and check that both
    followed. An error in a computation is shown under the controls, and the stale plot is hidden.
    """

    usage = "Run this cell in Jupyter to get the controls."
    """What the widget is and how to use it, shown where widgets cannot be displayed."""

    def __init__(self, controls: Sequence[w.Widget]) -> None:
        self.status = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", width="auto", height="auto",
                                                           align_self="flex-start", object_fit="contain"))
        self.controls = w.HBox(list(controls), layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([self.controls, self.status, self.image])
        self.data: object = None
        self.figure: Figure | None = None
        self.error: str | None = None
        self._cache: OrderedDict[Hashable, tuple[object, Figure, bytes]] = OrderedDict()
        self._quiet = False
        for control in controls:
            control.observe(self._on_change, names="value")

    def key(self) -> Hashable:
        """What identifies the current state of the controls."""
        raise NotImplementedError

    def compute(self) -> Any:
        """The data that the current state of the controls shows."""
        raise NotImplementedError

    def draw(self, data: Any) -> Figure:
        """The figure of ``data``."""
        raise NotImplementedError

    def _on_change(self, _change: dict) -> None:
        if not self._quiet:
            self.update()

    def _sync_options(self, dropdown: w.Dropdown) -> None:
        """Offer every activation registered so far, including those registered after the widget was made."""
        options = tuple(act_fn_by_name)
        if tuple(dropdown.options) == options:
            return
        value = dropdown.value
        self._quiet = True
        try:
            dropdown.options = options
            dropdown.value = value if value in options else options[0]
        finally:
            self._quiet = False

    def update(self) -> None:
        """Show the plot of the current state: from the cache, or computed and drawn now.

        A widget with an ``activation`` dropdown first offers every activation registered so far; a
        computation first sizes torch's threads to the cores free now (``actlab.support.threads``).
        """
        dropdown = getattr(self, "activation", None)
        if isinstance(dropdown, w.Dropdown):
            self._sync_options(dropdown)
        key = self.key()
        if key not in self._cache:
            self.status.value = BUSY
            try:
                threads.size_threads()
                data = self.compute()
                figure = self.draw(data)
            except Exception as err:  # a student's activation may raise anything
                self._show_error(err)
                return
            self._cache[key] = (data, figure, _png(figure))
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        self.data, self.figure, png = self._cache[key]
        self.error = None
        self.image.value = png
        self.image.layout.display = None
        self.status.value = ""

    def _show_error(self, err: Exception) -> None:
        self.error = f"{type(err).__name__}: {err}"
        self.data = self.figure = None
        self.image.layout.display = "none"
        self.status.value = f"<span style='color: #b00'>Cannot draw this: {escape(self.error)}</span>"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"{type(self).__name__}: {self.usage}"
        return bundle


def _check_batch(imgs: object, labels: object) -> None:
    if not isinstance(imgs, torch.Tensor) or not imgs.is_floating_point() or not len(imgs):
        raise ValueError(f"imgs must be a non-empty float tensor of normalized images, not {type(imgs).__name__}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(imgs),):
        raise ValueError(f"labels must be a tensor of one label per image ({len(imgs)}), not {type(labels).__name__}")


def _check_histories(histories: object) -> None:
    if not isinstance(histories, Mapping) or not histories or not all(
            isinstance(h, History) for h in histories.values()):
        raise ValueError(f"histories must map names to at least one History, not {type(histories).__name__}")


def _activation_dropdown(value: str) -> w.Dropdown:
    options = list(act_fn_by_name)
    return w.Dropdown(options=options, value=value if value in options else options[0], description="activation",
                      style=LABEL)


class ActivationExplorer(PlotWidget):
    """Pick an activation and its parameters, see the function and its derivative, optionally against torch's."""

    usage = ("pick an activation in the dropdown, move its parameters and the x range, and tick 'overlay torch's "
             "built-in' to draw torch's own version on top. " + RUN_IT)

    def __init__(self, activation: str = "relu", x_range: tuple[float, float] = (-5.0, 5.0)) -> None:
        self.activation = _activation_dropdown(activation)
        self.x_range = w.FloatRangeSlider(value=x_range, min=-10, max=10, step=0.5, description="x range",
                                          continuous_update=False, readout_format=".1f", style=LABEL)
        self.compare = w.Checkbox(value=False, description="overlay torch's built-in", indent=False,
                                  layout=w.Layout(width="auto", margin="0 0 0 1em"))
        self.param_box = w.VBox()
        self.sliders: dict[str, w.FloatSlider] = {}
        super().__init__([self.activation, self.x_range, self.compare])
        self.widget.children = (self.controls, self.param_box, self.status, self.image)
        self._make_sliders()
        self.update()

    def _make_sliders(self) -> None:
        spec = act_fn_by_name[self.activation.value].params
        self.sliders = {
            key: w.FloatSlider(value=p.default, min=p.low, max=p.high, step=(p.high - p.low) / 100, description=key,
                               continuous_update=False, style=LABEL)
            for key, p in spec.items()
        }
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        self.param_box.children = tuple(self.sliders.values())

    def _on_change(self, change: dict) -> None:
        if self._quiet:
            return
        if change["owner"] is self.activation:
            self._make_sliders()
        self.update()

    @override
    def update(self) -> None:
        self._sync_options(self.activation)
        self._fit_builtin()
        super().update()

    def _fit_builtin(self) -> None:
        """Offer the overlay only where torch has a built-in version of the activation."""
        has_builtin = get_activation(self.activation.value).builtin() is not None
        self.compare.disabled = not has_builtin
        self.compare.description = "overlay torch's built-in" if has_builtin else "torch has no built-in version"
        if not has_builtin and self.compare.value:
            self._quiet = True
            try:
                self.compare.value = False
            finally:
                self._quiet = False

    @override
    def key(self) -> Hashable:
        params = tuple((k, s.value) for k, s in self.sliders.items())
        return act_fn_by_name[self.activation.value], params, self.x_range.value, self.compare.value

    @override
    def compute(self) -> dict:
        act_fn = get_activation(self.activation.value, **{k: s.value for k, s in self.sliders.items()})
        x_min, x_max = self.x_range.value
        if x_min == x_max:
            raise ValueError(f"the x range is a single point ({x_min:g}); drag its ends apart.")
        builtin = act_fn.builtin() if self.compare.value else None
        return {
            "curve": activation_curve(act_fn, x_min, x_max),
            "builtin": activation_curve(builtin, x_min, x_max, name="torch") if builtin else None,
        }

    @override
    def draw(self, data: dict) -> Figure:
        return plotting.plot_activation(data["curve"], data["builtin"])


class GradientExplorer(PlotWidget):
    """Pick an activation, see the gradient histograms of a freshly initialized network."""

    usage = ("pick an activation in the dropdown to see the gradient histograms of its freshly initialized "
             "network. " + RUN_IT)

    def __init__(self, imgs: torch.Tensor, labels: torch.Tensor, activation: str = "sigmoid") -> None:
        _check_batch(imgs, labels)
        self.imgs, self.labels = imgs, labels
        self.activation = _activation_dropdown(activation)
        super().__init__([self.activation])
        self.update()

    @override
    def key(self) -> Hashable:
        return cast(Hashable, act_fn_by_name[self.activation.value])

    @override
    def compute(self) -> dict:
        net = fresh_network(self.activation.value).to(self.imgs.device)
        return weight_gradients(net, self.imgs, self.labels)

    @override
    def draw(self, data: dict) -> Figure:
        return plotting.plot_gradient_histograms(data, self.activation.value)


class DepthExplorer(PlotWidget):
    """Pick the number of hidden layers and the initialization, see every activation's gradient scale per layer."""

    usage = ("drag 'hidden layers' and pick an initialization to see how the gradient reaching each layer "
             "changes with depth. " + RUN_IT)

    def __init__(self, imgs: torch.Tensor, labels: torch.Tensor, depth: int = 4, width: int = 256,
                 activations: Sequence[str] | None = None) -> None:
        _check_batch(imgs, labels)
        self.imgs, self.labels, self.width = imgs, labels, width
        self.names = list(activations or act_fn_by_name)
        self.depth = w.IntSlider(value=depth, min=1, max=16, description="hidden layers", continuous_update=False,
                                 style=LABEL)
        self.init = w.Dropdown(options=[(INIT_LABELS[key], key) for key in INITS], value="default",
                               description="initialization", style=LABEL)
        super().__init__([self.depth, self.init])
        self.update()

    @override
    def key(self) -> Hashable:
        return self.depth.value, self.init.value

    @override
    def compute(self) -> dict[str, list[float]]:
        return gradient_overview(self.names, self.imgs, self.labels, [self.width] * self.depth.value,
                                 init=self.init.value)

    @override
    def draw(self, data: dict[str, list[float]]) -> Figure:
        return plotting.plot_gradient_overview(
            data, f"Gradient scale per layer: {self.depth.value} hidden layers of {self.width}, {self.init.value} init")


class CurveChooser(PlotWidget):
    """Tick which trained models' validation curves to overlay."""

    usage = "tick the models whose validation curves to overlay. " + RUN_IT

    def __init__(self, histories: Mapping[str, History], selected: Sequence[str] | None = None) -> None:
        _check_histories(histories)
        self.histories = dict(histories)
        chosen = set(selected or self.histories)
        self.boxes = {name: w.Checkbox(value=name in chosen, description=name, indent=False,
                                       layout=w.Layout(width="auto")) for name in self.histories}
        super().__init__(list(self.boxes.values()))
        self.update()

    @override
    def key(self) -> Hashable:
        return tuple(box.value for box in self.boxes.values())

    @override
    def compute(self) -> dict[str, History]:
        return {name: self.histories[name] for name, box in self.boxes.items() if box.value}

    @override
    def draw(self, data: dict[str, History]) -> Figure:
        return plotting.plot_validation_curves(data)


class StatisticsExplorer(PlotWidget):
    """Pick a trained network, a hidden layer and an epoch, see that layer's outputs as recorded during training."""

    usage = ("pick a network, a hidden layer and an epoch (0: before training) to see the distribution of that "
             "layer's outputs as recorded during training. " + RUN_IT)

    def __init__(self, histories: Mapping[str, History], network: str | None = None) -> None:
        _check_histories(histories)
        self.histories = {name: h for name, h in histories.items() if h.monitor}
        if not self.histories:
            raise ValueError("None of these histories holds recorded statistics (train with monitor=...).")
        names = list(self.histories)
        self.network = w.Dropdown(options=names, value=network if network in names else names[0],
                                  description="network")
        self.layer = w.IntSlider(value=1, min=1, max=1, description="layer", continuous_update=False)
        self.epoch = w.IntSlider(value=0, min=0, max=0, description="epoch", continuous_update=False)
        super().__init__([self.network, self.layer, self.epoch])
        self._fit_sliders()
        self.update()

    def _fit_sliders(self) -> None:
        monitor = self.histories[self.network.value].monitor
        with self.layer.hold_trait_notifications(), self.epoch.hold_trait_notifications():
            self.layer.max = len(monitor[0]["layers"])
            self.epoch.max = len(monitor) - 1

    def _on_change(self, change: dict) -> None:
        if change["owner"] is self.network:
            self._fit_sliders()
        self.update()

    @override
    def key(self) -> Hashable:
        return self.network.value, self.layer.value, self.epoch.value

    @override
    def compute(self) -> LayerStatistics:
        return recorded_layer(self.histories[self.network.value].monitor, self.epoch.value, self.layer.value)

    @override
    def draw(self, data: LayerStatistics) -> Figure:
        return plotting.plot_activation_distributions({f"{self.network.value}, epoch {self.epoch.value}": [data]})


class ExperimentExplorer(PlotWidget):
    """Pick an experiment and the activations to show, see test accuracy against the setting it varies."""

    usage = "pick an experiment (the setting it varies) and tick the activations to show. " + RUN_IT

    def __init__(self, experiments: Mapping[str, Mapping]) -> None:
        """``experiments``: name to ``rows`` (``compare.experiment_rows``) and ``plot_accuracy_by_setting`` options."""
        if not isinstance(experiments, Mapping) or not experiments or not all(
                isinstance(options, Mapping) and options.get("rows") for options in experiments.values()):
            raise ValueError("experiments must map at least one name to options with a non-empty list of rows")
        self.experiments = {name: dict(options) for name, options in experiments.items()}
        self.experiment = w.Dropdown(options=list(self.experiments), description="experiment")
        names = dict.fromkeys(row["activation"] for options in self.experiments.values() for row in options["rows"])
        self.boxes = {name: w.Checkbox(value=True, description=name, indent=False, layout=w.Layout(width="auto"))
                      for name in names}
        super().__init__([self.experiment, *self.boxes.values()])
        self.update()

    @override
    def update(self) -> None:
        present = {row["activation"] for row in self.experiments[self.experiment.value]["rows"]}
        for name, box in self.boxes.items():
            box.layout.display = None if name in present else "none"
        super().update()

    @override
    def key(self) -> Hashable:
        return self.experiment.value, tuple(box.value for box in self.boxes.values())

    @override
    def compute(self) -> list[dict]:
        ticked = {name for name, box in self.boxes.items() if box.value}
        rows = [row for row in self.experiments[self.experiment.value]["rows"] if row["activation"] in ticked]
        return rows

    @override
    def draw(self, data: list[dict]) -> Figure:
        if not data:
            return plotting.plot_message("Tick at least one activation to see its test accuracy.")
        options = {key: value for key, value in self.experiments[self.experiment.value].items() if key != "rows"}
        return plotting.plot_accuracy_by_setting(data, **options)


class PhaseExplorer(PlotWidget):
    """Pick an activation, whether the network cancels its mean, and the range of sigma_w^2: see its phase diagram."""

    usage = ("pick an activation, tick 'cancel the mean' for a centred network, and choose how far sigma_w^2 goes, "
             "to see where chi_1 = 1 (the critical line) lies for it. " + RUN_IT)

    RANGES = (4.0, 32.0, 128.0)
    """The largest sigma_w^2 a diagram may show: tanh and ReLU are critical below 4, sigmoid far above."""

    def __init__(self, activation: str = "tanh", centred: bool = False, largest: float = 4.0,
                 points: Mapping[str, Mapping[str, tuple[float, float]]] | None = None) -> None:
        """``points[activation]`` marks named initializations at their (sigma_w^2, sigma_b^2) on that diagram."""
        if largest not in self.RANGES:
            raise ValueError(f"largest must be one of {self.RANGES}, not {largest!r}")
        self.points = dict(points or {})
        self.activation = _activation_dropdown(activation)
        self.centred = w.Checkbox(value=centred, description="cancel the mean (centred)", indent=False,
                                  layout=w.Layout(width="auto"))
        self.largest = w.Dropdown(options=[(f"sigma_w^2 up to {v:g}", v) for v in self.RANGES], value=largest,
                                  description="range", style=LABEL)
        super().__init__([self.activation, self.centred, self.largest])
        self.update()

    @override
    def key(self) -> Hashable:
        return self.activation.value, self.centred.value, self.largest.value

    @override
    def compute(self) -> dict:
        sigma_w2, sigma_b2 = np.linspace(self.largest.value / 32, self.largest.value, 32), np.linspace(0, 0.5, 16)
        chi = theory.chi_1(self.activation.value, *np.meshgrid(sigma_w2, sigma_b2), centred=self.centred.value)
        return {"sigma_w2": sigma_w2, "sigma_b2": sigma_b2, "chi": chi}

    @override
    def draw(self, data: dict) -> Figure:
        centred = ", centred" if self.centred.value else ""
        return plotting.plot_phase_diagram(data["sigma_w2"], data["sigma_b2"], data["chi"],
                                           self.points.get(self.activation.value),
                                           title=f"{self.activation.value}{centred}: order and chaos at initialization")
