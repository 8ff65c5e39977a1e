"""Train every activation on several seeds and summarize the test accuracies.

A comparison's ``results.json`` holds what every run shared (``Experiment``), each run that ended
(``RunResult``), a ``Summary`` per activation, and the runs still missing when Ctrl-C stopped it
(then ``partial`` is true). Running more seeds or activations with the same settings into the
same folder adds to the file; other settings are refused.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from actlab import settings
from actlab.activations import get_activation
from actlab.checkpoints import CheckpointError, differences, write_atomic
from actlab.data import FashionMNISTData, load_fashion_mnist
from actlab.lab.runs import INTERRUPTED, DataSpec, RunFiles, RunRecord, load_history
from actlab.lab.train import check_reusable, train_run
from actlab.network import DEFAULT_HIDDEN_SIZES, BaseNetwork, check_config, network_config
from actlab.training import History, Protocol, default_protocol

Device = torch.device

FAILED_BELOW = 0.2
"""A run whose test accuracy stays below this has not learned (chance is 10%)."""

SOURCE_TEST_ACCURACY = {
    "sigmoid": 0.1000, "tanh": 0.8759, "relu": 0.8862, "leakyrelu": 0.8892, "elu": 0.8727, "swish": 0.8873,
}
"""The test accuracies that the source article reports, one seed each."""

RESULTS_FORMAT = 2
FIRST_SEED = 42
"""The first seed of a comparison; the others follow it."""


def default_seeds() -> int:
    """How many seeds a comparison runs per activation by default: 2 in quick mode, 5 in full mode."""
    return 2 if settings.quick_mode() else 5


def seed_range(first: int, count: int) -> list[int]:
    """The ``count`` seeds from ``first`` up, each checked (``settings.check_seed``)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of seeds must be at least 1, not {count!r}")
    settings.check_seed(first)
    last = first + count - 1
    if last > settings.MAX_SEED:
        raise ValueError(f"the last seed, {first} + {count} - 1 = {last}, exceeds {settings.MAX_SEED}")
    return list(range(first, last + 1))


def check_output_folder(out: Path) -> None:
    """Make ``out`` and ``out/checkpoints``, and check that files can be written there; a ``ValueError`` if not."""
    for folder in (out, out / "checkpoints"):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"cannot write the results into {out}: {folder} is a file, not a folder")
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        for folder in (out, out / "checkpoints"):
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as err:
        raise ValueError(f"cannot write the results into {out}: {err.strerror or err} ({err.filename or out})") from err


class ResultsError(ValueError):
    """A results file that cannot be read, or that describes other settings than those asked for."""


def run_name(activation: str, seed: int) -> str:
    """The checkpoint name of one run of the comparison."""
    return f"FashionMNIST_{activation}_seed{seed}"


@dataclass(frozen=True)
class Experiment:
    """What every run of a comparison shares: the hidden layers, the protocol, the initialization and the data."""

    hidden_sizes: tuple[int, ...]
    protocol: Protocol
    init: str
    data: DataSpec

    def to_dict(self) -> dict:
        """The experiment as plain JSON values, the protocol's settings at the top level."""
        return {"hidden_sizes": list(self.hidden_sizes), **self.protocol.to_dict(), "init": self.init,
                "data": asdict(self.data)}

    @classmethod
    def from_dict(cls, values: dict) -> Experiment:
        """The experiment that ``to_dict`` gave ``values``."""
        values = dict(values)
        hidden_sizes, init, data = tuple(values.pop("hidden_sizes")), values.pop("init"), values.pop("data")
        return cls(hidden_sizes, Protocol(**values), init, DataSpec(**data))

    def request(self, activation: str, seed: int) -> RunRecord:
        """The record that the run of ``activation`` with ``seed`` must carry."""
        config = network_config(get_activation(activation), hidden_sizes=self.hidden_sizes)
        return RunRecord(check_config(config), self.protocol, self.init, seed, self.data)


@dataclass(frozen=True)
class RunResult:
    """One run of a comparison that ended: finished, or stopped by a non-finite loss (``status``)."""

    activation: str
    seed: int
    test_acc: float | None
    best_epoch: int
    epochs: int
    wall_time: float
    stop_reason: str
    status: str

    @classmethod
    def of(cls, activation: str, seed: int, history: History, status: str) -> RunResult:
        """The result of the run of ``activation`` with ``seed`` that ended with ``status``."""
        return cls(activation, seed, history.test_acc, history.best_epoch, history.epochs, history.wall_time,
                   history.stop_reason, status)


@dataclass(frozen=True)
class Summary:
    """Test accuracies of one activation's runs: mean, sample std (None below two), min, max, failures."""

    runs: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    failed: int


def summarize(accuracies: Sequence[float | None]) -> Summary:
    """Mean, sample standard deviation, minimum, maximum and failure count of test accuracies.

    A run without a test accuracy (it diverged before its first epoch ended) counts as failed.
    """
    measured = [acc for acc in accuracies if acc is not None]
    return Summary(
        runs=len(accuracies),
        mean=statistics.fmean(measured) if measured else None,
        std=statistics.stdev(measured) if len(measured) > 1 else None,
        min=min(measured, default=None),
        max=max(measured, default=None),
        failed=len(accuracies) - sum(acc >= FAILED_BELOW for acc in measured),
    )


@dataclass(frozen=True)
class Environment:
    """Where a comparison ran."""

    device: str
    machine: str
    processor: str
    cpu_threads: int
    python: str
    torch: str

    @classmethod
    def here(cls, device: Device) -> Environment:
        """This machine, running on ``device``."""
        return cls(str(device), platform.machine(), platform.processor(), torch.get_num_threads(),
                   platform.python_version(), torch.__version__)


@dataclass(frozen=True)
class ComparisonResults:
    """A comparison: its shared settings, every run that ended, and the runs still missing."""

    experiment: Experiment
    activations: list[str]
    runs: list[RunResult]
    missing: list[tuple[str, int]] = field(default_factory=list)
    environment: Environment | None = None
    wall_time: float = 0.0
    command: str = ""

    @property
    def partial(self) -> bool:
        """True when some requested runs have not ended (Ctrl-C stopped the comparison)."""
        return bool(self.missing)

    @property
    def seeds(self) -> list[int]:
        """Every seed that has a run or is missing, in order."""
        return sorted({run.seed for run in self.runs} | {seed for _, seed in self.missing})

    def accuracies(self) -> dict[str, list[float | None]]:
        """Per activation that has runs, the test accuracy of each run (None where it has none)."""
        found = {name: [run.test_acc for run in self.runs if run.activation == name] for name in self.activations}
        return {name: accs for name, accs in found.items() if accs}

    def failures(self) -> dict[str, int]:
        """Per activation that has runs, how many of them did not learn."""
        return {name: row.failed for name, row in self.summary.items()}

    @property
    def summary(self) -> dict[str, Summary]:
        """A summary per activation that has runs, in the order of ``activations``."""
        return {name: summarize(accs) for name, accs in self.accuracies().items()}

    def to_dict(self) -> dict:
        """The results as plain JSON values, as ``results.json`` holds them."""
        return {
            "format": RESULTS_FORMAT,
            "partial": self.partial,
            "protocol": {**self.experiment.to_dict(), "seeds": self.seeds},
            "activations": self.activations,
            "environment": asdict(self.environment) if self.environment else None,
            "wall_time": self.wall_time,
            "command": self.command,
            "summary": {name: asdict(row) for name, row in self.summary.items()},
            "runs": [asdict(run) for run in self.runs],
            "missing": [{"activation": name, "seed": seed} for name, seed in self.missing],
        }

    @classmethod
    def from_dict(cls, values: dict) -> ComparisonResults:
        """The results that ``to_dict`` gave ``values``."""
        protocol = {key: value for key, value in values["protocol"].items() if key != "seeds"}
        environment = values["environment"]
        return cls(
            Experiment.from_dict(protocol),
            list(values["activations"]),
            [RunResult(**run) for run in values["runs"]],
            [(run["activation"], run["seed"]) for run in values["missing"]],
            Environment(**environment) if environment else None,
            values["wall_time"],
            values["command"],
        )


def check_stored_runs(jobs: Sequence[tuple[str, int]], checkpoint_dir: Path, experiment: Experiment) -> None:
    """Make sure every stored run among ``jobs`` (activation, seed) can be reused or retrained as it is.

    Raises the ``CheckpointError`` of the first run with other settings, or with damaged files.
    """
    for name, seed in jobs:
        check_reusable(RunFiles(checkpoint_dir, run_name(name, seed)), experiment.request(name, seed))


def plan(activations: Sequence[str], seeds: Sequence[int], data: FashionMNISTData, *,
         protocol: Protocol | None = None, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
         init: str = "default") -> tuple[Experiment, list[tuple[str, int]]]:
    """The experiment and its runs (activation, seed), every setting checked: a ``ValueError`` says what is wrong."""
    activations = [str(name).lower() for name in activations]
    seeds = [settings.check_seed(seed) for seed in seeds]
    if not activations or not seeds:
        raise ValueError("a comparison needs at least one activation and one seed")
    for what, values in (("activation", activations), ("seed", seeds)):
        repeated = sorted({value for value in values if list(values).count(value) > 1})
        if repeated:
            raise ValueError(f"each {what} may appear once; repeated: {', '.join(map(str, repeated))}")
    protocol = protocol or default_protocol()
    if protocol.batch_size > len(data.train):
        raise ValueError(f"batch_size must be at most {len(data.train):,} (the training images), "
                         f"not {protocol.batch_size}")
    experiment = Experiment(tuple(hidden_sizes), protocol, init, DataSpec.of(data))
    for name in activations:
        experiment.request(name, seeds[0])
    return experiment, [(name, seed) for name in activations for seed in seeds]


def compare_activations(
    activations: Sequence[str],
    seeds: Sequence[int],
    checkpoint_dir: Path,
    data: FashionMNISTData | None = None,
    progress: bool = True,
    *,
    protocol: Protocol | None = None,
    hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
    init: str = "default",
    overwrite: bool = False,
) -> ComparisonResults:
    """Train a ``BaseNetwork`` per activation and seed; return every run and a summary per activation.

    Every setting is checked first (``plan``). Finished runs with the same record are reused, not
    trained again; a stored run with other settings is refused before anything is trained. Ctrl-C
    stops the whole comparison: the runs that ended come back, and the others are listed in ``missing``.
    """
    data = data or load_fashion_mnist()
    experiment, jobs = plan(activations, seeds, data, protocol=protocol, hidden_sizes=hidden_sizes, init=init)
    if not overwrite:
        check_stored_runs(jobs, checkpoint_dir, experiment)
    device = settings.get_device()
    start = time.perf_counter()
    runs: list[RunResult] = []
    try:
        for name, seed in tqdm(jobs, desc="runs", unit="run", disable=not progress):
            net = BaseNetwork(get_activation(name), hidden_sizes=list(hidden_sizes)).to(device)
            history, record = train_run(net, run_name(name, seed), experiment.protocol, init=init, seed=seed,
                                        model_path=checkpoint_dir, data=data, overwrite=overwrite, progress=progress)
            if record.status == INTERRUPTED:
                break
            runs.append(RunResult.of(name, seed, history, record.status))
    except KeyboardInterrupt:
        print("Comparison interrupted.")
    done = {(run.activation, run.seed) for run in runs}
    return ComparisonResults(
        experiment, list(dict.fromkeys(name for name, _ in jobs)), runs,
        [job for job in jobs if job not in done], Environment.here(device), time.perf_counter() - start,
    )


def check_mergeable(stored: Experiment, requested: Experiment) -> None:
    """Raise a ``ResultsError`` that lists what differs when the two experiments' runs cannot be pooled."""
    changed = differences(stored.to_dict(), requested.to_dict())
    if changed:
        raise ResultsError("the results describe other settings than those asked for:\n  " + "\n  ".join(changed))


def merge_results(old: ComparisonResults, new: ComparisonResults) -> ComparisonResults:
    """``old`` with the runs of ``new`` added (a run of the same activation and seed replaced).

    Both must share their experiment; otherwise a ``ResultsError`` lists what differs.
    """
    check_mergeable(old.experiment, new.experiment)
    fresh = {(run.activation, run.seed) for run in new.runs}
    runs = [run for run in old.runs if (run.activation, run.seed) not in fresh] + new.runs
    done = {(run.activation, run.seed) for run in runs}
    missing = [job for job in dict.fromkeys(old.missing + new.missing) if job not in done]
    activations = list(dict.fromkeys(old.activations + new.activations))
    runs.sort(key=lambda run: (activations.index(run.activation), run.seed))
    return ComparisonResults(new.experiment, activations, runs, missing, new.environment,
                             old.wall_time + new.wall_time, new.command)


def save_results(results: ComparisonResults, path: Path) -> None:
    """Write the comparison's results as strict JSON (no NaN), atomically."""
    write_atomic(Path(path), json.dumps(results.to_dict(), indent=1, allow_nan=False).encode())


def load_results(path: Path) -> ComparisonResults:
    """Read a comparison's results written by ``save_results``."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict) or values.get("format") != RESULTS_FORMAT:
            raise ValueError(f"it is not a results file of format {RESULTS_FORMAT}")
        return ComparisonResults.from_dict(values)
    except (UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise ResultsError(f"{path} cannot be read as comparison results: {err}") from err


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def format_table(summary: Mapping[str, Summary]) -> str:
    """The summary as a plain-text table, one row per activation (n/a where a value is undefined)."""
    lines = [f"{'activation':<12}{'runs':>5}{'mean':>9}{'std':>8}{'min':>9}{'max':>9}{'failed':>8}"]
    for name, row in summary.items():
        lines.append(
            f"{name:<12}{row.runs:>5}{_percent(row.mean):>9}{_percent(row.std):>8}"
            f"{_percent(row.min):>9}{_percent(row.max):>9}{row.failed:>8}"
        )
    return "\n".join(lines)


def mean_differences(summary: Mapping[str, Summary], reference: str) -> list[dict]:
    """Each activation's mean test accuracy minus ``reference``'s, with the standard error of that difference.

    A difference smaller than about twice its standard error is within the noise between seeds.
    Where a mean or a standard deviation is undefined, so are the values that need it (None).
    """
    ref = summary[reference]
    rows = []
    for name, row in summary.items():
        if name == reference:
            continue
        diff = None if row.mean is None or ref.mean is None else row.mean - ref.mean
        stderr = None
        if diff is not None and row.std is not None and ref.std is not None:
            stderr = math.sqrt(row.std**2 / row.runs + ref.std**2 / ref.runs)
        rows.append({"activation": name, "difference": diff, "standard error": stderr,
                     "beyond seed noise": None if stderr is None or diff is None else abs(diff) > 2 * stderr})
    return rows


def load_run_histories(folder: Path, activation: str) -> dict[str, History]:
    """The training history of every seed of ``activation`` in a comparison's output folder, by seed."""
    results = load_results(Path(folder) / "results.json")
    histories = {}
    for run in results.runs:
        if run.activation == activation:
            name = run_name(activation, run.seed)
            history = load_history(Path(folder) / "checkpoints", name)
            if history is None:
                raise CheckpointError(f"The history of {name} is missing from {Path(folder) / 'checkpoints'}.")
            histories[f"seed {run.seed}"] = history
    return histories



def load_experiments(folder: Path) -> list[ComparisonResults]:
    """Every comparison stored under ``folder`` (each ``results.json`` of a grid's subfolders), in path order."""
    paths = sorted(Path(folder).rglob("results.json"))
    if not paths:
        raise ResultsError(f"No results.json under {folder}.")
    return [load_results(path) for path in paths]


def experiment_rows(experiments: Sequence[ComparisonResults]) -> list[dict]:
    """One row per run: its activation, seed and test accuracy beside every setting of its experiment.

    ``depth`` is the number of hidden layers and ``width`` the size of the first; a run without a
    test accuracy (it diverged in its first epoch) gets None.
    """
    rows = []
    for results in experiments:
        sizes = results.experiment.hidden_sizes
        shared = {"hidden_sizes": "-".join(map(str, sizes)), "depth": len(sizes), "width": sizes[0],
                  **results.experiment.protocol.to_dict(), "init": results.experiment.init}
        for run in results.runs:
            rows.append({**shared, "activation": run.activation, "seed": run.seed, "test_acc": run.test_acc,
                         "epochs": run.epochs, "best_epoch": run.best_epoch, "wall_time": run.wall_time})
    return rows
