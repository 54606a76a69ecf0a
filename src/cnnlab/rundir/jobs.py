"""The lab's job records, RUNS/.lab/jobs/<id>.json (see `cnnlab.lab.jobs` for what a job is), read and written
here alone."""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import RunFileError
from cnnlab.rundir import storage
from cnnlab.rundir.schemas import JobRecord

JOBS_FOLDER = Path(".lab") / "jobs"  # under the runs root


def read_job(path: Path) -> JobRecord:
    return JobRecord.from_dict(storage.read_object(path), path)


def write_job(path: Path, record: JobRecord | dict) -> None:
    record = record if isinstance(record, JobRecord) else JobRecord.from_dict(record, path)
    storage.write_object(path, record.to_dict())


def read_jobs(folder: Path) -> list[JobRecord]:
    """Every readable record in `folder`; one that is not (a stray file) is no job and is skipped."""
    found = []
    for path in Path(folder).glob("*.json"):
        try:
            found.append(read_job(path))
        except RunFileError:
            continue
    return found
