import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

from actlab import plotting
from actlab.activations import activation_curve, get_activation
from actlab.lab.compare import load_results
from actlab.settings import SAVED_MODELS
from actlab.training import History

matplotlib.use("Agg")


def drawn_texts(fig: Figure) -> list[Text]:
    """The texts a reader sees: titles, labels, annotations, legends and the tick labels inside each axis' range."""
    texts: list[Text] = list(fig.texts)
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        legend = ax.get_legend()
        texts += legend.get_texts() if legend else []
        for axis, limits, coord in ((ax.xaxis, ax.get_xlim(), 0), (ax.yaxis, ax.get_ylim(), 1)):
            if not (ax.axison and axis.get_visible()):
                continue
            low, high = sorted(limits)
            texts += [axis.label, axis.get_offset_text()]
            texts += [t for t in axis.get_ticklabels() if low <= t.get_position()[coord] <= high]
    return [t for t in dict.fromkeys(texts) if t.get_visible() and t.get_text().strip()]


def own_rectangle(text: Text, renderer) -> tuple[float, np.ndarray, float, float]:
    """A text rotated by 0 to 90 degrees as its own rectangle: angle, lower-left corner, width and height (pixels)."""
    angle = text.get_rotation() % 360
    box = text.get_window_extent(renderer)
    text.set_rotation(0)
    width, height = text.get_window_extent(renderer).size
    text.set_rotation(angle)
    sine = np.sin(np.radians(angle))
    return angle, np.array([box.x0 + height * sine, box.y0]), width, height


def texts_overlap(a: Text, b: Text, renderer) -> bool:
    """Whether two drawn texts overlap by more than a pixel: their own rectangles where both are turned by the
    same angle (rotated tick labels), their bounding boxes otherwise."""
    if a.get_rotation() % 360 == b.get_rotation() % 360 and 0 < a.get_rotation() % 360 < 90:
        angle, corner_a, width_a, height_a = own_rectangle(a, renderer)
        _, corner_b, width_b, height_b = own_rectangle(b, renderer)
        along = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
        across = np.array([-along[1], along[0]])
        spans = [((corner @ axis), (corner @ axis) + size)
                 for axis, corner, size in ((along, corner_a, width_a), (along, corner_b, width_b),
                                            (across, corner_a, height_a), (across, corner_b, height_b))]
        return all(min(first[1], second[1]) - max(first[0], second[0]) > 2 for first, second in (spans[:2], spans[2:]))
    return a.get_window_extent(renderer).padded(-1).overlaps(b.get_window_extent(renderer).padded(-1))


def overlapping_texts(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of texts that overlap by more than a pixel once the figure is drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return [(a.get_text(), b.get_text()) for a, b in itertools.combinations(drawn_texts(fig), 2)
            if texts_overlap(a, b, renderer)]


@pytest.fixture(autouse=True)
def no_overprinted_text():
    """Every figure a test here draws is checked: no text may print over another."""
    plt.close("all")
    yield
    clashes = {num: overlapping_texts(plt.figure(num)) for num in plt.get_fignums()}
    plt.close("all")
    assert not any(clashes.values()), clashes


def test_the_overlap_check_finds_overprinted_text():
    fig, ax = plt.subplots()
    ax.set_title("dead 0/512")
    ax.text(0.5, 1.02, "inactive 0%", transform=ax.transAxes, ha="center")
    assert overlapping_texts(fig) == [("dead 0/512", "inactive 0%")]
    plt.close(fig)


def test_the_overlap_check_sees_rotated_labels_as_they_are_drawn():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_xticks(range(3), ["Bag", "Ankle boot", "Sneaker"], rotation=45, ha="right")
    assert overlapping_texts(fig) == []
    ax.set_xticks([0, 0.05, 2], ["Bag", "Ankle boot", "Sneaker"], rotation=45, ha="right")
    assert overlapping_texts(fig) == [("Bag", "Ankle boot")]
    plt.close(fig)


def test_activation_grid_overlays_torch_where_given():
    acts = [get_activation("elu"), get_activation("gelu")]
    fig = plotting.plot_activation_grid([activation_curve(a) for a in acts], cols=2,
                                        references=[activation_curve(acts[0].builtin(), name="torch")])
    labels = [[line.get_label() for line in ax.lines] for ax in fig.axes]
    assert "torch" in labels[0] and "torch" not in labels[1]
    assert "built-ins dotted" in fig._suptitle.get_text()


def test_gradient_histograms_draw_a_density_and_survive_constant_gradients():
    rng = np.random.default_rng(0)
    fig = plotting.plot_gradient_histograms({"a": rng.normal(size=10_000), "b": np.zeros(100)}, "relu")
    first, second = fig.axes
    assert len(first.lines) == 1 and len(second.lines) == 0
    assert first.get_title() == "a"
    assert first.get_xlabel() == "gradient" and sum(p.get_height() for p in first.patches) == 10_000


def test_tiny_gradients_carry_their_scale_in_the_label_not_above_the_axis():
    values = np.random.default_rng(0).normal(scale=3e-5, size=1_000)
    fig = plotting.plot_gradient_histograms({"layer 1": values}, "sigmoid")
    fig.canvas.draw()
    (ax,) = fig.axes
    assert ax.get_xlabel() == "gradient (x 1e-4)"
    assert ax.xaxis.get_offset_text().get_text() == ""


def test_smoothed_density_integrates_to_one():
    values = np.random.default_rng(1).normal(size=50_000)
    centres, density = plotting._smoothed_density(values)
    assert np.trapezoid(density, centres) == pytest.approx(1.0, abs=0.02)
    assert abs(centres[density.argmax()]) < 0.2


def test_confusion_matrix_rows_are_shares():
    matrix = torch.tensor([[8, 2], [0, 10]])
    fig = plotting.plot_confusion_matrix(matrix, ["a", "b"])
    shares = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shares, [[0.8, 0.2], [0.0, 1.0]])
    assert {text.get_text() for text in fig.axes[0].texts} == {"80", "20", "100"}


def test_training_diagnostics_mark_lowest_loss_and_best_accuracy():
    history = History("m", train_loss=[2.0, 1.0, 0.5], train_acc=[0.3, 0.6, 0.8],
                      val_loss=[1.5, 1.0, 1.2], val_acc=[0.4, 0.5, 0.6], best_epoch=3)
    fig = plotting.plot_training_diagnostics({"m": history})
    loss_ax, acc_ax = fig.axes[:2]
    assert tuple(loss_ax.collections[0].get_offsets()[0]) == (2, 1.0)
    assert tuple(acc_ax.collections[0].get_offsets()[0]) == (3, 60.0)
    assert loss_ax.lines[2].get_ydata()[0] == pytest.approx(np.log(10))


def test_seed_summary_shows_seeds_not_a_mean_for_an_activation_that_failed():
    results = load_results(SAVED_MODELS / "multiseed" / "results.json")
    fig = plotting.plot_seed_summary(results.accuracies(), results.failures())
    whole = fig.axes[0]
    learned = [i for i, row in enumerate(results.summary.values()) if row.failed == 0]
    means = whole.lines[0]
    assert means.get_marker() == "D" and list(means.get_xdata()) == learned
    assert len(whole.collections) == len(results.summary)
    assert any("did not learn" in text.get_text() for text in whole.texts)
    assert all(ax.get_ylim()[0] >= 0 for ax in fig.axes)


def test_overview_panels_share_one_axis():
    panels = {"default init": {"relu": [1e-3, 1e-2]}, "he init": {"relu": [1e-2, 1e-2]}}
    fig = plotting.plot_gradient_overview_panels(panels)
    assert [ax.get_title() for ax in fig.axes] == ["default init", "he init"]
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])


def test_lesson_figure_has_three_panels():
    results = load_results(SAVED_MODELS / "multiseed" / "results.json")
    curves = [activation_curve(get_activation(name)) for name in ("sigmoid", "relu")]
    fig = plotting.plot_lesson(curves, {"sigmoid": [1e-6, 1e-2], "relu": [1e-3, 1e-3]},
                               results.accuracies())
    assert len(fig.axes) == 3 and [len(ax.lines) for ax in fig.axes[:2]] == [2, 2]
    assert len(fig.axes[2].collections) == 2


def test_theory_figures_draw_what_they_are_given():
    maps = {"tanh": {"q": [0.1, 1.0], "q_next": [0.2, 0.9], "c": [0.0, 1.0], "c_next": [0.3, 1.0]}}
    fig = plotting.plot_maps(maps)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    measured = {"he": {"relu": ([1.0, 1.0], [0.5, 0.9])}}
    fig = plotting.plot_propagation(measured, measured)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    chi = np.array([[0.5, 2.0], [0.4, 1.5]])
    fig = plotting.plot_phase_diagram([1.0, 3.0], [0.0, 0.1], chi, {"he": (2.0, 0.0)})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["critical line (chi_1 = 1)", "he"]
    accuracy = np.array([[80.0, np.nan], [10.0, 60.0]])
    fig = plotting.plot_trainable_depth([1.0, 2.0], [10, 20], accuracy, [1.0, 2.0], [15.0, 50.0])
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    assert legend.y1 < fig.axes[0].get_window_extent().y0  # below the grid, over no cell
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["10", "60", "80"]
    assert fig.axes[1].get_ylabel() == "test accuracy (%); grey: diverged"
    (line,) = fig.axes[0].lines
    assert line.get_xdata()[0] == 0.5 and line.get_ydata()[0] == 1.0
    fig = plotting.plot_singular_values({"tanh": {4: np.array([0.5, 1.0]), 16: np.array([1e-3, 2.0])}})
    assert len(fig.axes[0].patches) == 2
    fig = plotting.plot_update_ratios({"layer 1": [1e-3, 2e-3]})
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 2


def gallery() -> dict:
    """One figure of each kind the notebooks draw that no other test here draws, from real or realistic data."""
    from actlab.activation_stats import activation_statistics, statistics_over_epochs
    from actlab.data import CLASS_NAMES, load_fashion_mnist
    from actlab.lab.compare import experiment_rows, load_experiments
    from actlab.lab.references import SOURCE_RUNS, reference_network
    from actlab.lab.runs import load_history
    from actlab.weight_change import movement_over_epochs

    rng = np.random.default_rng(0)
    rows = experiment_rows(load_experiments(SAVED_MODELS / "beyond" / "residual"))
    images = load_fashion_mnist("cpu", quick=True).test.images[:1000]
    stats = {run.activation: activation_statistics(reference_network(run), images) for run in SOURCE_RUNS[:3]}
    curves = [activation_curve(get_activation(name)) for name in plotting.PALETTE]
    sweep = {name: {depth: list(rng.uniform(1e-6, 1e-2, 5)) for depth in (1, 4, 16)} for name in plotting.PALETTE}
    history = History("relu", train_loss=[1.2, 0.6], train_acc=[0.6, 0.8], val_loss=[0.8, 0.5],
                      val_acc=[0.7, 0.82], best_epoch=2)
    shipped = {run.activation: load_history(SAVED_MODELS, run.name) for run in SOURCE_RUNS}
    monitors = {name: shipped[name].monitor for name in ("sigmoid", "tanh", "relu")}
    confusion = torch.from_numpy(rng.integers(0, 60, size=(10, 10)) + np.diag(rng.integers(700, 950, size=10)))
    return {
        "shipped validation curves": lambda: plotting.plot_validation_curves(shipped),
        "shipped training diagnostics": lambda: plotting.plot_training_diagnostics(shipped),
        "confusion matrix": lambda: plotting.plot_confusion_matrix(confusion, CLASS_NAMES,
                                                                   "ReLU network, test set (% of each true class)"),
        "statistics over training": lambda: plotting.plot_statistics_over_training(
            {name: statistics_over_epochs(monitor) for name, monitor in monitors.items()}),
        "parameter movement": lambda: plotting.plot_parameter_movement(
            {name: movement_over_epochs(monitor) for name, monitor in monitors.items()}),
        "accuracy heatmap": lambda: plotting.plot_accuracy_heatmap(rows, "depth", down="residual", panels="norm"),
        "accuracy lines": lambda: plotting.plot_accuracy_by_setting(rows, "depth", panels="norm", lines="residual"),
        "one activation": lambda: plotting.plot_activation(curves[3]),
        "derivative overlay": lambda: plotting.plot_derivative_overlay(curves),
        "class balance": lambda: plotting.plot_class_balance({"train": [5000] * 10, "test": [1000] * 10}, CLASS_NAMES),
        "examples": lambda: plotting.plot_examples(images[:8], torch.arange(8), CLASS_NAMES),
        "depth trend": lambda: plotting.plot_depth_trend({"default": sweep, "he": sweep, "glorot": sweep}),
        "gradient overview": lambda: plotting.plot_gradient_overview({name: s[4] for name, s in sweep.items()}),
        "message": lambda: plotting.plot_message("Pick at least one activation."),
        "pixel histograms": lambda: plotting.plot_pixel_histograms(torch.randint(0, 256, (64, 28, 28)), images[:64]),
        "validation curves": lambda: plotting.plot_validation_curves({"relu": history, "tanh": history}),
        "activation distributions": lambda: plotting.plot_activation_distributions(stats),
        "dead units": lambda: plotting.plot_dead_neurons(stats),
    }


@pytest.mark.parametrize("kind", list(gallery()))
def test_every_figure_kind_draws_without_overprinted_text(kind):
    assert isinstance(gallery()[kind](), Figure)


@pytest.mark.parametrize("kind", ["activation distributions", "dead units", "accuracy heatmap", "derivative overlay"])
def test_figures_in_presentation_mode_print_no_text_over_text(kind):
    plotting.presentation()
    try:
        assert isinstance(gallery()[kind](), Figure)
    finally:
        plotting.presentation(False)


def test_presentation_mode_enlarges_text_and_widget_pictures_and_goes_back():
    from actlab.widgets import _png

    curve = activation_curve(get_activation("tanh"))
    seen = {}
    try:
        for on in (False, True):
            plotting.presentation(on)
            png = _png(plotting.plot_activation(curve))
            seen[on] = int.from_bytes(png[16:20], "big"), plt.rcParams["font.size"], plt.rcParams["lines.linewidth"]
    finally:
        plotting.presentation(False)
    assert seen[True][0] >= 1.5 * seen[False][0], seen
    assert seen[True][1] > seen[False][1] and seen[True][2] > seen[False][2]
    assert plt.rcParams["font.size"] == plt.rcParamsDefault["font.size"] and plotting.png_dpi() == 90


@pytest.mark.parametrize(("value", "expected"), [("1", "14.0 140"), ("off", "10.0 90")])
def test_the_notebook_helpers_read_the_presentation_setting_on_import(value, expected):
    import os
    import subprocess
    import sys

    code = ("import matplotlib.pyplot as plt; import actlab.notebook; from actlab import plotting; "
            "print(plt.rcParams['font.size'], plotting.png_dpi())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "ACTLAB_PRESENT": value, "MPLBACKEND": "Agg"}).stdout
    assert out.strip() == expected


def test_a_presentation_setting_that_is_neither_on_nor_off_is_refused(monkeypatch):
    from actlab import settings

    monkeypatch.setenv("ACTLAB_PRESENT", "big")
    with pytest.raises(ValueError, match="ACTLAB_PRESENT='big' is neither on"):
        settings.switched_on("ACTLAB_PRESENT")
