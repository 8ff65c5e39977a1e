from actlab.activation_stats import statistics_over_epochs
from actlab.lab import references
from actlab.lab.runs import RunFiles


def test_a_reference_records_statistics_from_epoch_zero_and_is_reused(tmp_path, small_data, capsys):
    run = references.ReferenceRun("deep", "relu", (16, 16, 8), "he")
    history = references.train_reference(run, data=small_data, model_path=tmp_path, progress=False)
    assert len(history.monitor) == history.epochs + 1
    series = statistics_over_epochs(history.monitor)
    assert len(series) == 3 and series[0].histograms.shape[0] == history.epochs + 1
    record = RunFiles(tmp_path, "deep").record()
    assert record.init == "he" and record.seed == references.SEED and record.status == "finished"
    again = references.train_reference(run, data=small_data, model_path=tmp_path, progress=False)
    assert "skipping training" in capsys.readouterr().out
    assert again.monitor == history.monitor and again.test_acc == history.test_acc


def test_the_reference_set():
    names = [run.name for run in references.REFERENCE_RUNS]
    assert names[:6] == [f"FashionMNIST_{a}" for a in ("sigmoid", "tanh", "relu", "leakyrelu", "elu", "swish")]
    assert {run.init for run in references.DEEP_RUNS} == {"default", "he"}
    assert all(len(run.hidden_sizes) == 10 for run in references.DEEP_RUNS)
