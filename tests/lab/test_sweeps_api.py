"""GET /api/sweeps: the sweep folders under the runs root with their trials tables."""

from __future__ import annotations

from cnnlab.rundir import SweepFolder, SweepSpec


def test_sweeps_lists_each_sweep_with_its_trials(tmp_path, make_client):
    root = tmp_path / "runs"
    folder = SweepFolder(root / "sweeps" / "lenet5")
    folder.path.mkdir(parents=True)
    folder.write_spec(SweepSpec("s1", "sqlite:///x.db", {"lr": "0.001:0.1:log"}, "sweep.csv", {"trials_wanted": 2}))
    rows = [
        {"number": 0, "state": "COMPLETE", "lr": 0.01, "val_accuracy": 0.93},
        {"number": 1, "state": "PRUNED", "lr": 1e-3, "val_accuracy": 0.4},
    ]
    folder.write_table(["number", "state", "lr", "val_accuracy"], rows)
    SweepFolder(root / "other").path.mkdir(parents=True)
    SweepFolder(root / "other").write_spec(SweepSpec("s2", "journal:j.log", {"batch_size": "32,64"}))
    response = make_client(root).get("/api/sweeps")
    assert response.status_code == 200
    first, second = response.json()
    assert first["path"] == "other" and first["trials"] == [] and first["study"] == "s2"
    assert second["path"] == "sweeps/lenet5" and second["space"] == {"lr": "0.001:0.1:log"}
    assert second["trials_wanted"] == 2
    assert second["trials"][1] == {"number": "1", "state": "PRUNED", "lr": "0.001", "val_accuracy": "0.4"}
