import inspect
import json
import math

import pytest
import torch

from actlab import training
from actlab.activations import get_activation
from actlab.checkpoints import CheckpointError, CheckpointMismatchError, load_model
from actlab.lab.runs import DIVERGED, FINISHED, INTERRUPTED, RUNNING, RunFiles, load_history
from actlab.lab.train import train_model, train_run
from actlab.network import BaseNetwork
from actlab.settings import set_seed
from actlab.training import History, evaluate, fit

FAST = {"batch_size": 128, "progress": False}


def fresh(name="relu", seed=0, hidden_sizes=(64, 32)):
    set_seed(seed)
    return BaseNetwork(get_activation(name), hidden_sizes=list(hidden_sizes))


def status(folder, name="m"):
    return RunFiles(folder, name).record().status


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
    stored = load_history(tmp_path, "m")
    assert stored.val_acc == history.val_acc and stored.test_acc == history.test_acc
    best = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert evaluate(best, small_data.test)[1] == history.test_acc
    assert sorted(p.name for p in tmp_path.iterdir()) == [".actlab.lock", "m.config", "m.history.json", "m.run.json",
                                                          "m.tar"]


def test_the_record_holds_network_protocol_seed_data_status_and_threads(tmp_path, small_data, monkeypatch):
    monkeypatch.setenv("ACTLAB_THREADS", "1")
    net = fresh()
    train_model(net, "m", max_epochs=2, model_path=tmp_path, data=small_data, seed=7, **FAST)
    record = json.loads((tmp_path / "m.run.json").read_text())
    assert record == {
        "format": 1,
        "network": net.config,
        "protocol": {"max_epochs": 2, "patience": 7, "batch_size": 128, "optimizer": "sgd", "lr": 0.01,
                     "momentum": 0.9, "init": "default"},
        "seed": 7,
        "data": {"subset": "custom", "train_size": 1024, "val_size": 512, "test_size": 512},
        "status": "finished",
        "threads": [1],
    }


def test_same_seed_same_numbers(tmp_path, small_data):
    a = train_model(fresh(seed=1), "a", max_epochs=2, model_path=tmp_path, data=small_data, seed=5, **FAST)
    b = train_model(fresh(seed=1), "b", max_epochs=2, model_path=tmp_path, data=small_data, seed=5, **FAST)
    assert a.train_loss == b.train_loss and a.val_acc == b.val_acc and a.test_acc == b.test_acc


def test_early_stopping(tmp_path, small_data):
    history = train_model(fresh(), "m", max_epochs=20, patience=2, model_path=tmp_path, data=small_data, lr=1e-12,
                          **FAST)
    assert history.best_epoch == 1 and history.epochs == 3
    assert history.stop_reason.startswith("early stopping")
    assert status(tmp_path) == FINISHED


def test_reuses_a_finished_run_unless_overwrite(tmp_path, small_data, capsys):
    first = train_model(fresh(), "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    net = fresh(seed=9)
    again = train_model(net, "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    assert "skipping training" in capsys.readouterr().out
    assert again.val_acc == first.val_acc and again.test_acc == first.test_acc
    before = (tmp_path / "m.tar").read_bytes()
    redone = train_model(fresh(seed=9), "m", max_epochs=1, model_path=tmp_path, data=small_data, overwrite=True,
                         **FAST)
    assert redone.epochs == 1 and (tmp_path / "m.tar").read_bytes() != before
    assert json.loads((tmp_path / "m.run.json").read_text())["protocol"]["max_epochs"] == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"max_epochs": 3}, "protocol.max_epochs: 2 stored vs 3 requested"),
        ({"lr": 0.1}, "protocol.lr: 0.01 stored vs 0.1 requested"),
        ({"seed": 43}, "seed: 42 stored vs 43 requested"),
        ({"optimizer": "adam", "lr": 1e-3}, "protocol.optimizer: 'sgd' stored vs 'adam' requested"),
        ({"init": "he"}, "protocol.init: 'default' stored vs 'he' requested"),
    ],
)
def test_a_run_with_other_settings_is_refused(tmp_path, small_data, change, expected):
    train_model(fresh(), "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    settings = {"max_epochs": 2, **FAST, **change}
    with pytest.raises(CheckpointMismatchError, match="other settings") as err:
        train_model(fresh(), "m", model_path=tmp_path, data=small_data, **settings)
    assert expected in str(err.value) and "overwrite=True" in str(err.value)


def test_another_network_or_data_is_refused(tmp_path, small_data):
    train_model(fresh("tanh"), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    with pytest.raises(CheckpointMismatchError, match=r"network.act_fn.name: 'Tanh' stored vs 'Sigmoid' requested"):
        train_model(fresh("sigmoid"), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    with pytest.raises(CheckpointMismatchError, match=r"network.hidden_sizes: \[64, 32\] stored vs \[16\] requested"):
        train_model(fresh("tanh", hidden_sizes=[16]), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    fewer = type(small_data)(small_data.train.head(512), small_data.val, small_data.test)
    with pytest.raises(CheckpointMismatchError, match="data.train_size: 1024 stored vs 512 requested"):
        train_model(fresh("tanh"), "m", max_epochs=1, model_path=tmp_path, data=fewer, **FAST)


def test_a_checkpoint_without_record_is_not_trusted(tmp_path, small_data):
    train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    (tmp_path / "m.run.json").unlink()
    with pytest.raises(CheckpointError, match="has no record of how it was trained"):
        train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)


def test_interrupt_keeps_best_checkpoint_and_a_rerun_retrains(tmp_path, small_data, capsys):
    batches = len(small_data.train) // 128
    net = Saboteur(after=batches + 3, action="interrupt")
    history = train_model(net, "m", max_epochs=5, model_path=tmp_path, data=small_data, **FAST)
    assert history.stop_reason == "interrupted" and history.epochs == 1 and history.best_epoch == 1
    assert "interrupted after 1 epoch" in capsys.readouterr().out
    saved = load_model(tmp_path, "m", device=torch.device("cpu"))
    assert evaluate(saved, small_data.test)[1] == history.test_acc
    assert json.loads((tmp_path / "m.history.json").read_text())["stop_reason"] == "interrupted"
    assert status(tmp_path) == INTERRUPTED
    net.after = 10**9
    again = train_model(net, "m", max_epochs=5, model_path=tmp_path, data=small_data, **FAST)
    assert "did not finish (interrupted); training it again from the start" in capsys.readouterr().out
    assert again.epochs == 5 and status(tmp_path) == FINISHED


def test_a_run_retrained_after_ctrl_c_equals_an_uninterrupted_one(tmp_path, small_data):
    batches = len(small_data.train) // 128
    net = Saboteur(after=batches + 3, action="interrupt")
    for _ in range(3):
        net.train()(small_data.train.head(8).images)  # the caller's object is changed before the run, too
    train_model(net, "m", max_epochs=3, model_path=tmp_path / "a", data=small_data, **FAST)
    net.after = 10**9
    retrained = train_model(net, "m", max_epochs=3, model_path=tmp_path / "a", data=small_data, **FAST)
    clean = train_model(Saboteur(after=10**9, action="interrupt"), "m", max_epochs=3, model_path=tmp_path / "b",
                        data=small_data, **FAST)
    assert retrained.epochs == clean.epochs == 3
    assert retrained.train_loss == clean.train_loss and retrained.val_acc == clean.val_acc
    assert retrained.test_acc == clean.test_acc


def test_a_killed_run_is_retrained_not_reused(tmp_path, small_data, monkeypatch, capsys):
    def killed(self, history, best=None):
        raise SystemExit("killed")

    monkeypatch.setattr(RunFiles, "save_epoch", killed)
    with pytest.raises(SystemExit):
        train_model(fresh(), "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    assert status(tmp_path) == RUNNING and not (tmp_path / "m.tar").exists()
    monkeypatch.undo()
    history = train_model(fresh(), "m", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    assert "did not finish (running)" in capsys.readouterr().out
    assert history.epochs == 2 and status(tmp_path) == FINISHED


def test_nan_loss_stops_with_a_clear_message(tmp_path, small_data):
    batches = len(small_data.train) // 128
    net = Saboteur(after=batches + 2, action="nan")
    with pytest.warns(RuntimeWarning, match="training stopped, diverged in epoch 2: the loss became nan at batch 3"):
        history = train_model(net, "m", max_epochs=5, model_path=tmp_path, data=small_data, **FAST)
    assert history.epochs == 1 and history.best_epoch == 1 and history.stop_reason.startswith("diverged")
    assert math.isfinite(history.test_acc)
    assert status(tmp_path) == DIVERGED


def test_nan_in_the_first_epoch_leaves_no_checkpoint(tmp_path, small_data):
    with pytest.warns(RuntimeWarning, match="loss became"):
        history = train_model(fresh(), "m", max_epochs=3, model_path=tmp_path, data=small_data, lr=1e12, **FAST)
    assert history.best_epoch == 0 and history.test_acc is None
    assert not (tmp_path / "m.tar").exists() and status(tmp_path) == DIVERGED


def test_overwrite_that_diverges_removes_the_old_checkpoint(tmp_path, small_data):
    train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    with pytest.warns(RuntimeWarning, match="loss became"):
        train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, lr=1e12, overwrite=True, **FAST)
    assert not (tmp_path / "m.tar").exists() and not (tmp_path / "m.config").exists()
    assert load_history(tmp_path, "m").best_epoch == 0


def test_adam_on_two_layers(tmp_path, small_data):
    net = fresh(hidden_sizes=[48, 24])
    history = train_model(net, "m", max_epochs=2, model_path=tmp_path, data=small_data, optimizer="adam", lr=1e-3,
                          seed=0, **FAST)
    assert history.test_acc > 0.5
    record = json.loads((tmp_path / "m.run.json").read_text())
    assert record["protocol"]["optimizer"] == "adam" and record["protocol"]["momentum"] is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"optimizer": "rmsprop"}, "'sgd' or 'adam'"),
        ({"optimizer": "adam", "momentum": 0.5}, "momentum applies to SGD only"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"max_epochs": 0}, "max_epochs must be a positive integer"),
        ({"patience": 0}, "patience must be a positive integer"),
        ({"init": "lecun"}, "init must be one of default, he, glorot"),
        ({"batch_size": 2048}, "batch_size 2048 exceeds the 1024 training images"),
        ({"seed": -1}, "a seed must be an integer from 0 to 2"),
    ],
)
def test_bad_settings_are_refused_before_training(tmp_path, small_data, settings, message):
    with pytest.raises(ValueError, match=message):
        train_model(fresh(), "m", model_path=tmp_path, data=small_data, progress=False,
                    **{"max_epochs": 1, "batch_size": 128, **settings})
    assert not list(tmp_path.iterdir())


def test_init_is_part_of_the_protocol(tmp_path, small_data):
    he = train_model(fresh(), "he", max_epochs=1, model_path=tmp_path, data=small_data, init="he", **FAST)
    default = train_model(fresh(), "default", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    assert he.train_loss != default.train_loss


def test_monitor_is_called_at_initialization_and_after_every_epoch(tmp_path, small_data):
    calls = []

    def monitor(net):
        calls.append((net.training, torch.is_grad_enabled()))
        return {"first weight": net.layers[0].weight[0, 0].item(), "call": len(calls)}

    net = fresh(seed=0)
    initial = fresh(seed=42).layers[0].weight[0, 0].item()  # a run starts from its config and seed (42)
    history = train_model(net, "m", max_epochs=3, model_path=tmp_path, data=small_data, monitor=monitor, **FAST)
    assert [entry["call"] for entry in history.monitor] == [1, 2, 3, 4]
    assert history.monitor[0]["first weight"] == initial != history.monitor[1]["first weight"]
    assert calls == [(False, False)] * 4
    assert load_history(tmp_path, "m").monitor == history.monitor


def test_monitor_leaves_training_unchanged(tmp_path, small_data):
    plain = train_model(fresh(), "a", max_epochs=2, model_path=tmp_path, data=small_data, **FAST)
    watched = train_model(fresh(), "b", max_epochs=2, model_path=tmp_path, data=small_data,
                          monitor=lambda net: {"norm": net.layers[0].weight.norm().item()}, **FAST)
    assert plain.train_loss == watched.train_loss and plain.test_acc == watched.test_acc


def test_monitor_must_return_json_data(tmp_path, small_data):
    with pytest.raises(TypeError, match="dict of JSON data"):
        train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data,
                    monitor=lambda net: {"weights": net.layers[0].weight}, **FAST)
    with pytest.raises(TypeError, match="dict of JSON data"):
        train_model(fresh(), "n", max_epochs=1, model_path=tmp_path, data=small_data,
                    monitor=lambda net: {"nan": float("nan")}, **FAST)


def test_test_model_matches_evaluate(small_data):
    net = fresh()
    assert training.test_model(net, small_data.test.loader(100)) == evaluate(net, small_data.test)[1]


def test_train_run_reports_the_status(tmp_path, small_data):
    from actlab.training import Protocol

    history, record = train_run(fresh(), "m", Protocol(max_epochs=1, batch_size=128), model_path=tmp_path,
                                data=small_data, progress=False)
    assert record.status == FINISHED and record.seed == 42 and history.epochs == 1


def test_the_epoch_loop_reads_in_under_forty_lines_and_only_trains():
    source = inspect.getsource(fit)
    assert len(source.splitlines()) < 40
    for word in ("train_epoch", "evaluate", "best_epoch", "patience", "on_epoch", "load_state_dict"):
        assert word in source
    for word in ("open(", "save", "RunFiles", "initialize", "Path", "json"):
        assert word not in source


def test_fit_trains_any_network_in_memory_and_keeps_the_best_epoch(small_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    set_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), get_activation("tanh"),
                              torch.nn.Linear(32, 10))
    seen = []
    history = fit(net, small_data, training.Protocol(max_epochs=4, batch_size=128), progress=False,
                  on_epoch=lambda net, history, improved: seen.append((history.epochs, improved)))
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4] and history.stop_reason == "max_epochs"
    assert evaluate(net, small_data.val)[1] == history.best_val_acc == max(history.val_acc)
    assert [improved for _, improved in seen] == [
        acc > max(history.val_acc[:i], default=-1) for i, acc in enumerate(history.val_acc)]
    assert not list(tmp_path.iterdir())


def test_first_epoch_above_a_level():
    history = History("h", val_acc=[0.10, 0.15, 0.31, 0.2])
    assert history.first_epoch_above(0.2) == 3
    assert history.first_epoch_above(0.5) is None


def test_a_record_whose_test_accuracy_the_checkpoint_does_not_give_is_not_reused(tmp_path, small_data):
    first = train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    record = json.loads((tmp_path / "m.history.json").read_text())
    record["test_acc"] = 0.99
    (tmp_path / "m.history.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=f"records a test accuracy of 99.00%, but its checkpoint measures "
                                              f"{first.test_acc:.2%}"):
        train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)


@pytest.mark.parametrize("value", [1, True, "0.5", float("nan")])
def test_a_test_accuracy_that_is_no_fraction_is_refused(tmp_path, small_data, value):
    train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)
    text = (tmp_path / "m.history.json").read_text()
    record = json.loads(text)
    record["test_acc"] = value
    (tmp_path / "m.history.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="m.history.json"):
        train_model(fresh(), "m", max_epochs=1, model_path=tmp_path, data=small_data, **FAST)


def test_fit_says_in_one_sentence_what_it_expected(small_data):
    net, protocol = fresh(), training.default_protocol(batch_size=128)
    cases = [
        ((net, protocol, small_data), TypeError, "data must be what load_fashion_mnist\\(\\) gives, not Protocol"),
        ((net, small_data, {"lr": 0.1}), TypeError, "protocol must be a Protocol .*, not dict"),
        ((small_data, small_data, protocol), TypeError, "net must be a torch nn.Module, not FashionMNISTData"),
        ((torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5)), small_data, protocol), ValueError,
         r"net must give 10 class scores per image: 2 images gave \(2, 5\), not \(2, 10\)"),
        ((net, small_data, training.default_protocol(batch_size=4096)), ValueError,
         "the training split has 1,024 images, fewer than one batch of 4096"),
    ]
    for args, kind, message in cases:
        with pytest.raises(kind, match=message):
            fit(*args, progress=False)


def test_evaluate_and_train_model_refuse_what_they_cannot_use(tmp_path, small_data):
    with pytest.raises(TypeError, match="the images must come as a Split such as data.test, not Tensor"):
        evaluate(fresh(), small_data.test.images)
    with pytest.raises(ValueError, match="the split holds no image"):
        evaluate(fresh(), small_data.test.head(0))
    cnn = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with pytest.raises(TypeError, match="train_model keeps runs of a BaseNetwork.*a Sequential trains with fit"):
        train_model(cnn, "m", model_path=tmp_path, data=small_data, **FAST)
    assert not list(tmp_path.iterdir())
