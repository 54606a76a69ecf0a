"""The run directory and every file cnnlab keeps in one: a training run's, an experiment's, a sweep's and the
lab's job records. Each file has a schema (a frozen dataclass in `schemas`), one reader and one atomic writer
here; no other module opens these files by name (tests/test_structure.py checks).

    run.py         RunDir: config.json, results.json, metrics.csv, eval.json, progress.jsonl; open_run, creation
    metrics.py     metrics.csv rows and progress.jsonl events
    experiment.py  ExperimentFolder (config.json, results.md, results.csv), SweepFolder (sweep.json, .csv, .md)
    jobs.py        RUNS/.lab/jobs/<id>.json
    lrfind.py      LrFindFolder: an lr range test's lr-find.json and lr-find.png
    storage.py     the JSON reader and atomic writer the others use
"""

from cnnlab.rundir.experiment import ExperimentFolder, SweepFolder, find_sweeps
from cnnlab.rundir.jobs import read_job, read_jobs, write_job
from cnnlab.rundir.lrfind import LrFindFolder
from cnnlab.rundir.metrics import (
    METRIC_COLUMNS,
    PHASE_COLUMNS,
    TEST_COLUMNS,
    append_event,
    phase_marks,
    read_events,
)
from cnnlab.rundir.run import (
    CONFIG,
    CURVES,
    EVALUATION,
    FINETUNE,
    METRICS,
    MODEL_SOURCE,
    PROGRESS,
    RESULTS,
    RUN_FILES,
    WEIGHTS,
    RunDir,
    data_metadata,
    default_run_dir,
    folder_label,
    holds_run,
    open_folder,
    open_run,
    optional,
    prepare_run_dir,
    versions,
)
from cnnlab.rundir.schemas import (
    DataInfo,
    Evaluation,
    ExperimentConfig,
    FinetuneRecord,
    JobRecord,
    Results,
    RunConfig,
    SweepSpec,
)

__all__ = [
    "CONFIG",
    "CURVES",
    "EVALUATION",
    "FINETUNE",
    "METRICS",
    "METRIC_COLUMNS",
    "PHASE_COLUMNS",
    "MODEL_SOURCE",
    "PROGRESS",
    "RESULTS",
    "RUN_FILES",
    "TEST_COLUMNS",
    "WEIGHTS",
    "DataInfo",
    "Evaluation",
    "ExperimentConfig",
    "ExperimentFolder",
    "FinetuneRecord",
    "JobRecord",
    "LrFindFolder",
    "Results",
    "RunConfig",
    "RunDir",
    "SweepFolder",
    "SweepSpec",
    "append_event",
    "data_metadata",
    "find_sweeps",
    "default_run_dir",
    "folder_label",
    "holds_run",
    "open_folder",
    "open_run",
    "phase_marks",
    "optional",
    "prepare_run_dir",
    "read_events",
    "read_job",
    "read_jobs",
    "versions",
    "write_job",
]
