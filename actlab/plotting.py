"""Every figure of the notebooks. Each function takes plain data and returns a matplotlib Figure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from actlab.activations import Curve
from actlab.gradients import first_batch, weight_gradients

CHANCE = 0.1


def _grid(n: int, cols: int, width: float = 4.0, height: float = 3.2):
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * width, rows * height), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def plot_activation_grid(curves: Sequence[Curve], cols: int = 3) -> Figure:
    """The source's grid: one panel per activation with the function and its derivative."""
    fig, axes = _grid(len(curves), cols)
    for ax, curve in zip(axes, curves):
        ax.plot(curve.x, curve.y, linewidth=2, label="f(x)")
        ax.plot(curve.x, curve.dy, linewidth=2, linestyle="--", label="f'(x)")
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.set(title=curve.name, xlabel="x")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle("Activation functions (solid) and their derivatives (dashed)", fontsize=14)
    fig.tight_layout()
    return fig


def plot_derivative_overlay(curves: Sequence[Curve]) -> Figure:
    """All derivatives on one axis: saturation, the sigmoid's 1/4 ceiling and ReLU's zero region side by side."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for curve in curves:
        ax.plot(curve.x, curve.dy, linewidth=2, label=curve.name)
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
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_f.plot(curve.x, curve.y, linewidth=2.5, label=f"{curve.name} (actlab)")
    ax_d.plot(curve.x, curve.dy, linewidth=2.5, color="C1", label=f"{curve.name}' (actlab, autograd)")
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
        ax.imshow(image.squeeze().cpu(), cmap="gray_r")
        ax.set_title(class_names[int(label)], fontsize=10)
        ax.axis("off")
    fig.suptitle("FashionMNIST examples", fontsize=14)
    fig.tight_layout()
    return fig


def plot_class_balance(counts: Mapping[str, Sequence[int]], class_names: Sequence[str]) -> Figure:
    """Images per class in each split, as grouped bars."""
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(counts)
    positions = np.arange(len(class_names))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(positions + (i - (len(counts) - 1) / 2) * width, values, width, label=split)
    ax.set_xticks(positions, class_names, rotation=30, ha="right")
    ax.set(title="Images per class in each split", ylabel="images")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_pixel_histograms(raw: torch.Tensor, normalized: torch.Tensor) -> Figure:
    """Pixel values before (0-255) and after normalization (-1 to 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
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


def plot_gradient_histograms(grads: Mapping[str, np.ndarray], activation: str, color: str = "C0") -> Figure:
    """The source's figure: a histogram with a density curve of the gradient of each weight matrix."""
    fig, axes = plt.subplots(1, len(grads), figsize=(len(grads) * 3.5, 2.8))
    for ax, (name, values) in zip(np.atleast_1d(axes), grads.items()):
        edges = ax.hist(values, bins=30, color=color, alpha=0.6, edgecolor="white", linewidth=0.5)[1]
        if values.std() > 0:
            centres, density = _smoothed_density(values)
            ax.plot(centres, density * len(values) * (edges[1] - edges[0]), color=color, linewidth=1.5)
        ax.set(title=name, xlabel="gradient", ylabel="count" if ax is np.atleast_1d(axes)[0] else None)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    fig.suptitle(f"Gradient distribution per weight matrix, activation {activation}", fontsize=14, y=1.06)
    fig.subplots_adjust(wspace=0.45)
    return fig


def plot_gradient_overview(scales: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Gradient scale (standard deviation) of each layer, on a log axis, one line per activation."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, values in scales.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", linewidth=2, label=name)
    layers = len(next(iter(scales.values())))
    ax.set_xticks(range(1, layers + 1), ["1\n(input)"] + [str(i) for i in range(2, layers)] + [f"{layers}\n(output)"])
    ax.set(yscale="log", xlabel="weight matrix", ylabel="std of the weight gradient",
           title=title or "Gradient scale per layer at initialization")
    ax.legend(ncol=2, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_depth_trend(sweeps: Mapping[str, Mapping[str, Mapping[int, Sequence[float]]]]) -> Figure:
    """Input-layer gradient scale against depth, one panel per initialization, one line per activation."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.5), sharey=True, squeeze=False)
    for ax, (init, sweep) in zip(axes.flat, sweeps.items()):
        for name, by_depth in sweep.items():
            depths = sorted(by_depth)
            ax.plot(depths, [by_depth[d][0] for d in depths], marker="o", linewidth=2, label=name)
        ax.set(yscale="log", xlabel="hidden layers (256 units each)", title=f"initialization: {init}")
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].set_ylabel("std of the input layer's weight gradient")
    axes.flat[-1].legend(ncol=2, fontsize=9)
    fig.suptitle("Gradient reaching the input layer, by depth", fontsize=14)
    fig.tight_layout()
    return fig


def plot_validation_curves(histories: Mapping[str, object]) -> Figure:
    """Validation accuracy per epoch, one line per model, the best epoch marked."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, history) in enumerate(histories.items()):
        epochs = range(1, len(history.val_acc) + 1)
        ax.plot(epochs, [100 * v for v in history.val_acc], linewidth=2, color=f"C{i}", label=name)
        if history.best_epoch:
            ax.scatter(history.best_epoch, 100 * history.best_val_acc, color=f"C{i}", edgecolor="black", zorder=3)
    ax.axhline(100 * CHANCE, color="gray", linestyle=":", label="chance (10%)")
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy (dot: best epoch, kept)")
    ax.legend(ncol=2, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_seed_summary(results: dict) -> Figure:
    """Mean ± standard deviation of test accuracy per activation, with every seed as a dot."""
    summary, runs = results["summary"], results["runs"]
    names = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    learned = [name for name in names if summary[name]["failed"] == 0]
    for ax, shown in zip(axes, (names, learned)):
        for i, name in enumerate(names):
            if name not in shown:
                continue
            row = summary[name]
            accs = [100 * r["test_acc"] for r in runs if r["activation"] == name and r["test_acc"] is not None]
            ax.bar(i, 100 * row["mean"], yerr=100 * row["std"], capsize=6, color=f"C{i}", alpha=0.6)
            ax.scatter(i + np.linspace(-0.15, 0.15, len(accs)), accs, color="black", s=12, zorder=3)
        ax.set_xticks([names.index(name) for name in shown], shown)
        ax.grid(axis="y", alpha=0.3)
    good = [100 * r["test_acc"] for r in runs if r["activation"] in learned and r["test_acc"] is not None]
    axes[0].axhline(100 * CHANCE, color="gray", linestyle=":", label="chance (10%)")
    axes[0].set(ylabel="test accuracy (%)", ylim=(0, 100), title="All activations")
    axes[0].legend(loc="lower right")
    if good:
        axes[1].set_ylim(min(good) - 0.5, max(good) + 0.5)
    axes[1].set(ylabel="test accuracy (%)", title="Zoomed in: the activations that learned on every seed")
    seeds = len(results["protocol"]["seeds"])
    fig.suptitle(f"Test accuracy over {seeds} seeds: mean ± std (bars) and each seed (dots)", fontsize=13)
    fig.tight_layout()
    return fig


def visualize_gradients(net, color: str = "C0", data=None) -> Figure:
    """The source's function: gradients of the first training batch through ``net``, drawn as histograms."""
    imgs, labels = first_batch(data)
    device = next(net.parameters()).device
    grads = weight_gradients(net, imgs.to(device), labels.to(device))
    return plot_gradient_histograms(grads, net.config["act_fn"]["name"], color=color)
