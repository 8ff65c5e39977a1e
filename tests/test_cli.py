import json

import pytest

from actlab.__main__ import main


def test_compare_command_writes_results_and_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACTLAB_QUICK", "1")
    out = tmp_path / "out"
    assert main(["compare", "--activations", "relu", "tanh", "--seeds", "2", "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "activation" in printed and "relu" in printed and "results.json" in printed
    results = json.loads((out / "results.json").read_text())
    assert list(results["summary"]) == ["relu", "tanh"] and results["protocol"]["seeds"] == [42, 43]
    assert results["command"].startswith("python -m actlab compare")
    assert (out / "results.png").stat().st_size > 10_000
    assert len(list((out / "checkpoints").glob("*.tar"))) == 4


def test_compare_refuses_unknown_activation(tmp_path, capsys):
    assert main(["compare", "--activations", "relu", "sparkle", "--out", str(tmp_path)]) == 2
    assert "Unknown activation(s) sparkle. Registered: sigmoid, tanh" in capsys.readouterr().err


def test_data_command(capsys):
    assert main(["data"]) == 0
    assert "FashionMNIST is ready in" in capsys.readouterr().out


def test_command_is_required():
    with pytest.raises(SystemExit):
        main([])
