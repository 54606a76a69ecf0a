"""A worker killed between Optuna creating its trial and the objective naming the worker leaves a RUNNING trial
with no worker and no heartbeat: after GRACE seconds the other workers fail it, so the study can finish."""

from __future__ import annotations

import os
import socket

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
from optuna.trial import TrialState  # noqa: E402

from cnnlab.sweeps import study as studies  # noqa: E402


def test_an_unclaimed_trial_fails_after_the_grace_period_and_a_live_workers_trial_stays(tmp_path, monkeypatch):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    unclaimed = study.ask()  # its worker "died" before naming itself
    live = study.ask()
    live.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    assert studies.fail_dead_trials(study) == []  # within the grace period: nothing failed
    monkeypatch.setattr(studies, "GRACE", -1.0)
    assert studies.fail_dead_trials(study) == [unclaimed.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {unclaimed.number: TrialState.FAIL, live.number: TrialState.RUNNING}
    assert study.get_trials()[unclaimed.number].user_attrs["failed_because"] == "its worker died"
