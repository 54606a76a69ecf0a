"""What every experiment shares: its options, its result, and how a result is written to disk.

An experiment is a function `run(options: ExperimentOptions) -> ExperimentResult`. It writes its PNG plots into
`options.out` itself; `write_result` then writes results.md, results.csv and config.json next to them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from cnnlab import reporting
from cnnlab.notebook import use_file_backend
from cnnlab.repeats import Claim, csv_rows, format_spread
from cnnlab.rundir import ExperimentConfig, ExperimentFolder, RunDir

use_file_backend()  # files only; experiments run on machines without a screen

QUICK_DATASET = "digits"  # offline and tiny: quick runs and tests need no files
FULL_DATASET = "fashion-mnist"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class ExperimentOptions:
    dataset: str | None = None  # None = digits when quick, else fashion-mnist
    epochs: int | None = None  # None = the experiment's own default for the mode
    quick: bool = False  # the seconds-long variant: tiny subsets, 1-2 epochs, small models
    out: Path = Path("runs/experiment")
    seed: int = 0
    data_dir: str | None = None
    # Only for experiments registered with these in `accepts`: the networks to run (e.g. degradation's twins
    # ["plain18", "resnet18"]), and a local checkpoint for the one network (drop-block on a pretrained ResNet).
    models: list[str] | None = None
    weights: str | None = None
    # Only for experiments that loop over seeds themselves (`Experiment.own_seeds`): the seeds to run; None = the
    # experiment's own count from `seed`. Other experiments are run once per seed by `repeated.run_seeds`.
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.models, str):  # "plain18,resnet18" as typed on the command line
            from cnnlab.building import split_models

            self.models = split_models(self.models)

    def dataset_or_default(self) -> str:
        return self.dataset or (QUICK_DATASET if self.quick else FULL_DATASET)

    def epochs_or(self, quick: int, full: int) -> int:
        return self.epochs if self.epochs is not None else (quick if self.quick else full)


@dataclass
class ExperimentResult:
    title: str
    columns: list[str]  # the table's columns, in order; every row is a dict keyed by them
    rows: list[dict]
    findings: list[str]  # two or three sentences stating what the numbers show
    plots: list[str] = field(default_factory=list)  # PNG file names the experiment wrote into `out`
    config: dict = field(default_factory=dict)  # what the experiment chose (models, sizes, recipe)
    # The tutorials' claims as comparisons between two rows; over several seeds each gets a verdict that respects
    # the spread (cnnlab.repeats.verdict). One run states its findings in words instead.
    claims: list[Claim] = field(default_factory=list)


def train(options: ExperimentOptions, data, label: str, run_name: str, model=None, **config) -> dict:
    """Train through the project's trainer, quietly, into `options.out / run_name`, and return its results dict
    with the per-epoch rows added as `results["metrics"]`.

    `data` is a loaded `ImageDataset` (load it once per experiment); `label` is a registered model name, or just
    the run's label when `model` (a module, trained in place) is given; `config` holds other TrainConfig fields.
    """
    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.trainer import run

    settings = dict(dataset=options.dataset_or_default(), data_dir=options.data_dir, seed=options.seed) | config
    run_dir = options.out / run_name
    results = run(
        TrainConfig(model=label, out=str(run_dir), **settings), overwrite=True, quiet=True, data=data, model=model
    )
    results["metrics"] = RunDir(run_dir).read_metrics()
    return results


def default_out(name: str) -> Path:
    return reporting.timestamped_dir("experiment", name)


def spread_cell(column: str, value):
    """A table cell: a Spread (several seeds) as "mean ± std", a single run's value as it is."""
    from cnnlab.repeats import Spread

    return format_spread(column, value) if isinstance(value, Spread) else value


def write_result(result: ExperimentResult, out: str | Path, options: ExperimentOptions | None = None) -> Path:
    """Write results.md (title, table, findings), results.csv and config.json into `out`, each atomically; return
    results.md's path.

    Every plot the result lists must already be a PNG in `out`: a missing one is a bug in the experiment.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in result.plots:
        path = out / name
        if not path.is_file() or path.read_bytes()[:8] != PNG_MAGIC:
            raise RuntimeError(f"experiment '{result.title}' lists plot {name} but {path} is not a PNG")
    cells = ([spread_cell(c, row.get(c)) for c in result.columns] for row in result.rows)
    table = reporting.markdown_table(result.columns, cells)
    lines = [f"# {result.title}", "", table, ""]
    lines += [" ".join(result.findings), ""] if result.findings else []
    lines += [f"![{name}]({name})" for name in result.plots]
    folder = ExperimentFolder(out)
    folder.write_results_md("\n".join(lines) + "\n")
    folder.write_rows(*csv_rows(result.rows, result.columns))
    options_dict = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()} if options else {}
    config = ExperimentConfig(
        title=result.title,
        options=options_dict,
        experiment=result.config,
        claims=tuple(asdict(claim) for claim in result.claims),
        plots=tuple(result.plots),
        versions=reporting.versions(),
    )
    folder.write_config(config)
    return folder.results_md
