"""Jobs: `cnnlab train`, `experiment`, `lr-find` or `sweep` processes the lab starts, recorded on disk, never held
in memory.

A job is a JSON file, RUNS/.lab/jobs/<id>.json: the argv, the run directory, the pid once started, and the exit
status once the lab saw it end. Its state is worked out from that file, the process table and the run directory
each time it is asked for, so a restarted server (or a second one) sees the same jobs:

- queued: not started yet (at most `max_running` jobs run at once; the oldest queued one starts next);
- running: its process is alive;
- finished / failed / stopped: from its exit status or, if the server was away when it ended, from the
  results.json the trainer wrote. A process that died without a word (killed, machine rebooted) is `stopped` and
  `interrupted`; its checkpoint lets it resume.

The process writes its progress as JSON lines to RUN/progress.jsonl (CNNLAB_PROGRESS_FILE, see
cnnlab.engine.progress) and its output to RUNS/.lab/jobs/<id>.log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from cnnlab.engine.progress import PROGRESS_FILE_ENV
from cnnlab.errors import RunFileMissing
from cnnlab.lab.security import LabRequestError, relative_name
from cnnlab.rundir import (
    PROGRESS,
    ExperimentFolder,
    LrFindFolder,
    RunDir,
    SweepFolder,
    optional,
    read_job,
    read_jobs,
    write_job,
)

LAB_DIR = ".lab"
STATES = ("queued", "running", "finished", "failed", "stopped")
SIGNAL_EXITS = (130, 143, -signal.SIGTERM, -signal.SIGINT)  # the trainer's "stopped by a signal" exits
PF_KTHREAD = 0x00200000  # /proc/PID/stat flags (field 9): a kernel thread


def new_job_id() -> str:
    # Sortable by creation time; the random tail keeps two jobs of one second apart.
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class _FolderLock:
    """The jobs folder's lock: re-entrant within a thread (an RLock) and exclusive across server processes (flock,
    taken by the outermost holder only: a second flock on a new descriptor would block its own process)."""

    def __init__(self, path: Path) -> None:
        self.path, self.local, self.depth, self.handle = path, threading.RLock(), 0, None

    def __enter__(self) -> None:
        self.local.acquire()
        if self.depth == 0:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.handle = open(self.path, "w")
                fcntl.flock(self.handle, fcntl.LOCK_EX)
            except BaseException:
                self.local.release()
                raise
        self.depth += 1

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
        self.local.release()


_FOLDER_LOCKS: dict[Path, _FolderLock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


def _folder_lock(folder: Path) -> _FolderLock:
    """One lock object per jobs folder in this process, shared by every JobStore over it."""
    with _FOLDER_LOCKS_GUARD:
        key = folder.resolve()
        if key not in _FOLDER_LOCKS:
            _FOLDER_LOCKS[key] = _FolderLock(key / ".lock")
        return _FOLDER_LOCKS[key]


def process_alive(pid: int, marker: str) -> bool:
    """Whether `pid` runs and is the job's process (its command line holds `marker`, the run directory), so that
    a reused pid does not pass for the job. Zombies count as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():  # not Linux: trust the signal check
        return True
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()  # from field 3, the state
        if fields[0] == "Z" or int(fields[6]) & PF_KTHREAD:  # a kernel thread has a reused pid, and no command line
            return False
        return marker in _command_line(proc)
    except (OSError, IndexError, ValueError):
        return False


def _command_line(proc: Path, settle_s: float = 2.0) -> str:
    """`proc`'s command line. Just after exec it reads empty for a moment (the kernel lets the parent go and closes
    its pipes before it sets up the new argv), so an empty one is read again until it settles."""
    deadline = time.monotonic() + settle_s
    while not (text := (proc / "cmdline").read_bytes().decode(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return text


class JobStore:
    def __init__(self, runs_root: Path, max_running: int = 1) -> None:
        self.root = Path(runs_root)
        self.folder = self.root / LAB_DIR / "jobs"
        self.max_running = max_running
        self._folder_lock = _folder_lock(self.folder)

    # ------------------------------------------------------------------------------------------------ records
    def _path(self, job_id: str) -> Path:
        if not job_id or not all(c.isalnum() or c == "-" for c in job_id):
            raise LabRequestError(f"no job '{job_id}'", 404)
        return self.folder / f"{job_id}.json"

    def record(self, job_id: str) -> dict:
        try:
            return read_job(self._path(job_id)).to_dict()
        except RunFileMissing:
            raise LabRequestError(f"no job '{job_id}'", 404) from None

    def records(self) -> list[dict]:
        """Every job, oldest first (the queue's order)."""
        found = [record.to_dict() for record in read_jobs(self.folder)]
        return sorted(found, key=lambda r: (r.get("created", 0), r.get("id", "")))

    def _update(self, job_id: str, **changes) -> dict:
        # Read, change and write under the lock: the reaper's exit code and a stop request come from different
        # threads, and without it one would overwrite the other's change.
        with self._lock():
            record = {**self.record(job_id), **changes}
            write_job(self._path(job_id), record)
            return record

    def _lock(self) -> _FolderLock:
        """One scheduler (or record change) at a time, across threads and server processes; re-entrant."""
        return self._folder_lock

    # ------------------------------------------------------------------------------------------------- states
    def state(self, record: dict) -> tuple[str, bool]:
        """(state, interrupted) of a record; see the module docstring."""
        if record.get("cancelled"):
            return "stopped", False
        if "pid" not in record:
            return "queued", False
        code = record.get("returncode")
        if code is None and process_alive(record["pid"], record["run_dir"]):
            return "running", False
        if code is None:  # ended while no server watched it: the run directory tells how
            status = self._results_status(record)
            if status == "completed":
                return "finished", False
            if status == "failed":
                return "failed", False
            return "stopped", status != "interrupted" and not record.get("stop_requested")
        if code == 0:
            return "finished", False
        return ("stopped", False) if code in SIGNAL_EXITS or record.get("stop_requested") else ("failed", False)

    def _results_status(self, record: dict) -> str | None:
        if record.get("kind") == "experiment":
            return "completed" if ExperimentFolder(record["run_dir"]).has_results() else None
        if record.get("kind") == "sweep":  # sweep.md is written once the study has its trials
            return "completed" if SweepFolder(record["run_dir"]).report.is_file() else None
        if record.get("kind") == "lr-find":
            return "completed" if optional(LrFindFolder(record["run_dir"]).read_record) is not None else None
        results = optional(RunDir(record["run_dir"]).read_results)
        return results.status if results is not None else None

    # --------------------------------------------------------------------------------------------- life cycle
    def submit(self, kind: str, cli_args: list[str], run_dir: Path, **extra) -> dict:
        """Record a job (`cnnlab` + cli_args) and start it now if nothing else runs."""
        job_id = new_job_id()
        record = {
            "id": job_id,
            "kind": kind,
            "argv": [sys.executable, "-m", "cnnlab", *cli_args],
            "run_dir": str(run_dir),
            "run": relative_name(self.root, run_dir),
            "created": time.time(),
            **extra,
        }
        with self._lock():  # the busy check and the record together: two resumes of one run cannot both pass
            self.refuse_busy(run_dir)
            write_job(self._path(job_id), record)
        self.advance()
        return self.record(job_id)

    def refuse_busy(self, run_dir: Path) -> None:
        """409 when a queued or running job writes `run_dir` or a folder inside it."""
        for other in self.records():
            state = self.state(other)[0]
            if Path(other["run_dir"]).is_relative_to(run_dir) and state in ("queued", "running"):
                raise LabRequestError(f"job {other['id']} is already {state} on run '{other['run']}'", 409)

    def clear_finished(self) -> list[str]:
        """Forget the finished, failed and stopped jobs: their records and logs go, their run directories stay.
        Returns the ids removed."""
        removed = []
        with self._lock():
            for record in self.records():
                if self.state(record)[0] in ("queued", "running"):
                    continue
                for path in (self._path(record["id"]), self.folder / f"{record['id']}.log"):
                    path.unlink(missing_ok=True)
                if record.get("kind") == "experiment":
                    self.progress_path(record).unlink(missing_ok=True)
                removed.append(record["id"])
        return removed

    def delete_run(self, run_dir: Path) -> None:
        """Delete a run directory (already confined to the runs root by the caller) unless a queued or running job
        writes it; under the lock, so no job can be submitted on it meanwhile."""
        with self._lock():
            self.refuse_busy(run_dir)
            shutil.rmtree(run_dir)

    def advance(self) -> None:
        """Start the oldest queued jobs while fewer than `max_running` run. Called after every change and by
        readers, so a queue moves on even if the server was down when a job ended."""
        with self._lock():
            records = self.records()
            running = sum(self.state(r)[0] == "running" for r in records)
            for record in records:
                if running >= self.max_running:
                    break
                if self.state(record)[0] == "queued":
                    self._start(record)
                    running += 1

    def _start(self, record: dict) -> None:
        run_dir = Path(record["run_dir"])
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            PROGRESS_FILE_ENV: str(self.progress_path(record)),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "160",
        }  # the log's lines unwrapped
        log = open(self.folder / f"{record['id']}.log", "ab")
        # A new session: Ctrl-C in the server's terminal does not reach the training, which outlives the server.
        process = subprocess.Popen(
            record["argv"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,
        )
        log.close()
        self._update(record["id"], pid=process.pid, started=time.time())
        threading.Thread(target=self._reap, args=(record["id"], process), daemon=True).start()

    def _reap(self, job_id: str, process: subprocess.Popen) -> None:
        code = process.wait()
        self._update(job_id, returncode=code, ended=time.time())
        self.advance()

    def progress_path(self, record: dict) -> Path:
        if record.get("kind") == "experiment":  # the experiment's folder only appears once it writes
            return self.folder / f"{record['id']}.progress.jsonl"
        return Path(record["run_dir"]) / PROGRESS

    def stop(self, job_id: str) -> dict:
        """SIGTERM, which the trainer turns into a checkpoint and a clean exit; a queued job is cancelled (and the
        folder reserved for it removed while still empty). Under the lock: the queue cannot start a job between
        the state check and the cancellation."""
        with self._lock():
            record = self.record(job_id)
            state, _ = self.state(record)
            if state == "queued":
                with contextlib.suppress(OSError):  # not empty, or gone: leave it
                    Path(record["run_dir"]).rmdir()
                return self._update(job_id, cancelled=True, ended=time.time())
            if state != "running":
                raise LabRequestError(f"job {job_id} is {state}, not running", 409)
            self._update(job_id, stop_requested=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(record["pid"], signal.SIGTERM)
            return self.record(job_id)

    def log_tail(self, job_id: str, lines: int = 20) -> list[str]:
        path = self.folder / f"{job_id}.log"
        if not path.exists():
            return []
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16384))
            text = handle.read().decode(errors="replace")
        # rich's live bar (a terminal only) is off here; keep the last complete lines
        return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]
