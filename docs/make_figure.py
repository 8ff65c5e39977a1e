"""Draw docs/lesson.png, the figure at the top of the README, from the package and the shipped results.

Usage: python docs/make_figure.py
"""

from pathlib import Path

import matplotlib

from actlab import gradients, load_fashion_mnist, plotting
from actlab.activations import SOURCE_ACTIVATIONS, activation_curve, get_activation
from actlab.lab.compare import load_results
from actlab.settings import SAVED_MODELS

matplotlib.use("Agg")


def main() -> None:
    data = load_fashion_mnist(quick=False)
    imgs, labels = gradients.first_batch(data)
    curves = [activation_curve(get_activation(name)) for name in SOURCE_ACTIVATIONS]
    scales = gradients.gradient_overview(SOURCE_ACTIVATIONS, imgs, labels)
    results = load_results(SAVED_MODELS / "multiseed" / "results.json")
    figure = plotting.plot_lesson(curves, scales, results.accuracies())
    figure.savefig(Path(__file__).with_name("lesson.png"), dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    main()
