import json
import math

import pytest
import torch

from actlab import training
from actlab.activations import get_activation
from actlab.checkpoints import load_model
from actlab.compare import (
    compare_activations,
    format_table,
    load_run_histories,
    mean_differences,
    save_results,
    summarize,
)
from actlab.network import BaseNetwork
from actlab.settings import set_seed
from actlab.training import History, evaluate, load_history, train_model

FAST = {"batch_size": 128, "progress": False}


def fresh(name="relu", seed=0):
    set_seed(seed)
    return BaseNetwork(get_activation(name), hidden_sizes=[64, 32])


class Saboteur(BaseNetwork):
    """A small network that, from its n-th training call on, raises Ctrl-C or returns NaN."""

    def __init__(self, after, action):
        set_seed(0)
        super().__init__(get_activation("relu"), hidden_sizes=[64, 32])
        self.after, self.action, self.calls = after, action, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                if self.action == "interrupt":
                    raise KeyboardInterrupt
                return super().forward(x) * float("nan")
        return super().forward(x)


def test_trains_and_keeps_the_best_epoch(tmp_path, small_data):
    history = train_model(fresh(), "m", max_epochs=3, model_path=tmp_path, data=small_data, **FAST)
    assert history.epochs == 3 and len(history.train_loss) == len(history.val_loss) == 3
    assert history.val_acc[history.best_epoch - 1] == max(history.val_acc)
    assert history.test_acc > 0.3 and history.wall_time > 0
    assert history.train_loss[-1] < history.train_loss[0]
    assert load_history(tmp_path, "m").val_acc == history.val_acc
    best = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert evaluate(best, small_data.test)[1] == history.test_acc


def test_same_seed_same_numbers(tmp_path, small_data):
    a = train_model(fresh(seed=1), "a", max_epochs=2, model_path=tmp_path, data=small_data, seed=5, **FAST)
    b = train_model(fresh(seed=1), "b", max_epochs=2, model_path=tmp_path, data=small_data, seed=5, **FAST)
    assert a.train_loss == b.train_loss and a.val_acc == b.val_acc and a.test_acc == b.test_acc


def test_early_stopping(tmp_path, small_data):
    history = train_model(fresh(), "m", max_epochs=20, patience=2, model_path=tmp_path, data=small_data, lr=0.0, **FAST)
    assert history.best_epoch == 1 and history.epochs == 3
    assert history.stop_reason.startswith("early stopping")


def test_skips_existing_checkpoint_unless_overwrite(tmp_path, small_data, capsys):
    first = train_model(fresh(), "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    net = fresh(seed=9)
    again = train_model(net, "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    assert "skipping training" in capsys.readouterr().out
    assert again.val_acc == first.val_acc and again.test_acc == first.test_acc
    before = (tmp_path / "m.tar").read_bytes()
    redone = train_model(fresh(seed=9), "m", max_epochs=1, model_path=tmp_path, data=small_data, overwrite=True, **FAST)
    assert redone.epochs == 1 and (tmp_path / "m.tar").read_bytes() != before


def test_interrupt_keeps_best_checkpoint_and_history(tmp_path, small_data, capsys):
    batches = len(small_data.train) // 128
    net = Saboteur(after=batches + 3, action="interrupt")
    history = train_model(net, "m", max_epochs=5, model_path=tmp_path, data=small_data, **FAST)
    assert history.stop_reason == "interrupted" and history.epochs == 1 and history.best_epoch == 1
    assert "interrupted after 1 epoch" in capsys.readouterr().out
    saved = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert evaluate(saved, small_data.test)[1] == history.test_acc
    assert json.loads((tmp_path / "m.history.json").read_text())["stop_reason"] == "interrupted"


def test_nan_loss_stops_with_a_clear_message(tmp_path, small_data):
    batches = len(small_data.train) // 128
    net = Saboteur(after=batches + 2, action="nan")
    with pytest.warns(RuntimeWarning, match="training stopped, the loss became nan at batch 3 of epoch 2"):
        history = train_model(net, "m", max_epochs=5, model_path=tmp_path, data=small_data, **FAST)
    assert history.epochs == 1 and history.best_epoch == 1 and "non-finite" in history.stop_reason
    assert math.isfinite(history.test_acc)


def test_nan_in_the_first_epoch_leaves_no_checkpoint(tmp_path, small_data):
    with pytest.warns(RuntimeWarning, match="loss became"):
        history = train_model(fresh(), "m", max_epochs=3, model_path=tmp_path, data=small_data, lr=1e12, **FAST)
    assert history.best_epoch == 0 and history.test_acc is None
    assert not (tmp_path / "m.tar").exists()


def test_optimizers(tmp_path, small_data):
    history = train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, optimizer="adam", lr=1e-3,
                          **FAST)
    assert history.test_acc > 0.3
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        train_model(fresh(), "n", max_epochs=1, model_path=tmp_path, data=small_data, optimizer="rmsprop", **FAST)


def test_test_model_matches_evaluate(small_data):
    net = fresh()
    assert training.test_model(net, small_data.test.loader(100)) == evaluate(net, small_data.test)[1]


def test_history_round_trip():
    history = History("m", [1.0], [0.5], [1.1], [0.4], best_epoch=1, stop_reason="max_epochs", wall_time=2.0,
                      test_acc=0.4)
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))) == history
    assert history.best_val_acc == 0.4


def test_summary_counts_failures():
    summary = summarize([0.88, 0.86, 0.1])
    assert summary["runs"] == 3 and summary["failed"] == 1
    assert summary["mean"] == pytest.approx(0.6133333) and summary["min"] == 0.1 and summary["max"] == 0.88
    assert summary["std"] == pytest.approx(0.44467, abs=1e-5)


def test_compare_activations(tmp_path, small_data):
    results = compare_activations(["relu", "sigmoid"], [1, 2], tmp_path / "checkpoints", data=small_data,
                                  progress=False, max_epochs=1)
    runs = [(r["activation"], r["seed"]) for r in results["runs"]]
    assert runs == [("relu", 1), ("relu", 2), ("sigmoid", 1), ("sigmoid", 2)]
    assert results["summary"]["relu"]["runs"] == 2 and results["protocol"]["max_epochs"] == 1
    assert (tmp_path / "checkpoints" / "FashionMNIST_relu_seed2.tar").exists()
    save_results(results, tmp_path / "results.json")
    histories = load_run_histories(tmp_path, "sigmoid")
    assert list(histories) == ["seed 1", "seed 2"] and histories["seed 2"].epochs == 1
    table = format_table(results["summary"])
    assert table.splitlines()[0].split() == ["activation", "runs", "mean", "std", "min", "max", "failed"]


def test_mean_differences_against_a_reference():
    summary = {"relu": {"mean": 0.88, "std": 0.003, "runs": 5}, "elu": {"mean": 0.87, "std": 0.004, "runs": 5},
               "tanh": {"mean": 0.881, "std": 0.004, "runs": 5}}
    rows = {row["activation"]: row for row in mean_differences(summary, "relu")}
    assert set(rows) == {"elu", "tanh"}
    assert rows["elu"]["difference"] == pytest.approx(-0.01)
    assert rows["elu"]["standard error"] == pytest.approx((0.003**2 / 5 + 0.004**2 / 5) ** 0.5)
    assert rows["elu"]["beyond seed noise"] and not rows["tanh"]["beyond seed noise"]


def test_stored_history_has_the_test_accuracy(tmp_path, small_data):
    history = train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    assert load_history(tmp_path, "m").test_acc == history.test_acc is not None


def test_summary_of_runs_without_accuracy():
    summary = summarize([None, 0.85])
    assert summary["runs"] == 2 and summary["failed"] == 1 and summary["mean"] == 0.85
    assert math.isnan(summarize([None])["mean"])
