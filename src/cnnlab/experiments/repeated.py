"""An experiment over several seeds: each seed runs the whole experiment into OUT/seed-N, and the summary in OUT
has every measured column as mean ± std with n, the experiment's claims judged against the spread
(`cnnlab.repeats.verdict`), and the training curves as a mean line in a min-max band.

A seed whose folder an earlier run of the same experiment with the same options finished is read back, not run
again (`SeedReusedWarning`): an interrupted `--seeds 0,1,2` continues at the seed it was on, and seeds run apart
(`--seeds 0` here, `--seeds 1` on another core or another day) into one OUT combine into one table.

Experiments that already loop over seeds inside (`Experiment.own_seeds`: activations, vgg-bn) get the seed list
instead and are run once.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, replace
from pathlib import Path

from cnnlab.errors import RunFileError, SeedReusedWarning
from cnnlab.experiments.common import ExperimentOptions, ExperimentResult, write_result
from cnnlab.repeats import Claim, aggregate_rows, band_plot, seed_dir, verdict
from cnnlab.rundir import METRICS, ExperimentFolder

CURVE_METRICS = ("train_loss", "train_error", "val_error", "test_error")  # errors: 1 - accuracy, as P3 plots
BAND_PLOT = "seeds_band.png"
EXPERIMENT_KEY = "experiment_name"  # in each seed's config.json: which experiment wrote the folder


def run_seeds(experiment, options: ExperimentOptions, seeds: tuple[int, ...]) -> ExperimentResult:
    """Run `experiment` once per seed (results written into each seed's folder), then combine them."""
    results = []
    for seed in seeds:
        seed_options = replace(options, seed=seed, out=seed_dir(options.out, seed), seeds=None)
        results.append(finished_seed(experiment.name, seed_options) or run_seed(experiment, seed_options))
    return combine(results, seeds, options.out)


def run_seed(experiment, options: ExperimentOptions) -> ExperimentResult:
    options.out.mkdir(parents=True, exist_ok=True)
    result = experiment.run(options)
    result.config.setdefault("out", str(options.out))
    result.config[EXPERIMENT_KEY] = experiment.name
    write_result(result, options.out, options)
    return result


def finished_seed(name: str, options: ExperimentOptions) -> ExperimentResult | None:
    """The result in `options.out` if experiment `name` finished it there with these options (all but the
    folder's path); None if the folder is missing, unfinished (write_result writes config.json last) or another's."""
    folder = ExperimentFolder(options.out)
    try:
        config = folder.read_config()
        columns, rows = folder.read_rows()
        claims = [Claim(**claim) for claim in config.claims]
    except (RunFileError, TypeError):  # TypeError: a claim that is not Claim's fields
        return None
    if config.experiment.get(EXPERIMENT_KEY) != name or _comparable(config.options) != _comparable(asdict(options)):
        return None
    warnings.warn(SeedReusedWarning(options.seed, str(options.out)), stacklevel=2)
    return ExperimentResult(
        title=config.title,
        columns=columns,
        rows=rows,
        findings=[],
        plots=list(config.plots),
        config=dict(config.experiment),
        claims=claims,
    )


def _comparable(options: dict) -> dict:
    """Options as config.json holds them (JSON: tuples as lists, paths as text), the folder's own path left out."""
    return {k: v for k, v in json.loads(json.dumps(options, default=str)).items() if k != "out"}


def combine(results: list[ExperimentResult], seeds: tuple[int, ...], out: Path) -> ExperimentResult:
    """One result from the seeds' results: rows merged (`aggregate_rows`), claims judged, curves banded."""
    first = results[0]
    rows = aggregate_rows([r.rows for r in results], first.columns)
    sentences = [verdict(claim, rows)[1] for claim in first.claims]
    sentences = [s[0].upper() + s[1:] for s in sentences]
    sentences.append(
        f"Each cell is mean ± std (sample std) over n={len(seeds)} seeds ({', '.join(map(str, seeds))}); a "
        "difference within std(A) + std(B) is 'not resolved'. Each seed's own table and findings are in "
        "seed-N/results.md."
    )
    plots = [BAND_PLOT] if band_plot(curve_groups(out, seeds), CURVE_METRICS, out / BAND_PLOT, first.title) else []
    return ExperimentResult(
        title=f"{first.title} ({len(seeds)} seeds)",
        columns=first.columns,
        rows=rows,
        findings=sentences,
        plots=plots,
        config={"seeds": list(seeds), "per_seed": first.config},
        claims=first.claims,
    )


def curve_groups(out: Path, seeds: tuple[int, ...]) -> dict[str, list[Path]]:
    """Every run directory (a folder with metrics.csv) under the seed folders, grouped by its path inside them:
    seed-0/plain20 and seed-1/plain20 are one group."""
    groups: dict[str, list[Path]] = {}
    for seed in seeds:
        root = seed_dir(out, seed)
        for metrics in sorted(root.rglob(METRICS)):
            groups.setdefault(str(metrics.parent.relative_to(root)), []).append(metrics.parent)
    return groups


def single_run_verdicts(result: ExperimentResult) -> list[str]:
    """The claims of a one-seed run, each "not resolved at n=1" with its difference, and how to resolve them: a
    single run has no spread, so its findings describe it and do not decide a claim."""
    if not result.claims:
        return []
    judged = [verdict(claim, result.rows)[1] for claim in result.claims]
    return [s[0].upper() + s[1:] for s in judged] + [
        "One run has no spread: rerun with --seeds 0,1,2 (or --repeats 3) for verdicts that weigh it."
    ]
