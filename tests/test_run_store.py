"""The run store under attack: nothing invented, nothing lost, nothing written outside its folder.

One test (or a few) per class of attack: a result that no longer exists, readers that write,
divergence, links, options smuggled through a grid, two writers, damage behind a finished record,
lenient reads, sizes nobody checked, data counts, and raw exceptions from the lesson's API.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actlab.activation_stats import activation_statistics, dead_neurons
from actlab.activations import get_activation
from actlab.checkpoints import CheckpointError
from actlab.data import FILES, DatasetError, load_fashion_mnist
from actlab.lab import compare
from actlab.lab.cli import main
from actlab.lab.compare import ComparisonSettings, ResultsError, load_results, run_comparison
from actlab.lab.grid import GridSpec, GridSpecError, experiments, read_spec
from actlab.lab.runs import FolderBusyError, RunFiles, folder_lock, load_history
from actlab.network import BaseNetwork
from actlab.settings import REPO_ROOT, set_seed
from actlab.training import Protocol
from actlab.widgets import CurveChooser, ExperimentExplorer, GradientExplorer
from tests.conftest import idx_bytes

RUN = "FashionMNIST_relu_seed42"


def tiny(**changes) -> ComparisonSettings:
    values = {"activations": ["relu"], "seeds": 1, "epochs": 2, "patience": 2, "batch_size": 128,
              "hidden_sizes": [16], **changes}
    return ComparisonSettings.from_values(values)


def claimed(out: Path) -> list[tuple[str, int]]:
    return [(run.activation, run.seed) for run in load_results(out / "results.json").runs]


# 1. A result that no longer exists


def test_an_overwrite_stopped_by_ctrl_c_claims_nothing_it_lost(tmp_path, small_data, monkeypatch):
    run_comparison(tiny(), tmp_path, small_data, progress=False)
    assert claimed(tmp_path) == [("relu", 42)]
    monkeypatch.setattr(compare, "train_run", _interrupting(compare.train_run))
    results = run_comparison(tiny(), tmp_path, small_data, overwrite=True, progress=False)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert results.partial and stored["partial"] is True and stored["runs"] == []
    assert stored["missing"] == [{"activation": "relu", "seed": 42}]


def _interrupting(real):
    def interrupted(net, name, protocol, **kwargs):
        raise KeyboardInterrupt

    return interrupted


def test_a_kill_during_an_overwrite_leaves_no_stale_claim(tmp_path, small_data, monkeypatch):
    run_comparison(tiny(), tmp_path, small_data, progress=False)

    def killed(self, history, best=None):
        raise SystemExit("kill -9")

    monkeypatch.setattr(RunFiles, "save_epoch", killed)
    with pytest.raises(SystemExit):
        run_comparison(tiny(), tmp_path, small_data, overwrite=True, progress=False)
    assert claimed(tmp_path) == []
    assert RunFiles(tmp_path / "checkpoints", RUN).record().status == "running"


# 2. Readers that write


def test_readers_write_nothing_not_even_in_a_read_only_folder(tmp_path, small_data):
    run_comparison(tiny(), tmp_path, small_data, progress=False)
    folder = tmp_path / "checkpoints"
    stale = [folder / f".{RUN}.tar.abc123.part", folder / f".{RUN}.run.json.xyz.part", folder / f"{RUN}.pending"]
    for path in stale:
        path.write_bytes(b"half")
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(0o555)
    try:
        files = RunFiles(folder, RUN)
        assert files.record().status == "finished" and files.history().epochs == 2 and files.has_checkpoint()
        assert load_history(folder, RUN).best_epoch >= 1
        assert load_results(tmp_path / "results.json").runs
    finally:
        folder.chmod(0o755)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_the_writer_cleans_temporary_files_under_its_lock(tmp_path, small_data):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / f".{RUN}.tar.abc123.part").write_bytes(b"half")
    run_comparison(tiny(), tmp_path, small_data, progress=False)
    assert not list(folder.glob("*.part"))


# 3. Divergence


def test_a_diverged_run_is_a_result_and_counted_as_failed(tmp_path, small_data):
    settings = tiny(activations=["leakyrelu"], epochs=3, patience=3, lr=1e4, hidden_sizes=[64])
    with pytest.warns(RuntimeWarning, match="diverged"):
        results = run_comparison(settings, tmp_path, small_data, progress=False)
    assert [run.status for run in results.runs] == ["diverged"] and results.summary["leakyrelu"].failed == 1
    assert "NaN" not in (tmp_path / "results.json").read_text()
    with pytest.warns(RuntimeWarning, match="diverged"):
        again = run_comparison(settings, tmp_path, small_data, progress=False)
    assert again.runs == results.runs or [run.status for run in again.runs] == ["diverged"]


def test_a_non_finite_validation_loss_ends_the_run_as_diverged(tmp_path, small_data):
    from actlab.lab.train import train_model

    class BrokenInEval(BaseNetwork):
        def forward(self, x):
            out = super().forward(x)
            return out if self.training else out * float("nan")

    set_seed(0)
    net = BrokenInEval(get_activation("relu"), hidden_sizes=[16])
    with pytest.warns(RuntimeWarning, match="validation loss became nan"):
        history = train_model(net, "m", max_epochs=2, batch_size=128, model_path=tmp_path, data=small_data,
                              progress=False)
    assert history.stop_reason.startswith("diverged") and RunFiles(tmp_path, "m").record().status == "diverged"
    assert "NaN" not in (tmp_path / "m.history.json").read_text()


# 4. Writes through links


def test_no_file_is_written_through_a_planted_link(tmp_path, small_data):
    outside = tmp_path / "outside"
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    for name in ("results.png", ".results.json.part", "checkpoints/.FashionMNIST_relu_seed42.tar.part"):
        (out / name).symlink_to(outside / Path(name).name)
    run_comparison(tiny(), out, small_data, progress=False)
    assert not outside.exists()
    assert (out / "results.png").is_file() and not (out / "results.png").is_symlink()


def test_a_linked_checkpoint_folder_is_refused(tmp_path, small_data):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoints").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="is a link"):
        run_comparison(tiny(), tmp_path / "out", small_data, progress=False)
    assert not list((tmp_path / "elsewhere").iterdir())


# 5. Options smuggled through a grid spec


@pytest.mark.parametrize(("axis", "message"), [
    ({"activations": [["relu", "--overwrite"]]}, "Unknown activation '--overwrite'"),
    ({"hidden_sizes": [[16, "--out", "/tmp/elsewhere"]]}, "hidden_sizes"),
    ({"lr": ["0.1"]}, "lr must be a finite number"),
])
def test_grid_values_stay_typed(small_data, axis, message):
    with pytest.raises(GridSpecError, match=message):
        experiments(GridSpec({"seeds": 1}, axis), small_data)


def test_a_grid_too_large_is_refused_before_it_is_expanded(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"grid": {"lr": [0.1] * 1000, "seeds": list(range(1, 10_001))}}))
    start = time.perf_counter()
    with pytest.raises(GridSpecError, match="10,000,000 experiments"):
        read_spec(spec)
    assert time.perf_counter() - start < 1


# 6. Two writers, one folder


def test_a_second_writer_is_refused_with_a_message(tmp_path, small_data):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from actlab.lab.runs import folder_lock\n"
        f"with folder_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)")],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match="Another actlab process is writing into"):
            run_comparison(tiny(), tmp_path, small_data, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "results.json").exists()
    with folder_lock(tmp_path), folder_lock(tmp_path):  # the same process may take it again
        pass


# 7. Damage behind a finished record


@pytest.mark.parametrize("damage", ["delete", "truncate", "other network", "empty config"])
def test_damage_behind_a_finished_record_is_refused_before_any_training(tmp_path, small_data, damage):
    run_comparison(tiny(), tmp_path, small_data, progress=False)
    tar, config = (tmp_path / "checkpoints" / f"{RUN}{suffix}" for suffix in (".tar", ".config"))
    if damage == "delete":
        tar.unlink()
    elif damage == "truncate":
        tar.write_bytes(tar.read_bytes()[:100])
    elif damage == "other network":
        torch.save(BaseNetwork(get_activation("relu"), hidden_sizes=[8]).state_dict(), tar)
    else:
        config.write_text("")
    with pytest.raises(CheckpointError, match="cannot be reused"):
        run_comparison(tiny(activations=["tanh", "relu"]), tmp_path, small_data, progress=False)
    assert not list((tmp_path / "checkpoints").glob("*tanh*"))


# 8. Lenient reads


def _edit(path: Path, change) -> None:
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


@pytest.mark.parametrize(("file", "change"), [
    ("history", lambda v: v["val_loss"].__setitem__(0, float("nan"))),
    ("history", lambda v: v.__setitem__("best_epoch", 99)),
    ("history", lambda v: v.__setitem__("test_acc", "0.9")),
    ("record", lambda v: v.__setitem__("seed", "7")),
    ("record", lambda v: v["network"].__setitem__("act_fn", {"name": "Sparkle"})),
    ("record", lambda v: v["protocol"].__setitem__("lr", float("inf"))),
])
def test_stored_values_are_read_strictly_with_their_types(tmp_path, small_data, file, change):
    run_comparison(tiny(), tmp_path, small_data, progress=False)
    suffix = ".history.json" if file == "history" else ".run.json"
    _edit(tmp_path / "checkpoints" / f"{RUN}{suffix}", change)
    with pytest.raises(CheckpointError, match=f"{RUN}{suffix}"):
        run_comparison(tiny(), tmp_path, small_data, progress=False)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"format": 2, "wall_time": ' + "9" * 5000 + "}",
                                  '{"format": 2, "wall_time": NaN}'])
def test_damaged_json_is_named_not_a_traceback(tmp_path, text):
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(ResultsError, match="results.json"):
        load_results(tmp_path / "results.json")


def test_a_results_file_with_wrong_types_is_refused(tmp_path, small_data):
    run_comparison(tiny(), tmp_path, small_data, progress=False)
    _edit(tmp_path / "results.json", lambda v: v["runs"][0].__setitem__("test_acc", "0.9"))
    with pytest.raises(ResultsError, match="test_acc"):
        load_results(tmp_path / "results.json")
    _edit(tmp_path / "results.json", lambda v: v["runs"][0].update(test_acc=0.5, activation="mish"))
    with pytest.raises(ResultsError, match="do not list"):
        load_results(tmp_path / "results.json")


# 9. Sizes nobody checked


@pytest.mark.parametrize(("argv", "message"), [
    (["--hidden-sizes", "99999999999999999999"], "parameters"),
    (["--hidden-sizes", "100000", "100000"], "parameters"),
    (["--out", ""], "needs a name"),
])
def test_sizes_are_bounded_before_anything_is_allocated(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--activations", "relu", "--seeds", "1", "--epochs", "1", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_an_idx_header_that_disagrees_with_the_file_size_is_refused(tmp_path):
    from actlab.data import read_labels

    path = tmp_path / "labels"
    blob = bytearray(idx_bytes(np.zeros(10, dtype=np.uint8)))
    blob[4:8] = (2_000_000_000).to_bytes(4, "big")
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match="its header announces"):
        read_labels(path)


# 10. Data counts


def test_a_test_file_of_the_wrong_size_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 16_000), ("test", 100)):
        images, labels = FILES[split]
        (raw / images).write_bytes(idx_bytes(rng.integers(0, 256, size=(n, 28, 28))))
        (raw / labels).write_bytes(idx_bytes(rng.integers(0, 10, size=n)))
    with pytest.raises(DatasetError, match="test split .* holds 100 images; this mode needs at least 1,000"):
        load_fashion_mnist("cpu", quick=True, root=tmp_path)
    with pytest.raises(DatasetError, match="this mode needs exactly 50,000"):
        load_fashion_mnist("cpu", quick=False, root=tmp_path)
    assert gzip  # the Debian copy is gzipped; these files are plain IDX, as torchvision keeps them


# 11. The lesson's API speaks actlab


@pytest.mark.parametrize(("images", "kwargs", "message"), [
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), {}, "images must be a float tensor"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.float64), {}, "images are torch.float64"),
    (torch.zeros(0, 1, 28, 28), {}, "holds no image"),
    (torch.zeros(4, 1, 28, 28), {"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_statistics_refuse_bad_input_by_name(images, kwargs, message):
    net = BaseNetwork(get_activation("relu"), hidden_sizes=[8])
    for measure in (activation_statistics, dead_neurons):
        with pytest.raises(ValueError, match=message):
            measure(net, images, **kwargs)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        activation_statistics(net, torch.zeros(4, 1, 28, 28), bins=0)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: GradientExplorer(None, None), "imgs must be"),
    (lambda: CurveChooser({}), "histories must map"),
    (lambda: ExperimentExplorer({}), "experiments must map"),
    (lambda: ExperimentExplorer({"depth": {"rows": []}}), "experiments must map"),
])
def test_widgets_refuse_bad_input_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_protocol_setting_of_the_wrong_type_is_named():
    with pytest.raises(ValueError, match="lr must be a finite number"):
        Protocol(lr="0.1")


@pytest.mark.parametrize("where", ["/dev/zero", "fifo"])
def test_a_grid_spec_that_is_no_file_is_refused_without_reading_it(tmp_path, where):
    import os

    path = Path(where) if where.startswith("/") else tmp_path / where
    if where == "fifo":
        os.mkfifo(path)
    with pytest.raises(GridSpecError, match="it is not a file; a grid spec is a JSON file"):
        read_spec(path)


@pytest.mark.parametrize(("spec", "message"), [
    ({"grid": {"hidden-sizes": [[16]], "hidden_sizes": [[32]]}}, "hidden-sizes and hidden_sizes name the same setting"),
    ({"max-epochs": 1, "max_epochs": 2, "grid": {"lr": [0.1]}}, "max-epochs and max_epochs name the same setting"),
    ({"grid": {"lr": [0.01, 0.01, 1e-2]}}, "grid.lr lists 0.01 more than once"),
    ({"grid": {"hidden_sizes": [[16], [32], [16]]}}, r"grid.hidden_sizes lists \[16\] more than once"),
])
def test_a_grid_spec_that_names_a_setting_or_a_value_twice_is_refused(tmp_path, spec, message):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(GridSpecError, match=message):
        read_spec(path)


def test_a_grid_output_folder_under_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"out": "~/grids/lr", "grid": {"lr": [0.1]}}))
    assert read_spec(path).out == tmp_path / "grids" / "lr"
