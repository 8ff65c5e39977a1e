"""Every figure of the notebooks. Each function takes plain data and returns a matplotlib Figure."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from actlab.activations import Curve, act_fn_by_name

if TYPE_CHECKING:
    from actlab.training import History

CHANCE = 0.1
WIDTH = 10.0
"""The widest figure, in inches: JupyterLab's notebook column at 100% zoom shows it unscaled."""

PALETTE = {
    "sigmoid": "#880011", "tanh": "#3311CC", "relu": "#669988", "leakyrelu": "#AA77DD", "elu": "#EE5511",
    "swish": "#443344", "gelu": "#AA4422", "mish": "#884477", "softplus": "#776666",
}
"""One colour per built-in activation, in every figure, each at least 3:1 against white (readable on a projector).

The source's six differ by a CIEDE2000 of 20 or more in normal vision and under simulated
protanopia, deuteranopia and tritanopia; the pairs that come closer (the README lists them) differ
in marker and line style (``tests/test_palette.py`` checks both).
"""
EXTRA_COLORS = ("#000000", "#226688", "#667700")
"""Colours of activations you register, in order of registration, then again with other line styles."""
LINE_STYLES = ("-", "--", "-.", (0, (6, 2, 1, 2, 1, 2)))
"""Solid, dashed, dash-dot and dash-dot-dot: dotted lines are kept for reference lines such as chance."""
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h")
_presenting = False


PRESENTATION = {
    "font.size": 14, "axes.titlesize": 15, "axes.labelsize": 14, "xtick.labelsize": 12.5, "ytick.labelsize": 12.5,
    "legend.fontsize": 12, "figure.titlesize": 17, "lines.linewidth": 2.5, "lines.markersize": 8, "figure.dpi": 130,
}
"""What ``presentation()`` changes in matplotlib: larger text, thicker lines, more pixels per inch."""
PNG_DPI = {False: 90, True: 140}
"""Pixels per inch of a widget's picture, normally and for a projector."""


def presentation(on: bool = True) -> None:
    """Make every later figure and widget picture large enough to project (``on=False`` goes back).

    ``ACTLAB_PRESENT=1`` in the environment turns it on in every notebook (``actlab.notebook`` reads it).
    """
    global _presenting
    plt.style.use(PRESENTATION if on else {key: value for key, value in plt.rcParamsDefault.items()
                                            if key in PRESENTATION})
    _presenting = on


def png_dpi() -> int:
    """The pixels per inch of a widget's picture: larger in presentation mode."""
    return PNG_DPI[_presenting]


def _key(name: str) -> str:
    """The activation a label names: ``"LeakyReLU, alpha = 0.1"`` and ``"leakyrelu"`` both name leakyrelu."""
    return name.split(",")[0].strip().lower()


def activation_style(name: str) -> dict:
    """The colour, line style and marker of an activation in every figure (``name`` as listed or as labelled)."""
    key = _key(name)
    names = list(act_fn_by_name)
    index = names.index(key) if key in names else len(names)
    if key in PALETTE:
        color = PALETTE[key]
    else:
        extra = [n for n in names if n not in PALETTE]
        position = extra.index(key) if key in extra else len(extra)
        color = EXTRA_COLORS[position % len(EXTRA_COLORS)]
    return {"color": color, "linestyle": LINE_STYLES[index % len(LINE_STYLES)], "marker": MARKERS[index % len(MARKERS)]}


def series_style(names: Sequence[str], name: str) -> dict:
    """The style of one line among ``names``: the activation's own, or, for other labels (seeds...), a colour each."""
    if _key(name) in act_fn_by_name:
        return activation_style(name)
    index = list(names).index(name)
    return {"color": plt.get_cmap("viridis")(index / max(len(names) - 1, 1) * 0.85),
            "linestyle": LINE_STYLES[index % len(LINE_STYLES)], "marker": MARKERS[index % len(MARKERS)]}


def _grid(n: int, cols: int, width: float = WIDTH / 3, height: float = 2.8):
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * width, rows * height), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def plot_message(text: str) -> Figure:
    """A small figure that only says ``text``: what a widget shows when there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(6, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    return fig


def plot_activation_grid(curves: Sequence[Curve], cols: int = 3, references: Sequence[Curve | None] = ()) -> Figure:
    """The source's grid: one panel per activation with the function and its derivative.

    ``references`` (torch's built-ins, one per curve or None) are drawn dotted on top.
    """
    fig, axes = _grid(len(curves), cols)
    references = list(references) + [None] * (len(curves) - len(references))
    for ax, curve, reference in zip(axes, curves, references):
        color = activation_style(curve.name)["color"]
        ax.plot(curve.x, curve.y, linewidth=2, color=color, label="f(x)")
        ax.plot(curve.x, curve.dy, linewidth=2, linestyle="--", color=color, label="f'(x)")
        if reference is not None:
            ax.plot(reference.x, reference.y, color="black", linestyle=":", linewidth=1.5, label="torch")
            ax.plot(reference.x, reference.dy, color="black", linestyle=":", linewidth=1.5)
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.set(title=curve.name, xlabel="x")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    title = "Activation functions (solid) and their derivatives (dashed)"
    if any(reference is not None for reference in references):
        title += "; torch's built-ins dotted"
    fig.suptitle(title, fontsize=14)
    fig.tight_layout()
    return fig


def plot_derivative_overlay(curves: Sequence[Curve]) -> Figure:
    """All derivatives on one axis: saturation, the sigmoid's 1/4 ceiling and ReLU's zero region side by side."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for curve in curves:
        style = activation_style(curve.name)
        ax.plot(curve.x, curve.dy, linewidth=2, color=style["color"], linestyle=style["linestyle"], label=curve.name)
    ax.axhline(0.25, color="gray", linestyle=":", linewidth=1)
    ax.annotate("sigmoid's maximum slope: 1/4", xy=(curves[0].x[0].item(), 0.25), xytext=(4, 4),
                textcoords="offset points", color="gray")
    ax.axhline(1.0, color="gray", linestyle=":", linewidth=1)
    ax.set(title="Derivatives of the activation functions", xlabel="x", ylabel="f'(x)")
    ax.legend(ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_activation(curve: Curve, reference: Curve | None = None) -> Figure:
    """One activation and its derivative; ``reference`` (torch's built-in) drawn dotted on top."""
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(WIDTH, 3.8))
    color = activation_style(curve.name)["color"]
    ax_f.plot(curve.x, curve.y, linewidth=2.5, color=color, label=f"{curve.name} (actlab)")
    ax_d.plot(curve.x, curve.dy, linewidth=2.5, color=color, linestyle="--", label=f"{curve.name}' (actlab, autograd)")
    if reference is not None:
        ax_f.plot(reference.x, reference.y, color="black", linestyle=":", linewidth=2, label="torch built-in")
        ax_d.plot(reference.x, reference.dy, color="black", linestyle=":", linewidth=2, label="torch built-in")
    for ax, title, ylabel in ((ax_f, "function", "f(x)"), (ax_d, "derivative", "f'(x)")):
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.set(title=f"{curve.name}: {title}", xlabel="x", ylabel=ylabel)
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_examples(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], cols: int = 4) -> Figure:
    """A grid of images, each titled with its class name."""
    fig, axes = _grid(len(images), cols, width=2.2, height=2.4)
    for ax, image, label in zip(axes, images, labels):
        ax.imshow(image.squeeze().cpu().numpy(), cmap="gray_r")
        ax.set_title(class_names[int(label)], fontsize=10)
        ax.axis("off")
    fig.suptitle("FashionMNIST examples", fontsize=14)
    fig.tight_layout()
    return fig


def plot_class_balance(counts: Mapping[str, Sequence[int]], class_names: Sequence[str]) -> Figure:
    """Images per class in each split, as grouped bars."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4))
    width = 0.8 / len(counts)
    positions = np.arange(len(class_names))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(positions + (i - (len(counts) - 1) / 2) * width, values, width, label=split)
    ax.set_xticks(positions, class_names, rotation=30, ha="right")
    ax.set(title="Images per class in each split", ylabel="images")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_pixel_histograms(raw: torch.Tensor, normalized: torch.Tensor) -> Figure:
    """Pixel values before (0-255) and after normalization (-1 to 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    for ax, values, title, xlabel in (
        (axes[0], raw, "raw pixels", "pixel value (0-255)"),
        (axes[1], normalized, "after ToTensor and Normalize(0.5, 0.5)", "pixel value"),
    ):
        ax.hist(values.flatten().float().cpu().numpy(), bins=64, color="C0")
        ax.set(title=title, xlabel=xlabel, ylabel="pixels", yscale="log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _smoothed_density(values: np.ndarray, grid_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian kernel density estimate (Scott's bandwidth), computed on a fine histogram in linear time."""
    counts, edges = np.histogram(values, bins=grid_size)
    step = edges[1] - edges[0]
    bandwidth = values.std() * len(values) ** (-1 / 5)
    offsets = np.arange(-4 * bandwidth, 4 * bandwidth + step, step)
    kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2)
    density = np.convolve(counts, kernel / kernel.sum(), mode="same") / (len(values) * step)
    return (edges[:-1] + edges[1:]) / 2, density


def _scaled(values: np.ndarray) -> tuple[np.ndarray, str]:
    """``values`` in units of a power of ten when they are very small or large, and that unit in words for a label."""
    largest = float(np.abs(values).max()) if values.size else 0.0
    exponent = math.floor(math.log10(largest)) if largest > 0 else 0
    if -2 <= exponent <= 2:
        return values, ""
    return values / 10.0**exponent, f" (x 1e{exponent})"


def plot_gradient_histograms(grads: Mapping[str, np.ndarray], activation: str, color: str | None = None) -> Figure:
    """The source's figure: a histogram with a density curve of the gradient of each weight matrix.

    The curve is a Gaussian kernel density computed in linear time (seaborn's own KDE takes seconds
    on a million gradients); a tiny or huge scale goes into the axis label, not above the axis.
    """
    color = color or activation_style(activation)["color"]
    fig, axes = plt.subplots(1, len(grads), figsize=(min(WIDTH, len(grads) * 2.4), 2.8))
    for ax, (name, raw) in zip(np.atleast_1d(axes), grads.items()):
        values, unit = _scaled(np.asarray(raw, dtype=np.float64))
        sns.histplot(values, bins=30, color=color, alpha=0.6, edgecolor="white", linewidth=0.5, ax=ax)
        if values.std() > 0:
            edges = np.histogram_bin_edges(values, bins=30)
            centres, density = _smoothed_density(values)
            ax.plot(centres, density * len(values) * (edges[1] - edges[0]), color=color, linewidth=1.5)
        ax.set(title=name, xlabel=f"gradient{unit}", ylabel="count" if ax is np.atleast_1d(axes)[0] else "")
    fig.suptitle(f"Gradient distribution per weight matrix, activation {activation}", fontsize=14, y=1.04)
    fig.tight_layout()
    return fig


def plot_gradient_overview(scales: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Gradient scale (standard deviation) of each layer, on a log axis, one line per activation."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, values in scales.items():
        ax.plot(range(1, len(values) + 1), values, linewidth=2, label=name, **activation_style(name))
    layers = len(next(iter(scales.values())))
    ax.set_xticks(range(1, layers + 1), ["1\n(input)"] + [str(i) for i in range(2, layers)] + [f"{layers}\n(output)"])
    ax.set(yscale="log", xlabel="weight matrix", ylabel="std of the weight gradient",
           title=title or "Gradient scale per layer at initialization")
    ax.legend(ncol=2, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_gradient_overview_panels(panels: Mapping[str, Mapping[str, Sequence[float]]], title: str = "") -> Figure:
    """Several gradient overviews side by side on one shared log axis, one panel per setting (such as an init)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 4.2), sharey=True, squeeze=False)
    for ax, (label, scales) in zip(axes.flat, panels.items()):
        for name, values in scales.items():
            ax.plot(range(1, len(values) + 1), values, markersize=3, linewidth=1.5, label=name,
                    **activation_style(name))
        ax.set(yscale="log", xlabel="weight matrix (1 = input layer)", title=label)
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].set_ylabel("std of the weight gradient")
    axes.flat[-1].legend(ncol=2, fontsize=8, loc="lower right")
    fig.suptitle(title or "Gradient scale per layer at initialization", fontsize=13)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str], title: str = "") -> Figure:
    """Counts of (true class, predicted class), each row normalized to the share of its true class."""
    counts = matrix.double().cpu()
    shares = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    for (row, col), share in np.ndenumerate(shares.numpy()):
        if share >= 0.005:
            ax.text(col, row, f"{100 * share:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if share > 0.5 else "black")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "Confusion matrix (% of each true class)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return fig


def plot_depth_trend(sweeps: Mapping[str, Mapping[str, Mapping[int, Sequence[float]]]]) -> Figure:
    """Input-layer gradient scale against depth, one panel per initialization, one line per activation."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(WIDTH, 4.5), sharey=True, squeeze=False)
    for ax, (init, sweep) in zip(axes.flat, sweeps.items()):
        for name, by_depth in sweep.items():
            depths = sorted(by_depth)
            ax.plot(depths, [by_depth[d][0] for d in depths], markersize=4, linewidth=1.5, label=name,
                    **activation_style(name))
        ax.set(yscale="log", xlabel="hidden layers (256 units each)", title=f"initialization: {init}")
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].set_ylabel("std of the input layer's weight gradient")
    axes.flat[-1].legend(ncol=2, fontsize=9)
    fig.suptitle("Gradient reaching the input layer, by depth", fontsize=14)
    fig.tight_layout()
    return fig


def plot_validation_curves(histories: Mapping[str, History]) -> Figure:
    """Validation accuracy per epoch, one line per model, the best epoch marked."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, history in histories.items():
        epochs = range(1, len(history.val_acc) + 1)
        style = series_style(list(histories), name)
        ax.plot(epochs, [100 * v for v in history.val_acc], linewidth=2, color=style["color"],
                linestyle=style["linestyle"], label=name)
        if history.best_epoch:
            ax.scatter(history.best_epoch, 100 * history.val_acc[history.best_epoch - 1], color=style["color"],
                       edgecolor="black", zorder=3)
    ax.axhline(100 * CHANCE, color="gray", linestyle=":", label="chance (10%)")
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy (dot: best epoch, kept)")
    ax.legend(ncol=2, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_training_diagnostics(histories: Mapping[str, History], num_classes: int = 10) -> Figure:
    """Training (dashed) against validation (solid) loss (left) and accuracy (right), one row per model.

    The loss of a network that has learned nothing, ln(num_classes), is drawn dotted; the epoch of
    lowest validation loss (square) and of best validation accuracy (dot, the one kept) are marked.
    """
    fig, axes = plt.subplots(len(histories), 2, figsize=(WIDTH, 2.1 * len(histories)), sharex="row", squeeze=False)
    for (loss_ax, acc_ax), (name, history) in zip(axes, histories.items()):
        color = series_style(list(histories), name)["color"]
        epochs = np.arange(1, len(history.val_acc) + 1)
        loss_ax.plot(epochs, history.train_loss, color=color, linestyle="--", label="training")
        loss_ax.plot(epochs, history.val_loss, color=color, label="validation")
        loss_ax.axhline(math.log(num_classes), color="gray", linestyle=":", label=f"ln {num_classes} (chance)")
        lowest = int(np.argmin(history.val_loss))
        loss_ax.scatter(epochs[lowest], history.val_loss[lowest], marker="s", color=color, edgecolor="black", zorder=3)
        acc_ax.plot(epochs, [100 * a for a in history.train_acc], color=color, linestyle="--", label="training")
        acc_ax.plot(epochs, [100 * a for a in history.val_acc], color=color, label="validation")
        if history.best_epoch:
            acc_ax.scatter(history.best_epoch, 100 * history.val_acc[history.best_epoch - 1], color=color,
                           edgecolor="black", zorder=3)
        loss_ax.set(ylabel=f"{name}\ncross-entropy")
        loss_ax.ticklabel_format(axis="y", useOffset=False)
        acc_ax.set(ylabel="accuracy (%)")
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 1].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_title("loss")
    axes[0, 1].set_title("accuracy")
    fig.suptitle("Training vs validation (square: lowest validation loss; dot: best validation accuracy)",
                 fontsize=13)
    fig.tight_layout()
    return fig


def plot_seed_summary(accuracies: Mapping[str, Sequence[float | None]], failed: Mapping[str, int]) -> Figure:
    """Test accuracy of every seed (dots), with mean ± std (bars) for the activations that learned on every seed.

    ``accuracies`` maps an activation to its runs' test accuracies (None: no accuracy), ``failed`` to how
    many of them did not learn. An activation with failed runs falls into two groups (chance, and the
    runs that escaped): a mean and a standard deviation would describe neither, so only its seeds are drawn.
    """
    names = list(accuracies)
    measured = {name: [100 * acc for acc in accuracies[name] if acc is not None] for name in names}
    palette = {name: activation_style(name)["color"] for name in names}
    learned = [name for name in names if failed[name] == 0]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.2))
    for ax, shown in zip(axes, (names, learned)):
        dots = [(name, acc) for name in shown for acc in measured[name]]
        if not dots:
            continue
        x, y = [name for name, _ in dots], [acc for _, acc in dots]
        sns.stripplot(x=x, y=y, hue=x, order=shown, palette=palette, jitter=0.15, size=5, edgecolor="black",
                      linewidth=0.6, legend=False, ax=ax, zorder=3)
        means = [(name, acc) for name, acc in dots if name in learned]
        if means:
            sns.pointplot(x=[name for name, _ in means], y=[acc for _, acc in means], order=shown, errorbar="sd",
                          color="black", markers="D", markersize=5, linestyle="none", capsize=0.2,
                          err_kws={"linewidth": 1.5}, ax=ax)
        for i, name in enumerate(shown):
            if failed[name]:
                ax.annotate(f"{failed[name]} of {len(accuracies[name])}\ndid not learn",
                            (i, max(measured[name], default=100 * CHANCE)), xytext=(0, 8),
                            textcoords="offset points", ha="center", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    good = [acc for name in learned for acc in measured[name]]
    axes[0].axhline(100 * CHANCE, color="gray", linestyle=":", label="chance (10%)")
    axes[0].set(ylabel="test accuracy (%)", ylim=(0, 100), title="All activations")
    axes[0].legend(loc="lower right")
    if good:
        axes[1].set_ylim(min(good) - 0.5, max(good) + 0.5)
    axes[1].set(ylabel="test accuracy (%)", title="Zoomed in: the activations that learned on every seed")
    seeds = max((len(runs) for runs in accuracies.values()), default=0)
    fig.suptitle(f"Test accuracy over {seeds} seeds: each seed (dots), mean ± std (bars)", fontsize=13)
    fig.tight_layout()
    return fig


def _visible_range(counts: np.ndarray, edges: np.ndarray, mass: float = 0.999) -> tuple[float, float]:
    """The span of bins that holds all but ``1 - mass`` of the values of ``counts`` (summed over its rows)."""
    cumulative = np.cumsum(np.atleast_2d(counts).sum(0))
    if cumulative[-1] == 0:
        return edges[0], edges[-1]
    cumulative = cumulative / cumulative[-1]
    first = int(np.searchsorted(cumulative, (1 - mass) / 2, side="right"))
    last = int(np.searchsorted(cumulative, 1 - (1 - mass) / 2))
    return edges[first], edges[min(last + 1, len(edges) - 1)]


def plot_activation_distributions(stats: Mapping[str, Sequence]) -> Figure:
    """Histograms of each hidden layer's outputs: one row per network, one column per layer.

    ``stats`` maps a name to the ``LayerStatistics`` of its layers (``activation_statistics``). Each
    title gives the saturated fraction, the dead units and the median per-unit std; a bin that towers
    over the others (ReLU's zeros) is cut at the top and its height written on it.
    """
    rows, cols = len(stats), max(len(layers) for layers in stats.values())
    fig, axes = plt.subplots(rows, cols, figsize=(max(WIDTH / 4 * min(cols, 4), 2.5 * cols), 2.5 * rows),
                             squeeze=False)
    for row, (name, layers) in zip(axes, stats.items()):
        low, high = _visible_range(np.array([layer.counts for layer in layers]), layers[0].edges)
        for ax, layer in zip(row, layers):
            fraction = np.array(layer.counts) / max(sum(layer.counts), 1)
            ax.stairs(fraction, layer.edges, fill=True, color=activation_style(layer.activation)["color"], alpha=0.85)
            rest = np.sort(fraction)[-2]
            if fraction.max() > 4 * rest > 0:
                ax.set_ylim(0, 2 * rest)
                peak = int(fraction.argmax())
                ax.annotate(f"{fraction[peak]:.0%} (cut)", xy=(layer.edges[peak + 1], 1.9 * rest), xytext=(3, 0),
                            textcoords="offset points", va="top", fontsize=8, color="C3")
            ax.set_xlim(low, high)
            ax.set_title(f"{name}, layer {layer.layer}\ndead {layer.dead_units}/{layer.units}\ninactive "
                         f"{layer.inactive:.0%}, saturated {layer.saturated:.1%}\nunit std {layer.unit_std[1]:.2g}",
                         fontsize=9)
            ax.grid(alpha=0.3)
        for ax in row[len(layers):]:
            ax.set_visible(False)
        row[0].set_ylabel("fraction of outputs")
    for ax in axes[-1]:
        ax.set_xlabel("activation output")
    images = next(iter(stats.values()))[0].images
    fig.suptitle(f"Distribution of the hidden layers' outputs on {images} images", fontsize=14)
    fig.tight_layout()
    return fig


def plot_dead_neurons(stats: Mapping[str, Sequence], title: str = "") -> Figure:
    """Dead units per hidden layer, as counts and as fractions of the layer, one bar colour per network.

    ``stats`` maps a name to the ``LayerStatistics`` of its layers (``activation_statistics``).
    """
    fig, (ax_count, ax_fraction) = plt.subplots(1, 2, figsize=(WIDTH, 4.2))
    layers = max(len(values) for values in stats.values())
    width = 0.8 / len(stats)
    for i, (name, values) in enumerate(stats.items()):
        positions = np.arange(1, len(values) + 1) + (i - (len(stats) - 1) / 2) * width
        dead = [layer.dead_units for layer in values]
        color = series_style(list(stats), name)["color"]
        bars = ax_count.bar(positions, dead, width, color=color, label=name)
        ax_count.bar_label(bars, labels=[str(d) if d else "" for d in dead], fontsize=7)
        ax_fraction.bar(positions, [100 * layer.dead_fraction for layer in values], width, color=color, label=name)
    widest = max(stats.values(), key=len)
    ticks = [f"{layer.layer}\n({layer.units})" for layer in widest]
    for ax, ylabel in ((ax_count, "dead units"), (ax_fraction, "dead units (% of the layer)")):
        ax.set_xticks(range(1, layers + 1), ticks, fontsize=8)
        ax.set(xlabel="hidden layer (units)", ylabel=ylabel)
        ax.grid(axis="y", alpha=0.3)
    ax_count.set_title("Dead units per layer (count)")
    ax_fraction.set_title("Dead units per layer (fraction)")
    ax_count.legend(fontsize=9, loc="upper left")
    images = next(iter(stats.values()))[0].images
    fig.suptitle(title or f"Units that output exactly zero on all {images:,} images", fontsize=14)
    fig.tight_layout()
    return fig


def plot_statistics_over_training(series: Mapping[str, Sequence]) -> Figure:
    """How each hidden layer's outputs change during training, one column per network.

    ``series`` maps a name to its ``LayerSeries`` (``statistics_over_epochs``). The top rows show each
    layer's histograms, one column of pixels per epoch (log colour: fraction of the layer's outputs);
    the bottom rows show mean and std, the saturated and inactive fractions and the dead fraction per
    epoch, one colour per layer.
    """
    cols, layers = len(series), max(len(values) for values in series.values())
    fig, axes = plt.subplots(layers + 3, cols, figsize=(WIDTH, 1.9 * (layers + 3)), squeeze=False,
                             sharex="col", layout="constrained")
    image = None
    for col, (name, values) in zip(axes.T, series.items()):
        for ax, layer in zip(col, values):
            fraction = layer.histograms / np.maximum(layer.histograms.sum(1, keepdims=True), 1)
            image = ax.pcolormesh(np.arange(len(fraction) + 1) - 0.5, layer.edges,
                                  np.ma.masked_equal(fraction.T, 0), norm="log", vmin=1e-5, vmax=1, cmap="viridis")
            ax.set_ylim(*_visible_range(layer.histograms, layer.edges))
            ax.set_title(f"{name}, layer {layer.layer}", fontsize=10)
            ax.set_ylabel("output")
        for ax in col[len(values):layers]:
            ax.set_visible(False)
        ax_moments, ax_saturated, ax_dead = col[layers:]
        for i, layer in enumerate(values):
            color = plt.get_cmap("viridis")(i / max(len(values) - 1, 1) * 0.85)
            ax_moments.plot(layer.epochs, layer.mean, color=color, label=f"layer {layer.layer}")
            ax_moments.plot(layer.epochs, layer.std, color=color, linestyle="--")
            ax_saturated.plot(layer.epochs, 100 * layer.saturated, color=color, marker=".")
            ax_saturated.plot(layer.epochs, 100 * layer.inactive, color=color, linestyle="--")
            ax_dead.plot(layer.epochs, 100 * layer.dead, color=color, marker=".")
        ax_moments.set(title=f"{name}\nmean (solid), std (dashed)", ylabel="output")
        ax_saturated.set(title=f"{name}\nsaturated (solid), inactive (dashed)", ylabel="% of outputs")
        ax_dead.set(title=f"{name}: dead units", ylabel="% of units", xlabel="epoch")
        for ax in (ax_moments, ax_saturated, ax_dead):
            ax.title.set_fontsize(10)
            ax.grid(alpha=0.3)
        ax_moments.legend(fontsize=7)
    assert image is not None  # every network has at least one layer
    fig.colorbar(image, ax=axes[:layers].ravel().tolist(), label="fraction of the layer's outputs", shrink=0.6)
    fig.suptitle("Hidden layers' outputs during training (epoch 0: before training)", fontsize=14)
    return fig


def plot_parameter_movement(movement: Mapping[str, Mapping[str, np.ndarray]], title: str = "") -> Figure:
    """How far each weight matrix moves in each epoch, one panel per network, one line per layer.

    ``movement`` maps a network's name to ``weight_change.movement_over_epochs(records)``: per
    parameter, its change in each epoch relative to its size (the update-to-data ratio). Only weight
    matrices are drawn; the first value (the start) is left out.
    """
    fig, axes = plt.subplots(1, len(movement), figsize=(WIDTH, 3.8), sharey=True, squeeze=False)
    for ax, (name, series) in zip(axes[0], movement.items()):
        weights = [key for key in series if key.endswith("weight") and np.isfinite(series[key][1:]).any()]
        for i, key in enumerate(weights):
            color = plt.get_cmap("viridis")(i / max(len(weights) - 1, 1) * 0.85)
            label = "output layer" if i == len(weights) - 1 else f"layer {i + 1}"
            values = series[key][1:]
            ax.plot(np.arange(1, len(values) + 1), values, color=color, label=label)
        ax.set(yscale="log", title=name, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("||W(epoch) - W(epoch - 1)|| / ||W(epoch - 1)||")
    fig.suptitle(title or "How far each layer's weights move in each epoch", fontsize=13)
    fig.tight_layout()
    return fig


def _ordered(values: Sequence) -> list:
    """The distinct values, sorted when all are numbers, otherwise in the order met."""
    distinct = list(dict.fromkeys(values))
    return sorted(distinct) if all(isinstance(v, (int, float)) for v in distinct) else distinct


def plot_accuracy_by_setting(rows: Sequence[Mapping], setting: str, panels: str | None = None, log_x: bool = False,
                             title: str = "", lines: str = "activation") -> Figure:
    """Test accuracy against one setting, one line per activation (mean over seeds), every seed as a dot.

    ``rows`` are runs as ``compare.experiment_rows`` gives them; ``panels`` splits them by another
    setting (such as ``init``), one panel per value; ``lines`` names the setting that tells the lines
    apart (the activation unless said otherwise). A numeric ``setting`` is drawn on a numeric axis
    (logarithmic with ``log_x``), anything else as categories in the order met.
    """
    panel_values = list(dict.fromkeys(row[panels] for row in rows)) if panels else [None]
    fig, axes = plt.subplots(1, len(panel_values), figsize=(min(WIDTH, 5.2 * len(panel_values)), 4), sharey=True,
                             squeeze=False)
    values = _ordered([row[setting] for row in rows])
    numeric = all(isinstance(v, (int, float)) for v in values)
    position = {v: (v if numeric else i) for i, v in enumerate(values)}
    labels = list(dict.fromkeys(str(row[lines]) for row in rows))
    for ax, panel in zip(axes.flat, panel_values):
        for name in labels:
            mine = [r for r in rows if str(r[lines]) == name and (panels is None or r[panels] == panel)]
            xs = [v for v in values if any(r[setting] == v for r in mine)]
            accs = {v: [100 * r["test_acc"] for r in mine if r[setting] == v and r["test_acc"] is not None]
                    for v in xs}
            style = series_style(labels, name)
            ax.plot([position[v] for v in xs], [np.mean(accs[v]) if accs[v] else np.nan for v in xs], linewidth=2,
                    label=name if lines == "activation" else f"{lines.replace('_', ' ')} {name}", **style)
            for v in xs:
                ax.scatter([position[v]] * len(accs[v]), accs[v], color=style["color"], s=10, alpha=0.6, zorder=3)
        if log_x:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=20)
        elif not log_x:
            ax.set_xticks(values, [str(v) for v in values])
        ax.axhline(100 * CHANCE, color="gray", linestyle=":")
        ax.set(xlabel=setting.replace("_", " "), title=f"{panels} = {panel}" if panels else "")
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].set_ylabel("test accuracy (%)")
    axes.flat[-1].legend(fontsize=9)
    fig.suptitle(title or f"Test accuracy against {setting.replace('_', ' ')} (line: mean over seeds; dots: seeds)",
                 fontsize=13)
    fig.tight_layout()
    return fig


def plot_accuracy_heatmap(rows: Sequence[Mapping], across: str, down: str = "activation", panels: str | None = None,
                          title: str = "") -> Figure:
    """Test accuracy (%) as annotated heatmaps: one column per value of ``across``, one row per value of ``down``.

    ``rows`` are runs as ``compare.experiment_rows`` gives them; ``panels`` splits them by another
    setting, one heatmap per value. A cell is the mean over its runs (seeds); a cell whose runs have
    no test accuracy (they diverged) is grey and says so.
    """
    panel_values = _ordered([row[panels] for row in rows]) if panels else [None]
    columns, lines = _ordered([row[across] for row in rows]), _ordered([row[down] for row in rows])
    fig, axes = plt.subplots(1, len(panel_values), figsize=(min(WIDTH, 1.2 + len(panel_values) *
                                                              (1.4 + 0.75 * len(columns))), 1.6 + 0.5 * len(lines)),
                             squeeze=False)
    for k, (ax, panel) in enumerate(zip(axes.flat, panel_values)):
        accuracy = np.full((len(lines), len(columns)), np.nan)
        for (i, line), (j, column) in itertools.product(enumerate(lines), enumerate(columns)):
            accs = [100 * r["test_acc"] for r in rows if r[down] == line and r[across] == column
                    and (panels is None or r[panels] == panel) and r["test_acc"] is not None]
            accuracy[i, j] = np.mean(accs) if accs else np.nan
        ax.set_facecolor("#DDDDDD")
        sns.heatmap(accuracy, ax=ax, annot=True, fmt=".1f", annot_kws={"fontsize": 9}, cmap="viridis", vmin=10,
                    vmax=90, cbar=k == len(panel_values) - 1, xticklabels=[str(c) for c in columns],
                    yticklabels=[str(line) for line in lines] if k == 0 else False,
                    cbar_kws={"label": "test accuracy (%)"})
        for i, j in zip(*np.nonzero(np.isnan(accuracy))):
            if any(r[down] == lines[i] and r[across] == columns[j] and (panels is None or r[panels] == panel)
                   for r in rows):
                ax.text(j + 0.5, i + 0.5, "diverged", ha="center", va="center", fontsize=8)
        ax.set(xlabel=across.replace("_", " "), ylabel=down.replace("_", " ") if k == 0 else "",
               title=f"{panels} = {panel}" if panels else "")
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle(title or f"Test accuracy (%) by {down.replace('_', ' ')} and {across.replace('_', ' ')}",
                 fontsize=13)
    fig.tight_layout()
    return fig


def plot_lesson(curves: Sequence[Curve], scales: Mapping[str, Sequence[float]],
                accuracies: Mapping[str, Sequence[float | None]]) -> Figure:
    """The lab at a glance: the derivatives, the gradient per layer at initialization, the test accuracies.

    ``accuracies`` maps an activation to the test accuracies of its runs (None: no accuracy).
    """
    fig, (ax_slope, ax_grad, ax_acc) = plt.subplots(1, 3, figsize=(WIDTH * 1.4, 4.2))
    for curve in curves:
        style = activation_style(curve.name)
        ax_slope.plot(curve.x, curve.dy, linewidth=2, color=style["color"], linestyle=style["linestyle"],
                      label=curve.name)
        ax_grad.plot(range(1, len(scales[curve.name.lower()]) + 1), scales[curve.name.lower()], linewidth=2,
                     label=curve.name, **style)
    ax_slope.set(title="1. The derivative is the lesson", xlabel="x", ylabel="f'(x)")
    ax_grad.set_xticks(range(1, len(next(iter(scales.values()))) + 1))
    ax_grad.set(title="2. What reaches each layer at initialization", xlabel="weight matrix (1 = input layer)",
                ylabel="std of the weight gradient", yscale="log")
    names = [curve.name.lower() for curve in curves if curve.name.lower() in accuracies]
    for i, name in enumerate(names):
        accs = [100 * acc for acc in accuracies[name] if acc is not None]
        ax_acc.scatter([i] * len(accs), accs, color=activation_style(name)["color"], s=25, zorder=3)
    ax_acc.axhline(100 * CHANCE, color="gray", linestyle=":")
    ax_acc.set_xticks(range(len(names)), names)
    seeds = max((len(runs) for runs in accuracies.values()), default=0)
    ax_acc.set(title=f"3. Test accuracy after training, {seeds} seeds each", ylabel="test accuracy (%)",
               ylim=(0, 100))
    for ax in (ax_slope, ax_grad, ax_acc):
        ax.grid(alpha=0.3)
    ax_slope.legend(fontsize=9)
    fig.suptitle("What activation functions do to a neural network (FashionMNIST, 784-512-256-256-128-10)",
                 fontsize=14)
    fig.tight_layout()
    return fig


def plot_maps(maps: Mapping[str, Mapping[str, Sequence[float]]], title: str = "") -> Figure:
    """The length map (left) and the correlation map (right) of each activation, against the identity line.

    ``maps[name]`` holds ``q``, ``q_next``, ``c`` and ``c_next``: where a map's curve crosses the
    identity is its fixed point; a slope below 1 there means the fixed point attracts.
    """
    fig, (ax_q, ax_c) = plt.subplots(1, 2, figsize=(WIDTH, 4.2))
    for name, curves in maps.items():
        style = activation_style(name)
        ax_q.plot(curves["q"], curves["q_next"], linewidth=2, color=style["color"], linestyle=style["linestyle"],
                  label=name)
        ax_c.plot(curves["c"], curves["c_next"], linewidth=2, color=style["color"], linestyle=style["linestyle"],
                  label=name)
    for ax, key, label in ((ax_q, "q", "q, this layer's variance"), (ax_c, "c", "c, this layer's correlation")):
        low, high = min(min(m[key]) for m in maps.values()), max(max(m[key]) for m in maps.values())
        ax.plot([low, high], [low, high], color="gray", linestyle=":", label="identity")
        ax.set(xlabel=label, ylabel=f"{key} in the next layer")
        ax.grid(alpha=0.3)
    ax_q.set_title("Length map: a unit's variance, layer to layer")
    ax_c.set_title("Correlation map: two images, layer to layer")
    ax_c.legend(fontsize=9)
    fig.suptitle(title or "The two maps of mean-field theory", fontsize=13)
    fig.tight_layout()
    return fig


def plot_propagation(measured: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
                     predicted: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
                     title: str = "") -> Figure:
    """Theory (lines) against a real network (dots): q (top row) and c (bottom row) per hidden layer.

    ``measured[panel][activation]`` and ``predicted[panel][activation]`` are (q per layer, c per layer);
    one column per panel (an initialization).
    """
    fig, axes = plt.subplots(2, len(measured), figsize=(WIDTH, 6.2), sharex=True, squeeze=False)
    for col, (panel, networks) in enumerate(measured.items()):
        for name, (q, c) in networks.items():
            style = activation_style(name)
            layers = range(1, len(q) + 1)
            theory_q, theory_c = predicted[panel][name]
            axes[0, col].plot(layers, theory_q, color=style["color"], linestyle=style["linestyle"], linewidth=1.5,
                              label=f"{name}, theory")
            axes[0, col].scatter(layers, q, color=style["color"], s=9, marker=style["marker"],
                                 label=f"{name}, measured")
            axes[1, col].plot(layers, theory_c, color=style["color"], linestyle=style["linestyle"], linewidth=1.5)
            axes[1, col].scatter(layers, c, color=style["color"], s=9, marker=style["marker"])
        axes[0, col].set(yscale="log", title=panel)
        axes[1, col].set(xlabel="hidden layer", ylim=(-0.05, 1.05))
        for ax in axes[:, col]:
            ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("q: mean square of a\npre-activation (log)")
    axes[1, 0].set_ylabel("c: cosine similarity\nof two images")
    axes[0, -1].legend(fontsize=7, loc="lower left")
    fig.suptitle(title or "Mean-field theory (lines) against one network of width 256 (dots)", fontsize=13)
    fig.tight_layout()
    return fig


def plot_phase_diagram(sigma_w2: Sequence[float], sigma_b2: Sequence[float], chi: np.ndarray,
                       points: Mapping[str, tuple[float, float]] | None = None, title: str = "") -> Figure:
    """chi_1 over (sigma_w^2, sigma_b^2) on a log colour scale: ordered (blue) below the critical line, chaotic above.

    ``chi`` has one row per sigma_b^2 and one column per sigma_w^2; ``points`` marks named
    initializations at their (sigma_w^2, sigma_b^2).
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    exponent = np.log10(np.clip(chi, 1e-3, 1e3))
    limit = max(0.5, float(np.nanmax(np.abs(exponent))))
    mesh = ax.pcolormesh(sigma_w2, sigma_b2, exponent, cmap="RdBu_r", vmin=-limit, vmax=limit, shading="auto")
    ax.contour(sigma_w2, sigma_b2, exponent, levels=[0.0], colors="black", linewidths=2)
    ax.plot([], [], color="black", linewidth=2, label="critical line (chi_1 = 1)")
    for i, (name, (w2, b2)) in enumerate((points or {}).items()):
        ax.scatter([w2], [b2], s=70, marker=MARKERS[i % len(MARKERS)], color="white", edgecolor="black", zorder=3,
                   label=name, clip_on=False)
    ax.set(xlabel="sigma_w^2 (weight variance x fan_in)", ylabel="sigma_b^2 (bias variance)",
           title=title or "Order and chaos at initialization")
    fig.colorbar(mesh, ax=ax, label="log10 chi_1 (< 0: ordered, > 0: chaotic)")
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_trainable_depth(sigma_w2: Sequence[float], depths: Sequence[int], accuracy: np.ndarray,
                         scale_w2: Sequence[float], six_xi: Sequence[float], title: str = "") -> Figure:
    """Test accuracy (%) over (sigma_w^2, depth) as an annotated heatmap, with the theory's 6 xi_c drawn on top.

    ``accuracy`` has one row per depth and one column per sigma_w^2 (NaN: diverged, left blank);
    ``six_xi`` is 6 xi_c at each of ``scale_w2``.
    """
    fig, ax = plt.subplots(figsize=(8.5, 5))
    ax.set_facecolor("#DDDDDD")
    sns.heatmap(accuracy, ax=ax, annot=True, fmt=".0f", annot_kws={"fontsize": 8}, cmap="viridis", vmin=10,
                vmax=90, xticklabels=[f"{v:g}" for v in sigma_w2], yticklabels=[str(d) for d in depths],
                cbar_kws={"label": "test accuracy (%); grey: diverged"})
    ax.invert_yaxis()
    cells = np.arange(len(sigma_w2)) + 0.5, np.arange(len(depths)) + 0.5
    ax.plot(np.interp(scale_w2, sigma_w2, cells[0]), np.interp(six_xi, depths, cells[1], right=np.inf),
            color="white", linestyle="--", linewidth=2.5, label="6 xi_c (theory)")
    ax.set(xlabel="sigma_w^2", ylabel="hidden layers of 256", ylim=(0, len(depths)),
           title=title or "Which deep networks train: test accuracy (%) against 6 xi_c")
    ax.tick_params(axis="y", rotation=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, facecolor="#555555", labelcolor="white")
    fig.tight_layout()
    return fig


def plot_singular_values(spectra: Mapping[str, Mapping[int, np.ndarray]], title: str = "") -> Figure:
    """Histograms of log10 singular values of the input-output Jacobian, one panel per setting, one line per depth."""
    fig, axes = _grid(len(spectra), 2, width=WIDTH / 2, height=3.0)
    bins = np.linspace(-8, 1.5, 58)
    for ax, (panel, by_depth) in zip(axes, spectra.items()):
        for i, (depth, values) in enumerate(sorted(by_depth.items())):
            color = plt.get_cmap("viridis")(i / max(len(by_depth) - 1, 1) * 0.85)
            logs = np.log10(np.clip(values, 10.0 ** bins[0], None))
            ax.hist(logs, bins=bins, histtype="step", linewidth=2, color=color, linestyle=LINE_STYLES[i % 4],
                    density=True, label=f"{depth} layers")
        ax.axvline(0, color="gray", linestyle=":")
        ax.set(title=panel, xlabel="log10 singular value (0: a direction kept at its size)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    axes[-1].legend(fontsize=8)
    fig.suptitle(title or "Singular values of the input-output Jacobian at initialization", fontsize=13)
    fig.tight_layout()
    return fig


def plot_update_ratios(ratios: Mapping[str, Sequence[float]], title: str = "", rule: float = 1e-3) -> Figure:
    """Each weight matrix's update-to-data ratio (how far one step moved it, relative to its size) per step.

    ``rule`` draws the rule of thumb (about 1e-3) as a dotted reference line.
    """
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, (name, values) in enumerate(ratios.items()):
        color = plt.get_cmap("viridis")(i / max(len(ratios) - 1, 1) * 0.85)
        ax.plot(range(1, len(values) + 1), values, color=color, linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                linewidth=1.5, label=name)
    ax.axhline(rule, color="gray", linestyle=":", label=f"rule of thumb ({rule:g})")
    ax.set(yscale="log", xlabel="step (batch)", ylabel="|change of W in one step| / |W|",
           title=title or "Update-to-data ratio per step")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
