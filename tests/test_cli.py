import json
import os
import signal
import subprocess
import sys
import time

import pytest

from actlab import settings
from actlab.activations import act_fn_by_name
from actlab.data import FILES, raw_dir
from actlab.lab.cli import build_parser, main
from actlab.lab.compare import load_results
from tests.conftest import fake_files

TINY = ["--hidden-sizes", "16", "--epochs", "1"]


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "1")


def refused(argv, capsys) -> str:
    """Run the command, check that argparse refuses it with status 2, and return what it printed."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_compare_command_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--activations", "relu", "tanh", "--seeds", "2", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "activation" in printed and "relu" in printed and "results.json" in printed
    text = (out / "results.json").read_text()
    values = json.loads(text)
    assert list(values["summary"]) == ["relu", "tanh"] and values["protocol"]["seeds"] == [42, 43]
    assert values["protocol"]["hidden_sizes"] == [16] and values["protocol"]["data"]["subset"] == "quick"
    assert values["command"].startswith("python -m actlab compare") and values["partial"] is False
    assert "NaN" not in text
    assert (out / "results.png").stat().st_size > 10_000
    assert len(list((out / "checkpoints").glob("*.tar"))) == 4
    assert len(list((out / "checkpoints").glob("*.run.json"))) == 4


def test_more_seeds_are_added_and_other_settings_refused(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", out]) == 0
    assert main(["compare", "--activations", "relu", "--seeds", "2", *TINY, "--out", out]) == 0
    assert "skipping training" in capsys.readouterr().out
    results = load_results(tmp_path / "results.json")
    assert [(r.activation, r.seed) for r in results.runs] == [("relu", 42), ("relu", 43)]
    before = (tmp_path / "results.json").read_text()
    assert main(["compare", "--activations", "relu", "--seeds", "2", *TINY, "--lr", "0.1", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "lr: 0.01 stored vs 0.1 requested" in err and "--overwrite" in err
    assert (tmp_path / "results.json").read_text() == before
    assert main(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--lr", "0.1", "--out", out,
                 "--overwrite"]) == 0
    results = load_results(tmp_path / "results.json")
    assert results.experiment.protocol.lr == 0.1 and [r.seed for r in results.runs] == [42]


def test_other_settings_in_the_checkpoints_are_refused_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    assert main(["compare", "--activations", "tanh", "relu", "--seeds", "1", *TINY, "--epochs", "2",
                 "--out", str(out)]) == 2
    assert "Nothing was trained" in capsys.readouterr().err
    assert not list((out / "checkpoints").glob("*tanh*"))


def test_a_damaged_history_is_named_before_training(tmp_path, capsys):
    assert main(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", str(tmp_path)]) == 0
    history = tmp_path / "checkpoints" / "FashionMNIST_relu_seed42.history.json"
    history.write_text("{")
    assert main(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", str(tmp_path)]) == 2
    assert f"Nothing was trained: {history} is damaged" in capsys.readouterr().err


def test_unknown_activation_is_refused(tmp_path, capsys):
    err = refused(["compare", "--activations", "relu", "sparkle", "--out", str(tmp_path)], capsys)
    assert "Unknown activation 'sparkle'. Registered activations: sigmoid, tanh" in err


def test_repeated_activation_is_refused(tmp_path, capsys):
    err = refused(["compare", "--activations", "relu", "ReLU", "--out", str(tmp_path)], capsys)
    assert "each activation may appear once; repeated: relu" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--seeds", "0"], "the number of seeds must be from 1 to 1000, not 0"),
        (["--seeds", "4294967253"], "the number of seeds must be from 1 to 1000, not 4294967253"),
        (["--epochs", "0"], "max_epochs must be a positive integer, not 0"),
        (["--epochs", "99999999999999999999"], "max_epochs must be at most 10,000, not 99,999,999,999,999,999,999"),
        (["--patience", "10001"], "patience must be at most 10,000, not 10,001"),
        (["--patience", "-3"], "patience must be a positive integer, not -3"),
        (["--batch-size", "0"], "batch_size must be a positive integer, not 0"),
        (["--batch-size", "5001"], "batch_size must be at most 5,000 (the training images), not 5001"),
        (["--lr", "0"], "lr must be positive, not 0.0"),
        (["--lr", "-0.1"], "lr must be positive, not -0.1"),
        (["--lr", "nan"], "lr must be a finite number, not nan"),
        (["--lr", "inf"], "lr must be a finite number, not inf"),
        (["--lr", "fast"], "--lr: invalid float value: 'fast'"),
        (["--momentum", "1"], r"momentum must lie in [0, 1), not 1.0"),
        (["--optimizer", "adam", "--momentum", "0.5"], "momentum applies to SGD only"),
        (["--optimizer", "rmsprop"], "--optimizer: invalid choice: 'rmsprop'"),
        (["--init", "lecun"], "init must be one of default, he, glorot, critical, critical-orthogonal or gaussian-W-B"),
        (["--init", "gaussian-0-0.05"], "init must be one of"),
        (["--hidden-sizes", "64", "0"], "hidden_sizes[1] must be a positive integer, not 0"),
        (["--first-seed", "-1"], "a seed must be an integer from 0 to 2**32 - 1 = 4294967295, not -1"),
        (["--first-seed", str(2**32)], "a seed must be an integer from 0 to 2**32 - 1"),
        (["--first-seed", str(2**32 - 1), "--seeds", "2"], "the last seed, 4294967295 + 2 - 1 = 4294967296, exceeds"),
        (["--seeds", "2.5"], "--seeds: invalid int value: '2.5'"),
    ],
)
def test_every_value_is_checked_with_a_clear_message(tmp_path, capsys, option, message):
    err = refused(["compare", *option, "--out", str(tmp_path)], capsys)
    assert message in err
    assert not list(tmp_path.iterdir())


def test_the_last_valid_seed_is_accepted(tmp_path):
    args = build_parser().parse_args(["compare", "--first-seed", str(settings.MAX_SEED), "--seeds", "1"])
    assert args.first_seed == 2**32 - 1


def test_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("I am a file")
    err = refused(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", str(target)], capsys)
    assert f"{target} is a file, not a folder" in err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoints").write_text("")
    err = refused(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", str(tmp_path / "out")], capsys)
    assert "checkpoints is a file, not a folder" in err


def test_a_damaged_results_file_is_kept_and_named(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{")
    assert main(["compare", "--activations", "relu", "--seeds", "1", *TINY, "--out", str(tmp_path)]) == 2
    assert "results.json cannot be read as comparison results" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == "{"


def test_help_documents_every_option_with_the_defaults_of_the_mode(monkeypatch, capsys):
    for mode, seeds, epochs, out in (("1", 2, 3, "results/quick"), ("off", 5, 50, "results/full")):
        monkeypatch.setenv("ACTLAB_QUICK", mode)
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for option in ("--activations", "--seeds", "--first-seed", "--epochs", "--patience", "--batch-size",
                       "--optimizer", "--lr", "--momentum", "--init", "--hidden-sizes", "--out", "--overwrite"):
            assert option in text
        assert f"per activation, at least 1 (default: {seeds})" in text
        assert f"maximum epochs per run, at least 1 (default: {epochs})" in text
        assert f"(default: {out})" in text and "\x1b" not in text


def test_an_unclear_quick_mode_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("ACTLAB_QUICK", "maybe")
    assert main(["compare"]) == 2
    assert "ACTLAB_QUICK='maybe' is neither on" in capsys.readouterr().err


def test_data_command(capsys):
    assert main(["data"]) == 0
    assert "all four files read and checked, 60,000 training and 10,000 test images" in capsys.readouterr().out


def test_data_command_checks_what_it_reports(tmp_path, monkeypatch, capsys):
    raw = raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name, blob in fake_files().items():
        (raw / name).write_bytes(blob[:-1] if name == FILES["train"][0] else blob)
    monkeypatch.setenv("ACTLAB_DATA", str(tmp_path))
    assert main(["data"]) == 1
    assert f"{raw / FILES['train'][0]} is truncated or corrupt" in capsys.readouterr().err


def test_command_is_required():
    with pytest.raises(SystemExit):
        main([])


def hear_ctrl_c() -> None:
    """In the child: let SIGINT through even when pytest runs in the background (``make test &``).

    A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored;
    restoring the default makes the child's Python turn SIGINT into KeyboardInterrupt, as at a terminal.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_comparison_and_a_rerun_retrains(tmp_path, capsys):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "actlab", "compare", "--activations", "relu", "--seeds", "1", "--epochs", "2",
               "--hidden-sizes", "16", "--batch-size", "1", "--out", str(out)]
    env = {**os.environ, "ACTLAB_QUICK": "1"}
    process = subprocess.Popen(command, env=env, cwd=settings.REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=hear_ctrl_c)
    record = out / "checkpoints" / "FashionMNIST_relu_seed42.run.json"
    deadline = time.monotonic() + 120
    while not (record.exists() and '"running"' in record.read_text()) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (130, -signal.SIGINT), stderr  # a shell shows both as status 130
    assert "Traceback" not in stderr and "results are marked partial" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["partial"] is True and results["missing"] == [{"activation": "relu", "seed": 42}]
    assert json.loads(record.read_text())["status"] == "interrupted"
    assert main(command[3:]) == 0
    assert "did not finish (interrupted); training it again" in capsys.readouterr().out
    results = load_results(out / "results.json")
    assert not results.partial and [(r.seed, r.epochs, r.status) for r in results.runs] == [(42, 2, "finished")]


def test_grid_trains_every_combination_into_its_own_folder(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "out": str(tmp_path / "grid"), "activations": ["relu"], "seeds": 1, "epochs": 1,
        "grid": {"hidden_sizes": [[8], [8, 8]], "optimizer": ["sgd", "adam"]},
    }))
    assert main(["grid", str(spec)]) == 0
    folders = sorted(p.name for p in (tmp_path / "grid").iterdir() if p.is_dir())
    assert folders == ["hidden_sizes=8_optimizer=adam", "hidden_sizes=8_optimizer=sgd",
                       "hidden_sizes=8x8_optimizer=adam", "hidden_sizes=8x8_optimizer=sgd"]
    results = load_results(tmp_path / "grid" / "hidden_sizes=8x8_optimizer=adam" / "results.json")
    assert results.experiment.hidden_sizes == (8, 8) and results.experiment.protocol.optimizer == "adam"
    assert results.experiment.protocol.momentum is None and len(results.runs) == 1
    out = capsys.readouterr().out
    assert "4 experiments in" in out
    table = (tmp_path / "grid" / "results.txt").read_text().splitlines()
    assert table[0].split() == ["experiment", "relu"] and len(table) == 5
    adam = load_results(tmp_path / "grid" / "hidden_sizes=8_optimizer=adam" / "results.json").summary["relu"].mean
    assert f"hidden_sizes=8_optimizer=adam {adam:.2%}".split() == table[2].split()
    assert "\n".join(table) in out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grid": {"lr": [0.1, -1]}}, "experiment lr=-1: lr must be positive, not -1"),
        ({"grid": {"learning_rate": [0.1]}}, "unknown setting(s) learning_rate"),
        ({"grid": {"lr": []}}, "grid.lr must be a non-empty list"),
        ({"lr": 0.1, "grid": {"lr": [0.1]}}, "lr is both fixed and in the grid"),
        ({"seeds": 1}, "non-empty object \"grid\""),
    ],
)
def test_a_bad_grid_is_refused_before_any_training(tmp_path, capsys, spec, message):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"out": str(tmp_path / "grid"), **spec}))
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(["grid", str(path)]))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "grid").exists()


def test_a_cache_folder_that_is_a_file_gives_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ACTLAB_CACHE", str(blocker))
    assert main(["references"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("python -m actlab references: ") and str(blocker) in err
    assert blocker.read_text() == "not a folder"


def test_a_grid_spec_that_does_not_exist_is_named_once(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert main(["grid", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"{missing}: there is no such file"


def test_a_bad_thread_setting_is_refused_as_a_usage_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ACTLAB_THREADS", "lots")
    err = refused(["compare", *TINY, "--activations", "relu", "--seeds", "1", "--out", str(tmp_path / "o")], capsys)
    assert "ACTLAB_THREADS='lots' must be a whole number of threads" in err


SQUAREPLUS = '''
import torch
from actlab import ActivationFunction, register_activation


@register_activation
class Squareplus(ActivationFunction):
    r"""$f(x) = (x + \\sqrt{x^2 + 4}) / 2$"""

    def forward(self, x):
        return (x + torch.sqrt(x * x + 4)) / 2
'''


def test_a_registered_activation_is_compared_from_the_command_line(tmp_path, capsys):
    module = tmp_path / "my_activations.py"
    module.write_text(SQUAREPLUS)
    out = tmp_path / "o"
    err = refused(["compare", *TINY, "--activations", "squareplus", "--seeds", "1", "--out", str(out)], capsys)
    assert "Unknown activation 'squareplus'" in err and "--import" in err
    try:
        assert main(["compare", "--import", str(module), *TINY, "--activations", "squareplus", "relu", "--seeds", "1",
                     "--out", str(out)]) == 0
    finally:
        act_fn_by_name.pop("squareplus", None)
    assert set(load_results(out / "results.json").summary) == {"squareplus", "relu"}


def test_an_import_that_fails_is_one_line(tmp_path, capsys):
    module = tmp_path / "broken.py"
    module.write_text("raise RuntimeError('no such activation here')\n")
    assert main(["compare", "--import", str(module), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"--import {module} failed: RuntimeError: no such activation here"
