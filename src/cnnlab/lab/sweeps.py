"""The lab's sweep API: JSON only (the Sweeps page comes with the ES-module rewrite of the lab's JavaScript).

GET /api/sweeps   every sweep folder under the runs root (its sweep.json) with its trials table (sweep.csv)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request

from cnnlab.errors import RunFileError
from cnnlab.rundir import find_sweeps

router = APIRouter(prefix="/api")


@router.get("/sweeps")
def sweeps(request: Request) -> list[dict]:
    root: Path = request.app.state.root
    found = []
    for folder in find_sweeps(root):
        try:
            spec = folder.read_spec()
        except RunFileError:  # a sweep.json being written, or not a sweep's: listed elsewhere, not here
            continue
        try:
            trials = folder.read_table()
        except RunFileError:  # no trial has ended yet
            trials = []
        found.append(
            {
                "path": str(folder.path.relative_to(root)),
                "study": spec.study,
                "storage": spec.storage,
                "space": dict(spec.space),
                "trials_wanted": spec.extra.get("trials_wanted"),
                "trials": trials,
                "report": folder.report.is_file(),
            }
        )
    return found
