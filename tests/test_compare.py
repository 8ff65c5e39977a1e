import json

import pytest

from actlab.checkpoints import CheckpointError, CheckpointMismatchError
from actlab.lab import compare
from actlab.lab.compare import (
    ComparisonResults,
    ResultsError,
    RunResult,
    Summary,
    check_mergeable,
    compare_activations,
    format_table,
    load_results,
    load_run_histories,
    mean_differences,
    save_results,
    summarize,
)
from actlab.lab.runs import FINISHED
from actlab.settings import SAVED_MODELS
from actlab.training import Protocol

TINY = {"protocol": Protocol(max_epochs=1, batch_size=128), "hidden_sizes": [32], "progress": False}


def test_summary_counts_failures():
    summary = summarize([0.88, 0.86, 0.1])
    assert summary.runs == 3 and summary.failed == 1
    assert summary.mean == pytest.approx(0.6133333) and summary.min == 0.1 and summary.max == 0.88
    assert summary.std == pytest.approx(0.44467, abs=1e-5)


def test_summary_of_runs_without_accuracy():
    summary = summarize([None, 0.85])
    assert summary.runs == 2 and summary.failed == 1 and summary.mean == 0.85
    assert summary.std is None
    assert summarize([None]) == Summary(runs=1, mean=None, std=None, min=None, max=None, failed=1)


def test_compare_activations(tmp_path, small_data):
    results = compare_activations(["relu", "sigmoid"], [1, 2], tmp_path / "checkpoints", data=small_data, **TINY)
    runs = [(r.activation, r.seed) for r in results.runs]
    assert runs == [("relu", 1), ("relu", 2), ("sigmoid", 1), ("sigmoid", 2)]
    assert all(run.status == FINISHED for run in results.runs) and not results.partial
    assert results.summary["relu"].runs == 2 and results.experiment.protocol.max_epochs == 1
    assert (tmp_path / "checkpoints" / "FashionMNIST_relu_seed2.tar").exists()
    save_results(results, tmp_path / "results.json")
    assert load_results(tmp_path / "results.json") == results
    histories = load_run_histories(tmp_path, "sigmoid")
    assert list(histories) == ["seed 1", "seed 2"] and histories["seed 2"].epochs == 1
    table = format_table(results.summary)
    assert table.splitlines()[0].split() == ["activation", "runs", "mean", "std", "min", "max", "failed"]


def test_repeated_activation_or_seed_is_refused(tmp_path, small_data):
    with pytest.raises(ValueError, match="each activation may appear once; repeated: relu"):
        compare_activations(["relu", "ReLU"], [1], tmp_path, data=small_data, **TINY)
    with pytest.raises(ValueError, match="each seed may appear once; repeated: 3"):
        compare_activations(["relu"], [3, 3], tmp_path, data=small_data, **TINY)


def test_other_settings_are_refused_before_any_training(tmp_path, small_data):
    compare_activations(["tanh"], [1], tmp_path, data=small_data, **TINY)
    settings = {**TINY, "protocol": Protocol(max_epochs=1, batch_size=128, lr=0.1)}
    with pytest.raises(CheckpointMismatchError, match="protocol.lr: 0.01 stored vs 0.1 requested"):
        compare_activations(["relu", "tanh"], [1], tmp_path, data=small_data, **settings)
    assert not (tmp_path / "FashionMNIST_relu_seed1.run.json").exists()


def test_ctrl_c_stops_the_whole_comparison(tmp_path, small_data, monkeypatch):
    real = compare.train_run
    calls = []

    def interrupted_second(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compare, "train_run", interrupted_second)
    results = compare_activations(["relu", "tanh"], [1, 2], tmp_path, data=small_data, **TINY)
    assert len(calls) == 2 and [(r.activation, r.seed) for r in results.runs] == [("relu", 1)]
    assert results.partial and results.missing == [("relu", 2), ("tanh", 1), ("tanh", 2)]
    assert results.to_dict()["partial"] is True


def run(activation, seed, acc, status=FINISHED):
    return RunResult(activation, seed, acc, 1, 1, 1.0, "max_epochs", status)


def results_of(runs, lr=0.01, missing=()):
    experiment = compare.Experiment((32,), Protocol(lr=lr), "default", compare.DataSpec("quick", 5000, 1000, 1000))
    activations = list(dict.fromkeys(r.activation for r in runs))
    return ComparisonResults(experiment, activations, runs, list(missing), wall_time=10.0)


def test_other_settings_cannot_be_pooled():
    with pytest.raises(ResultsError, match="lr: 0.01 stored vs 0.1 requested"):
        check_mergeable(results_of([run("relu", 1, 0.8)]).experiment,
                        results_of([run("relu", 2, 0.8)], lr=0.1).experiment)


def test_results_are_strict_json(tmp_path):
    results = results_of([run("relu", 1, None, "diverged")])
    save_results(results, tmp_path / "results.json")
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text
    values = json.loads(text)
    assert values["summary"]["relu"] == {"runs": 1, "mean": None, "std": None, "min": None, "max": None, "failed": 1}
    assert "n/a" in format_table(results.summary)


def test_damaged_results_are_named(tmp_path):
    (tmp_path / "results.json").write_text('{"format": 2, "runs": [')
    with pytest.raises(ResultsError, match="results.json cannot be read"):
        load_results(tmp_path / "results.json")


def test_damaged_history_is_named(tmp_path, small_data):
    results = compare_activations(["relu"], [1], tmp_path / "checkpoints", data=small_data, **TINY)
    save_results(results, tmp_path / "results.json")
    history = tmp_path / "checkpoints" / "FashionMNIST_relu_seed1.history.json"
    history.write_text('{"model_name": "FashionMNIST_relu_seed1", "val_acc": [0.')
    with pytest.raises(CheckpointError, match="FashionMNIST_relu_seed1.history.json is damaged"):
        load_run_histories(tmp_path, "relu")
    with pytest.raises(CheckpointError, match="FashionMNIST_relu_seed1.history.json is damaged"):
        compare_activations(["relu"], [1], tmp_path / "checkpoints", data=small_data, **TINY)


def test_mean_differences_against_a_reference():
    def row(mean, std):
        return Summary(runs=5, mean=mean, std=std, min=None, max=None, failed=0)

    summary = {"relu": row(0.88, 0.003), "elu": row(0.87, 0.004), "tanh": row(0.881, 0.004), "one": row(0.8, None)}
    rows = {row["activation"]: row for row in mean_differences(summary, "relu")}
    assert set(rows) == {"elu", "tanh", "one"}
    assert rows["elu"]["difference"] == pytest.approx(-0.01)
    assert rows["elu"]["standard error"] == pytest.approx((0.003**2 / 5 + 0.004**2 / 5) ** 0.5)
    assert rows["elu"]["beyond seed noise"] and not rows["tanh"]["beyond seed noise"]
    assert rows["one"]["standard error"] is None and rows["one"]["beyond seed noise"] is None


@pytest.mark.parametrize("folder", ["multiseed", "sigmoid_patience50"])
def test_shipped_results_load(folder):
    results = load_results(SAVED_MODELS / folder / "results.json")
    assert not results.partial and results.seeds == [42, 43, 44, 45, 46]
    assert results.experiment.data.subset == "full" and results.experiment.protocol.lr == 0.01
    histories = load_run_histories(SAVED_MODELS / folder, "sigmoid")
    assert [h.test_acc for h in histories.values()] == [r.test_acc for r in results.runs if r.activation == "sigmoid"]


def test_experiment_rows_flatten_every_comparison_under_a_folder():
    from actlab.lab.compare import experiment_rows, load_experiments
    from actlab.settings import SAVED_MODELS

    rows = experiment_rows(load_experiments(SAVED_MODELS / "multiseed"))
    assert len(rows) == 30 and {row["depth"] for row in rows} == {4}
    assert {"activation", "seed", "test_acc", "lr", "init", "optimizer", "width"} <= set(rows[0])


def test_load_experiments_names_an_empty_folder(tmp_path):
    import pytest

    from actlab.lab.compare import ResultsError, load_experiments

    with pytest.raises(ResultsError, match="No results.json"):
        load_experiments(tmp_path)
