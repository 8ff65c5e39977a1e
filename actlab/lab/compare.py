"""Train every activation on several seeds and summarize the test accuracies.

A comparison's ``results.json`` holds what every run shared (``Experiment``), each run that ended
(``RunResult``), a ``Summary`` per activation, and the runs still missing when Ctrl-C stopped it
(then ``partial`` is true). Running more seeds or activations with the same settings into the
same folder adds to the file; other settings are refused.
"""

from __future__ import annotations

import io
import json
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from actlab import settings
from actlab.activations import SOURCE_ACTIVATIONS, UnknownActivationError, get_activation
from actlab.checkpoints import CheckpointError, differences, read_json, write_atomic
from actlab.checks import finite_number, whole_number
from actlab.data import FashionMNISTData, load_fashion_mnist
from actlab.lab.runs import DIVERGED, FINISHED, INTERRUPTED, DataSpec, RunFiles, RunRecord, folder_lock, load_history
from actlab.lab.train import check_reusable, train_run
from actlab.network import (
    DEFAULT_HIDDEN_SIZES,
    BaseNetwork,
    check_config,
    check_init,
    check_norm,
    check_residual,
    layer_options,
    layer_sizes,
    network_config,
)
from actlab.settings import check_seed
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
MAX_SEEDS = 1000
"""The most seeds per activation a comparison may ask for."""


def default_seeds() -> int:
    """How many seeds a comparison runs per activation by default: 2 in quick mode, 5 in full mode."""
    return 2 if settings.quick_mode() else 5


def seed_range(first: int, count: int) -> list[int]:
    """The ``count`` seeds from ``first`` up, each checked (``settings.check_seed``)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEEDS:
        raise ValueError(f"the number of seeds must be from 1 to {MAX_SEEDS}, not {count!r}")
    settings.check_seed(first)
    last = first + count - 1
    if last > settings.MAX_SEED:
        raise ValueError(f"the last seed, {first} + {count} - 1 = {last}, exceeds {settings.MAX_SEED}")
    return list(range(first, last + 1))


def check_output_folder(out: str | Path) -> Path:
    """``out``, made with ``out/checkpoints`` when missing and checked to be writable; a ``ValueError`` if not.

    An empty name is refused, and so is a ``checkpoints`` that is a link: no write follows one.
    """
    if not str(out).strip():
        raise ValueError("the output folder needs a name; --out '' would write into the current folder")
    out = Path(out).expanduser()
    for folder in (out, out / "checkpoints"):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"cannot write the results into {out}: {folder} is a file, not a folder")
    if (out / "checkpoints").is_symlink():
        raise ValueError(f"cannot write the results into {out}: {out / 'checkpoints'} is a link")
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        for folder in (out, out / "checkpoints"):
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as err:
        raise ValueError(f"cannot write the results into {out}: {err.strerror or err} ({err.filename or out})") from err
    return out


class ResultsError(ValueError):
    """A results file that cannot be read, or that describes other settings than those asked for."""


def run_name(activation: str, seed: int) -> str:
    """The checkpoint name of one run of the comparison."""
    return f"FashionMNIST_{activation}_seed{seed}"


@dataclass(frozen=True)
class Experiment:
    """What every run of a comparison shares: the layers, the protocol, the initialization and the data.

    ``norm`` and ``residual`` are the ``BaseNetwork`` options of the same names; like a network's
    config, ``to_dict`` leaves them out when off.
    """

    hidden_sizes: tuple[int, ...]
    protocol: Protocol
    init: str
    data: DataSpec
    norm: str = "none"
    residual: bool = False

    def to_dict(self) -> dict:
        """The experiment as plain JSON values, the protocol's settings at the top level."""
        return {"hidden_sizes": list(self.hidden_sizes), **layer_options(self.norm, self.residual),
                **self.protocol.to_dict(), "init": self.init, "data": asdict(self.data)}

    @classmethod
    def from_dict(cls, values: dict) -> Experiment:
        """The experiment that ``to_dict`` gave ``values``."""
        values = dict(values)
        hidden_sizes, init, data = tuple(values.pop("hidden_sizes")), values.pop("init"), values.pop("data")
        norm, residual = values.pop("norm", "none"), values.pop("residual", False)
        return cls(hidden_sizes, Protocol(**values), init, DataSpec(**data), norm, residual)

    def __post_init__(self) -> None:
        layer_sizes(784, self.hidden_sizes, 10)
        check_init(self.init)
        check_norm(self.norm)
        check_residual(self.residual)

    def network(self, activation: str) -> BaseNetwork:
        """A new network of ``activation`` with this experiment's layers."""
        return BaseNetwork(get_activation(activation), hidden_sizes=list(self.hidden_sizes), norm=self.norm,
                           residual=self.residual)

    def request(self, activation: str, seed: int) -> RunRecord:
        """The record that the run of ``activation`` with ``seed`` must carry."""
        config = network_config(get_activation(activation), hidden_sizes=self.hidden_sizes, norm=self.norm,
                                residual=self.residual)
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

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if whole_number("best_epoch", self.best_epoch) > whole_number("epochs", self.epochs):
            raise ValueError(f"best_epoch {self.best_epoch} lies beyond the {self.epochs} epochs run")
        if self.test_acc is not None and not 0 <= finite_number("test_acc", self.test_acc) <= 1:
            raise ValueError(f"test_acc must be None or lie between 0 and 1, not {self.test_acc!r}")
        if finite_number("wall_time", self.wall_time) < 0:
            raise ValueError(f"wall_time must be a finite number of seconds, not {self.wall_time!r}")
        if not isinstance(self.activation, str) or not isinstance(self.stop_reason, str):
            raise ValueError("activation and stop_reason must be strings")
        if self.status not in (FINISHED, DIVERGED):
            raise ValueError(f"a result's status is finished or diverged, not {self.status!r}")

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


def summarize(accuracies: Sequence[float | None], diverged: Sequence[bool] = ()) -> Summary:
    """Mean, sample standard deviation, minimum, maximum and failure count of test accuracies.

    A run fails when it diverged (``diverged``, one flag per run), has no test accuracy, or stays
    below ``FAILED_BELOW``; the statistics are over every run that has an accuracy.
    """
    measured = [acc for acc in accuracies if acc is not None]
    flags = list(diverged) or [False] * len(accuracies)
    return Summary(
        runs=len(accuracies),
        mean=statistics.fmean(measured) if measured else None,
        std=statistics.stdev(measured) if len(measured) > 1 else None,
        min=min(measured, default=None),
        max=max(measured, default=None),
        failed=sum(flag or acc is None or acc < FAILED_BELOW for acc, flag in zip(accuracies, flags)),
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

    def __post_init__(self) -> None:
        unknown = sorted({run.activation for run in self.runs} - set(self.activations))
        if unknown:
            raise ValueError(f"runs of {', '.join(unknown)}, which the results do not list as activations")
        if finite_number("wall_time", self.wall_time) < 0:
            raise ValueError(f"wall_time must be a finite number of seconds, not {self.wall_time!r}")

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
        return {name: summarize(accs, [run.status == DIVERGED for run in self.runs if run.activation == name])
                for name, accs in self.accuracies().items()}

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
         init: str = "default", norm: str = "none", residual: bool = False
         ) -> tuple[Experiment, list[tuple[str, int]]]:
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
    if norm == "batch" and protocol.batch_size < 2:
        raise ValueError("BatchNorm normalizes over the batch: it needs a batch_size of at least 2, not "
                         f"{protocol.batch_size}")
    experiment = Experiment(tuple(hidden_sizes), protocol, init, DataSpec.of(data), norm, residual)
    experiment.network(activations[0])
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
    norm: str = "none",
    residual: bool = False,
    overwrite: bool = False,
    after_run: Callable[[list[tuple[str, int]]], None] | None = None,
) -> ComparisonResults:
    """Train a ``BaseNetwork`` per activation and seed; return every run and a summary per activation.

    Every setting is checked first (``plan``). Finished runs with the same record are reused, not
    trained again; a stored run with other settings, or a damaged one, is refused before anything is
    trained. ``after_run(still_to_run)`` is called before the first run and after each. Ctrl-C stops
    the whole comparison: the runs that ended come back, and the others are listed in ``missing``.
    """
    data = data or load_fashion_mnist()
    experiment, jobs = plan(activations, seeds, data, protocol=protocol, hidden_sizes=hidden_sizes, init=init,
                            norm=norm, residual=residual)
    if not overwrite:
        check_stored_runs(jobs, checkpoint_dir, experiment)
    device = settings.get_device()
    start = time.perf_counter()
    runs: list[RunResult] = []
    todo = list(jobs)
    try:
        for name, seed in tqdm(jobs, desc="runs", unit="run", disable=not progress):
            if after_run is not None:
                after_run(todo)
            net = experiment.network(name).to(device)
            history, record = train_run(net, run_name(name, seed), experiment.protocol, init=init, seed=seed,
                                        model_path=checkpoint_dir, data=data, overwrite=overwrite, progress=progress)
            if record.status == INTERRUPTED:
                break
            runs.append(RunResult.of(name, seed, history, record.status))
            todo.remove((name, seed))
    except KeyboardInterrupt:
        print("Comparison interrupted.")
    return ComparisonResults(
        experiment, list(dict.fromkeys(name for name, _ in jobs)), runs, todo, Environment.here(device),
        time.perf_counter() - start,
    )


def check_mergeable(stored: Experiment, requested: Experiment) -> None:
    """Raise a ``ResultsError`` that lists what differs when the two experiments' runs cannot be pooled."""
    changed = differences(stored.to_dict(), requested.to_dict())
    if changed:
        raise ResultsError("the results describe other settings than those asked for:\n  " + "\n  ".join(changed))


def runs_on_disk(checkpoint_dir: Path, experiment: Experiment, leave_out: Sequence[tuple[str, int]] = ()
                 ) -> list[RunResult]:
    """Every run in ``checkpoint_dir`` of ``experiment`` that ended (finished or diverged), as its files say.

    Runs in ``leave_out`` (activation, seed), and runs of other settings, are not counted.
    """
    found = []
    for path in sorted(Path(checkpoint_dir).glob("*.run.json")):
        files = RunFiles(checkpoint_dir, path.name.removesuffix(".run.json"))
        record = files.record()
        if record is None or record.status not in (FINISHED, DIVERGED):
            continue
        name = str(record.network["act_fn"]["name"]).lower()
        if (name, record.seed) in leave_out or files.model_name != run_name(name, record.seed):
            continue
        try:
            same = not record.differences(experiment.request(name, record.seed))
        except UnknownActivationError:
            continue
        history = files.history()
        if same and history is not None:
            found.append(RunResult.of(name, record.seed, history, record.status))
    return found


def results_on_disk(out: Path, experiment: Experiment, activations: Sequence[str],
                    missing: Sequence[tuple[str, int]], command: str = "") -> ComparisonResults:
    """The results of ``experiment`` as the runs in ``out/checkpoints`` stand; ``missing`` are still to run."""
    runs = runs_on_disk(out / "checkpoints", experiment, leave_out=missing)
    names = list(dict.fromkeys([*activations, *sorted({run.activation for run in runs})]))
    runs.sort(key=lambda run: (names.index(run.activation), run.seed))
    return ComparisonResults(experiment, names, runs, list(missing), Environment.here(settings.get_device()),
                             sum(run.wall_time for run in runs), command)


def publish(results: ComparisonResults, out: Path) -> None:
    """Write ``results.json`` and, when some run has a result, ``results.png`` into ``out``, each atomically."""
    save_results(results, out / "results.json")
    if results.summary:
        import matplotlib.pyplot as plt

        from actlab.plotting import plot_seed_summary

        figure = plot_seed_summary(results.accuracies(), results.failures())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        write_atomic(out / "results.png", buffer.getvalue())


@dataclass(frozen=True)
class ComparisonSettings:
    """What a comparison asks for, as typed values; ``from_values`` checks each one."""

    activations: tuple[str, ...] = SOURCE_ACTIVATIONS
    seeds: int = field(default_factory=default_seeds)
    first_seed: int = FIRST_SEED
    protocol: Protocol = field(default_factory=default_protocol)
    init: str = "default"
    hidden_sizes: tuple[int, ...] = DEFAULT_HIDDEN_SIZES
    norm: str = "none"
    residual: bool = False

    OPTIONS = ("activations", "seeds", "first_seed", "epochs", "patience", "batch_size", "optimizer", "lr",
               "momentum", "init", "hidden_sizes", "norm", "residual")
    """The settings a command line or a grid spec may give, by name."""

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> ComparisonSettings:
        """Settings from named values (``OPTIONS``), the mode's defaults for the others; a ``ValueError`` if wrong."""
        unknown = sorted(set(values) - set(cls.OPTIONS))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(cls.OPTIONS)}")
        get = dict(values).get
        activations, hidden_sizes = get("activations", list(SOURCE_ACTIVATIONS)), get("hidden_sizes",
                                                                                      list(DEFAULT_HIDDEN_SIZES))
        if not isinstance(activations, list) or not all(isinstance(name, str) for name in activations):
            raise ValueError(f"activations must be a list of names, not {activations!r}")
        if not isinstance(hidden_sizes, list):
            raise ValueError(f"hidden_sizes must be a list of positive integers, not {hidden_sizes!r}")
        for name in ("optimizer", "init", "norm"):
            if name in values and not isinstance(values[name], str):
                raise ValueError(f"{name} must be a name, not {values[name]!r}")
        changes = {key: values[option] for key, option in (("max_epochs", "epochs"), ("patience", "patience"),
                                                          ("batch_size", "batch_size"), ("optimizer", "optimizer"),
                                                          ("lr", "lr"), ("momentum", "momentum")) if option in values}
        return cls(tuple(name.lower() for name in activations), whole_number("seeds", get("seeds", default_seeds())),
                   check_seed(get("first_seed", FIRST_SEED)), default_protocol(**changes),
                   str(get("init", "default")), tuple(hidden_sizes), check_norm(get("norm", "none")),
                   check_residual(get("residual", False)))

    def command(self, out: Path) -> str:
        """The command line that asks for these settings."""
        p = self.protocol
        momentum = f" --momentum {p.momentum}" if p.momentum is not None else ""
        layers = (f" --norm {self.norm}" if self.norm != "none" else "") + (" --residual" if self.residual else "")
        return (f"python -m actlab compare --activations {' '.join(self.activations)} --seeds {self.seeds} "
                f"--first-seed {self.first_seed} --epochs {p.max_epochs} --patience {p.patience} "
                f"--batch-size {p.batch_size} --optimizer {p.optimizer} --lr {p.lr}{momentum} --init {self.init} "
                f"--hidden-sizes {' '.join(map(str, self.hidden_sizes))}{layers} --out {out}")


def run_comparison(comparison: ComparisonSettings, out: str | Path, data: FashionMNISTData | None = None,
                   overwrite: bool = False, progress: bool = True) -> ComparisonResults:
    """Run ``comparison`` into ``out``: ``results.json``, ``results.png`` and ``checkpoints/``.

    Holds ``out``'s lock throughout (one writer per folder). Before anything is trained, every setting,
    the results already in ``out`` and every stored run are checked. ``results.json`` is rebuilt from
    the runs on disk before the first run and after each, so it never claims a run that the disk does
    not hold: runs about to be retrained are listed as missing until they end.
    """
    data = data or load_fashion_mnist()
    seeds = seed_range(comparison.first_seed, comparison.seeds)
    experiment, _ = plan(comparison.activations, seeds, data, protocol=comparison.protocol,
                         hidden_sizes=comparison.hidden_sizes, init=comparison.init, norm=comparison.norm,
                         residual=comparison.residual)
    folder = check_output_folder(out)
    with folder_lock(folder):
        existing = load_results(folder / "results.json") if (folder / "results.json").is_file() else None
        if existing is not None and not overwrite:
            try:
                check_mergeable(existing.experiment, experiment)
            except ResultsError as err:
                raise ResultsError(f"{folder / 'results.json'}: {err}\nChoose another --out, or pass --overwrite to "
                                   "train again and replace these results.") from None
        command = comparison.command(folder)

        def after_run(todo: list[tuple[str, int]]) -> None:
            publish(results_on_disk(folder, experiment, comparison.activations, todo, command), folder)

        results = compare_activations(comparison.activations, seeds, folder / "checkpoints", data, progress,
                                      protocol=comparison.protocol, hidden_sizes=comparison.hidden_sizes,
                                      init=comparison.init, norm=comparison.norm, residual=comparison.residual,
                                      overwrite=overwrite, after_run=after_run)
        final = results_on_disk(folder, experiment, comparison.activations, results.missing, command)
        publish(final, folder)
    return final


def save_results(results: ComparisonResults, path: Path) -> None:
    """Write the comparison's results as strict JSON (no NaN), atomically."""
    write_atomic(Path(path), json.dumps(results.to_dict(), indent=1, allow_nan=False).encode())


def load_results(path: Path) -> ComparisonResults:
    """Read a comparison's results written by ``save_results``, strictly and with every value's type checked."""
    path = Path(path)
    try:
        values = read_json(path, "comparison results")
        if not isinstance(values, dict) or values.get("format") != RESULTS_FORMAT:
            raise ValueError(f"it is not a results file of format {RESULTS_FORMAT}")
        return ComparisonResults.from_dict(values)
    except (CheckpointError, KeyError, TypeError, ValueError, AttributeError) as err:
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
                  "norm": results.experiment.norm, "residual": results.experiment.residual,
                  **results.experiment.protocol.to_dict(), "init": results.experiment.init}
        for run in results.runs:
            rows.append({**shared, "activation": run.activation, "seed": run.seed, "test_acc": run.test_acc,
                         "epochs": run.epochs, "best_epoch": run.best_epoch, "wall_time": run.wall_time})
    return rows
