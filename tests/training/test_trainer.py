"""End-to-end training on the offline digits set: the accuracy bar, the run directory, eval, predict, compare."""

import csv
import json

import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.checkpoint import read_state, read_weights

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("runs") / "lenet5"
    results = cnnlab.train("lenet5", dataset="digits", out=str(out), quiet=True)
    return out, results


def test_lenet5_on_digits_with_defaults_reaches_97_percent(lenet_run):
    _, results = lenet_run
    assert results["test_accuracy"] >= 0.97
    assert results["params"] == 44_426  # built at the data's 28x28


def test_run_directory_holds_everything(lenet_run):
    out, results = lenet_run
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "lenet5" and config["epochs"] == results["epochs"]
    assert set(config["versions"]) >= {"python", "torch", "cnnlab"}
    assert config["data"]["classes"] == [str(d) for d in range(10)]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == results["epochs"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((out / "results.json").read_text())
    for key in (
        "model",
        "dataset",
        "params",
        "macs",
        "epochs",
        "test_accuracy",
        "test_loss",
        "best_val_accuracy",
        "train_seconds",
        "train_images_per_second",
    ):
        assert key in saved
    assert saved["macs"] == 281_640  # conv 86,400 + 153,600, fc 30,720 + 10,080 + 840
    weights = read_weights(out / "model.safetensors")
    assert weights["conv1.weight"].shape == (6, 1, 5, 5)
    latest = (out / "checkpoints" / "latest").read_text()
    state = read_state(out / "checkpoints" / f"{latest}.state.pt")
    assert state["epoch"] == results["epochs"] and state["step_in_epoch"] == 0


def test_eval_reports_per_class_accuracy_and_confusion(lenet_run):
    out, results = lenet_run
    report = cnnlab.evaluate(out)
    assert report["test_accuracy"] == pytest.approx(results["test_accuracy"])
    assert len(report["per_class_accuracy"]) == 10
    matrix = torch.tensor(report["confusion_matrix"])
    assert matrix.sum() == 360 and matrix.diag().sum() / 360 == pytest.approx(results["test_accuracy"])
    assert (out / "confusion.png").read_bytes()[:8] == PNG_MAGIC


def test_predict_matches_evaluation_on_saved_test_images(lenet_run, digits, tmp_path):
    out, _ = lenet_run
    paths = []
    for i in range(5):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(digits.test_images[i, 0].numpy(), mode="L").save(path)
        paths.append(path)
    predictions = cnnlab.predict(out, paths, top_k=3)
    correct = sum(p["top"][0][0] == str(int(digits.test_labels[i])) for i, p in enumerate(predictions))
    assert correct >= 4
    for item in predictions:
        probabilities = [p for _, p in item["top"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6
    # An RGBA image is converted to the model's single channel, not refused.
    rgba = tmp_path / "rgba.png"
    Image.fromarray(digits.test_images[0, 0].numpy(), mode="L").convert("RGBA").save(rgba)
    assert cnnlab.predict(out, [rgba])[0]["top"][0] == predictions[0]["top"][0]


def test_compare_writes_table_csv_and_plot(tmp_path, digits):
    rows = cnnlab.compare(
        ["lenet5", "simple_cnn"], "digits", out=tmp_path / "cmp", epochs=2, train_subset=400, quiet=True
    )
    assert [r["model"] for r in rows] == ["lenet5", "simple_cnn"]
    assert all(r["epochs"] == 2 for r in rows)
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "| lenet5 | 44,426 |" in table and "| simple_cnn | 206,922 |" in table
    assert len(list(csv.DictReader((tmp_path / "cmp" / "results.csv").open()))) == 2
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == PNG_MAGIC


def test_same_seed_gives_identical_metrics(tmp_path, digits):
    kwargs = dict(dataset="digits", epochs=2, train_subset=300, quiet=True, augment=True)
    first = cnnlab.train("simple_cnn", out=str(tmp_path / "a"), **kwargs)
    second = cnnlab.train("simple_cnn", out=str(tmp_path / "b"), **kwargs)
    assert first["test_accuracy"] == second["test_accuracy"] and first["test_loss"] == second["test_loss"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("epoch_seconds", "images_per_second")} for r in rows]
    rows = [strip(csv.DictReader((tmp_path / d / "metrics.csv").open())) for d in ("a", "b")]
    assert rows[0] == rows[1]


@pytest.mark.parametrize("rewind_to", ["step-00000004", "step-00000006"])  # an epoch end; mid-epoch 2
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path, digits, rewind_to):
    # 300 images -> 270 train / 30 val -> 4 steps of 64 per epoch; checkpoints every 2 steps, all kept.
    kwargs = dict(
        dataset="digits",
        train_subset=300,
        epochs=3,
        quiet=True,
        seed=3,
        augment=True,
        checkpoint_every=2,
        keep_checkpoints=100,
    )
    full = cnnlab.train("simple_cnn", out=str(tmp_path / "full"), **kwargs)
    cnnlab.train("simple_cnn", out=str(tmp_path / "part"), **kwargs)
    # Pretend the second run died right after writing `rewind_to`: point `latest` there and resume.
    (tmp_path / "part" / "checkpoints" / "latest").write_text(rewind_to)
    resumed = cnnlab.train("simple_cnn", resume=str(tmp_path / "part"), quiet=True)
    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]
    a, b = (read_weights(tmp_path / d / "model.safetensors") for d in ("full", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_non_finite_loss_stops_with_a_clear_error(tmp_path, digits):
    with pytest.raises(cnnlab.CnnlabError, match="lower --lr"):
        cnnlab.train(
            "simple_cnn",
            dataset="digits",
            out=str(tmp_path / "nan"),
            epochs=2,
            lr=1e12,
            optimizer="sgd",
            train_subset=300,
            quiet=True,
        )
    results = json.loads((tmp_path / "nan" / "results.json").read_text())
    assert results["status"] == "failed" and "epoch" in results["error"]


@pytest.mark.parametrize("train_subset, steps", [(80, 1), (250, 3)])
def test_runs_of_a_few_steps_train_with_the_default_schedule(tmp_path, train_subset, steps):
    """One-cycle's warm-up is 25% of the steps; a run of 4 steps or fewer (a quick smoke run) must still train."""
    results = cnnlab.train(
        "lenet5",
        dataset="digits",
        epochs=1,
        batch_size=64,
        train_subset=train_subset,
        out=str(tmp_path / "run"),
        quiet=True,
    )
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert results["status"] == "completed" and len(rows) == 1
    assert round(float(rows[0]["images_per_second"]) * float(rows[0]["epoch_seconds"])) == 64 * steps


@pytest.mark.slow
def test_compile_trains_the_same_network(tmp_path):
    """--compile runs the training steps through torch.compile (inductor); the saved weights are the eager
    module's, so `evaluate` reloads them by name, and the run learns as the eager one does (same seed)."""
    common = dict(dataset="digits", epochs=2, train_subset=600, quiet=True)
    compiled = cnnlab.train("lenet5", out=str(tmp_path / "compiled"), compile=True, **common)
    eager = cnnlab.train("lenet5", out=str(tmp_path / "eager"), **common)
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["compile"] is True
    assert abs(compiled["test_accuracy"] - eager["test_accuracy"]) < 0.03
    evaluated = cnnlab.evaluate(tmp_path / "compiled", runtime="torch")  # as training evaluated it
    assert evaluated["test_accuracy"] == pytest.approx(compiled["test_accuracy"], abs=1e-9)


def test_flip_tta_classifies_by_the_mean_logits_of_each_image_and_its_mirror(lenet_run, digits):
    from dataclasses import replace

    from cnnlab.batches import prepare_batch
    from cnnlab.inference.evaluation import evaluate_arrays
    from cnnlab.inference.prediction import load_run

    model = load_run(lenet_run[0]).model
    mirrorable = replace(digits, name="mirrorable-digits", hflip=True)  # as if flips kept the labels
    images, labels = digits.test_images[:100], digits.test_labels[:100]
    loss, accuracy, predicted = evaluate_arrays(model, images, labels, mirrorable, flip_tta=True)
    x = prepare_batch(images, digits, channels_last=True)
    with torch.no_grad():
        mean_logits = (model(x) + model(x.flip(3))) / 2
        plain = model(x).argmax(1)
    assert torch.equal(predicted, mean_logits.argmax(1))
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(mean_logits, labels).item(), rel=1e-5)
    assert accuracy == pytest.approx((mean_logits.argmax(1) == labels).float().mean().item())
    assert not torch.equal(predicted, plain)  # lenet5 is not mirror-symmetric: the mirrors change some calls


def test_tta_on_a_set_whose_flips_change_labels_is_refused_before_training(lenet_run, tmp_path, capsys):
    from cnnlab.cli import main

    message = (
        "cnnlab: error: test-time flips need label-preserving horizontal flips, which digits does not "
        "have (a mirrored image can belong to another class): drop --tta"
    )
    assert main(["train", "lenet5", "--dataset", "digits", "--tta", "--quiet", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "run").exists()
    assert main(["eval", str(lenet_run[0]), "--tta"]) == 2
    assert capsys.readouterr().err.strip() == message


def test_ema_weights_are_evaluated_saved_and_resumed_exactly(tmp_path, digits):
    # 300 images -> 4 steps of 64 per epoch; a checkpoint every 2 steps; decay 0.8 so the average visibly lags.
    kwargs = dict(
        dataset="digits",
        train_subset=300,
        epochs=2,
        quiet=True,
        seed=3,
        ema=0.8,
        checkpoint_every=2,
        keep_checkpoints=100,
    )
    full = cnnlab.train("simple_cnn", out=str(tmp_path / "full"), **kwargs)
    saved = read_weights(tmp_path / "full" / "model.safetensors")
    raw = read_weights(tmp_path / "full" / "checkpoints" / "step-00000008.safetensors")  # what the optimizer reached
    assert saved.keys() == raw.keys() and not torch.equal(saved["fc1.weight"], raw["fc1.weight"])
    # The EMA was evaluated: torch's result to 1e-6, as training computed it (onnxruntime's folded BN rounds otherwise).
    assert cnnlab.evaluate(tmp_path / "full", runtime="torch")["test_loss"] == pytest.approx(
        full["test_loss"], rel=1e-6
    )
    cnnlab.train("simple_cnn", out=str(tmp_path / "part"), **kwargs)
    (tmp_path / "part" / "checkpoints" / "latest").write_text("step-00000006")  # mid-epoch 2
    resumed = cnnlab.train("simple_cnn", resume=str(tmp_path / "part"), quiet=True)
    assert resumed["test_loss"] == full["test_loss"]
    assert all(torch.equal(saved[k], v) for k, v in read_weights(tmp_path / "part" / "model.safetensors").items())


def test_ema_decay_outside_0_1_is_one_line(capsys):
    from train_errors import one_line_error

    assert "--ema must be in [0, 1), a decay per step such as 0.999, got 1.5" in one_line_error(capsys, "--ema", 1.5)


def test_evaluation_builds_no_autograd_graph(digits):
    from cnnlab.inference.evaluation import evaluate_arrays

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(28 * 28, 10)
            self.grad_enabled = []

        def forward(self, x):
            self.grad_enabled.append(torch.is_grad_enabled())
            return self.fc(x.flatten(1))

    model = Recorder()
    evaluate_arrays(model, digits.test_images[:8], digits.test_labels[:8], digits, channels_last=False)
    assert model.grad_enabled == [False]


def test_test_every_epoch_adds_test_curves_without_changing_training(tmp_path, digits):
    kwargs = dict(dataset="digits", train_subset=300, epochs=2, quiet=True, seed=1)
    plain = cnnlab.train("simple_cnn", out=str(tmp_path / "plain"), **kwargs)
    tracked = cnnlab.train("simple_cnn", out=str(tmp_path / "tracked"), test_every_epoch=True, **kwargs)
    rows = {}
    for name in ("plain", "tracked"):
        with open(tmp_path / name / "metrics.csv", newline="") as handle:
            rows[name] = list(csv.DictReader(handle))
    assert "test_accuracy" not in rows["plain"][0] and len(rows["tracked"]) == 2
    for before, after in zip(rows["plain"], rows["tracked"]):  # the test passes leave training as it was
        assert (before["train_loss"], before["val_accuracy"]) == (after["train_loss"], after["val_accuracy"])
    assert float(rows["tracked"][-1]["test_accuracy"]) == tracked["test_accuracy"] == plain["test_accuracy"]
    assert float(rows["tracked"][-1]["test_loss"]) == pytest.approx(tracked["test_loss"], rel=1e-6)


def test_an_ema_longer_than_the_run_is_warned_about(tmp_path):
    # 1,000 digits images: 900 after the validation split -> 14 steps of 64 per epoch, 28 in 2 epochs. A 0.999
    # average would still weigh the random init by 0.999**28 = 97%.
    with pytest.warns(
        UserWarning,
        match=r"--ema 0.999 averages over about 1,000 steps, but this run has 28: its "
        r"average stays close to the initial weights; use a decay of at most 0.643",
    ):
        cnnlab.train(
            "simple_cnn", dataset="digits", train_subset=1000, epochs=2, quiet=True, ema=0.999, out=str(tmp_path / "a")
        )
    with pytest.warns(UserWarning, match=r"this run has 8: .*; drop --ema"):  # 300 images: 4 steps per epoch
        cnnlab.train(
            "simple_cnn", dataset="digits", train_subset=300, epochs=2, quiet=True, ema=0.99, out=str(tmp_path / "b")
        )


def test_with_test_every_epoch_the_last_epoch_s_test_pass_is_the_final_one(tmp_path, digits, monkeypatch):
    """The final evaluation reuses the last epoch's test pass (same weights): one test pass per epoch, none more."""
    from cnnlab.engine import trainer

    test_passes = []
    evaluate_arrays = trainer.evaluate_arrays

    def counted(model, images, labels, *args, **kwargs):
        if len(images) == len(digits.test_images):  # the validation split has 30 images
            test_passes.append(len(images))
        return evaluate_arrays(model, images, labels, *args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate_arrays", counted)
    kwargs = dict(dataset="digits", train_subset=300, epochs=2, quiet=True, seed=1)
    tracked = cnnlab.train("simple_cnn", out=str(tmp_path / "tracked"), test_every_epoch=True, **kwargs)
    assert len(test_passes) == 2
    plain = cnnlab.train("simple_cnn", out=str(tmp_path / "plain"), **kwargs)
    assert len(test_passes) == 3  # without test_every_epoch: the final pass only
    assert (tracked["test_accuracy"], tracked["test_loss"]) == (plain["test_accuracy"], plain["test_loss"])


def test_resume_with_more_epochs_extends_a_constant_schedule_run_exactly(tmp_path, digits):
    """A finished 2-epoch run resumed from its final checkpoint with a config of 3 epochs trains one more epoch
    and ends where an uninterrupted 3-epoch run ends; config.json then records 3 epochs."""
    from dataclasses import replace

    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.trainer import run

    kwargs = dict(dataset="digits", train_subset=300, schedule="constant", lr=0.01, quiet=True, seed=2, augment=True)
    full = cnnlab.train("simple_cnn", out=str(tmp_path / "full"), epochs=3, **kwargs)
    short = cnnlab.train("simple_cnn", out=str(tmp_path / "short"), epochs=2, **kwargs)
    assert short["epochs"] == 2
    saved = TrainConfig.from_dict(json.loads((tmp_path / "short" / "config.json").read_text()))
    extended = run(replace(saved, epochs=3, threads=1), resume=tmp_path / "short", quiet=True)
    assert extended["epochs"] == 3
    assert (extended["test_accuracy"], extended["test_loss"]) == (full["test_accuracy"], full["test_loss"])
    a, b = (read_weights(tmp_path / d / "model.safetensors") for d in ("full", "short"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("epoch_seconds", "images_per_second")} for r in rows]
    rows = [strip(csv.DictReader((tmp_path / d / "metrics.csv").open())) for d in ("full", "short")]
    assert len(rows[1]) == 3 and rows[0] == rows[1]
    assert json.loads((tmp_path / "short" / "config.json").read_text())["epochs"] == 3
    assert (tmp_path / "short" / "checkpoints" / "latest").read_text() == "step-00000012"  # 4 steps x 3 epochs


def test_more_epochs_on_resume_is_refused_where_the_schedule_depends_on_the_length(tmp_path, digits):
    from dataclasses import replace

    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.trainer import run

    cnnlab.train("simple_cnn", dataset="digits", train_subset=300, epochs=1, quiet=True, out=str(tmp_path / "run"))
    saved = TrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    with pytest.raises(cnnlab.CnnlabError, match="onecycle schedule"):
        run(replace(saved, epochs=2), resume=tmp_path / "run", quiet=True)
    with pytest.raises(cnnlab.CnnlabError, match="lr"):  # a recipe option cannot change on resume
        run(replace(saved, lr=saved.lr * 2), resume=tmp_path / "run", quiet=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 1


def test_a_batch_norm_layer_with_one_value_per_channel_is_found_before_the_first_step(tmp_path, digits):
    """resnet18 without its small-input stem shrinks 28x28 digits to 1x1 in its last stage: with one image per
    batch the run stops with a typed error naming the first batch norm there, before any step (no checkpoint)."""
    from cnnlab.engine.trainer import fewest_batch_norm_values
    from cnnlab.errors import BatchNormBatchTooSmall

    with pytest.raises(BatchNormBatchTooSmall) as caught:
        cnnlab.train(
            "resnet18",
            dataset="digits",
            small_input=False,
            train_subset=3,
            val_fraction=0,
            batch_size=1,
            epochs=1,
            quiet=True,
            out=str(tmp_path / "run"),
        )
    error = caught.value
    assert (error.model, error.batch_size, error.processes, error.values_per_image) == ("resnet18", 1, 1, 1)
    assert error.layer.startswith("layer4.0.")  # the block whose stride makes the map 1x1
    assert error.layer in dict(cnnlab.create_model("resnet18").named_modules())
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "failed"
    # Under torchrun each process normalises its own share: batch 2 over 2 processes is one image each.
    shared = BatchNormBatchTooSmall("resnet18", 2, 2, "layer4.0.bn1", 1)
    assert "(a 1x1 feature map of one image per process)" in str(shared)
    assert str(shared).endswith("--batch-size 4 or more")
    model = cnnlab.create_model("resnet20", num_classes=10, in_chans=1, input_size=28)
    assert fewest_batch_norm_values(model, (1, 28, 28)) == ("layer3.0.bn1", 49)  # 7x7 maps: batch 1 can train
    assert fewest_batch_norm_values(cnnlab.create_model("lenet5"), (1, 28, 28)) is None
    assert model.training  # the probe leaves the model in the mode it found it


def reflect_moved(x: torch.Tensor, step: int) -> torch.Tensor:
    """`x` moved one pixel down-right (step -1) or up-left (step +1), the border reflected: built from indices,
    not from F.pad, so the test does not restate the code it checks."""
    side = x.shape[-1]
    index = torch.arange(side) + step
    index = torch.where(index < 0, -index, torch.where(index >= side, 2 * (side - 1) - index, index))
    return x[..., index, :][..., index]


def test_shift_tta_weighs_the_moved_views_half(lenet_run, digits):
    from cnnlab.batches import prepare_batch
    from cnnlab.inference.evaluation import evaluate_arrays
    from cnnlab.inference.prediction import load_run

    model = load_run(lenet_run[0]).model
    images, labels = digits.test_images[:200], digits.test_labels[:200]
    loss, accuracy, predicted = evaluate_arrays(model, images, labels, digits, shift_tta=1)
    x = prepare_batch(images, digits, channels_last=False)
    with torch.no_grad():
        logits = model(x) / 2 + (model(reflect_moved(x, -1)) + model(reflect_moved(x, 1))) / 4
        plain_loss = torch.nn.functional.cross_entropy(model(x), labels).item()
    assert torch.equal(predicted, logits.argmax(1))
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert accuracy == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert abs(loss - plain_loss) > 1e-3  # the moved views count (here they change the loss, not the calls)


def test_a_run_with_shift_tta_is_evaluated_with_it_and_a_shift_of_half_the_side_is_refused(tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.inference.runtime import evaluate

    run = tmp_path / "shifted"
    results = cnnlab.train(
        "lenet5", dataset="digits", epochs=1, train_subset=400, tta_shift=2, out=str(run), quiet=True, threads=1
    )
    assert json.loads((run / "config.json").read_text())["tta_shift"] == 2
    evaluated = evaluate(run, runtime="torch")
    assert evaluated["tta_shift"] == 2 and evaluated["test_accuracy"] == pytest.approx(results["test_accuracy"])
    argv = ["train", "lenet5", "--dataset", "digits", "--tta-shift", "14", "--quiet", "--out", str(tmp_path / "no")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "cnnlab: error: --tta-shift 14 is half the side of digits images (28 pixels) or more: use at most 13 "
        "(1 or 2 is usual)"
    )
    assert not (tmp_path / "no").exists()


def test_eval_tta_shift_overrides_the_runs_own_and_bad_shifts_are_one_line(lenet_run, digits, capsys):
    """`cnnlab eval --tta-shift PX` tries test-time translations on a run trained without them (and 0 turns a
    run's own off); the accuracy is evaluate_arrays' on the whole test split with that shift."""
    from cnnlab.cli import main
    from cnnlab.inference.evaluation import evaluate_arrays
    from cnnlab.inference.prediction import EVAL_BATCH, load_run
    from cnnlab.precision import autocast_dtype

    run = load_run(lenet_run[0])
    run_dir, dtype = run.run_dir, autocast_dtype(run.config.precision)
    for shift in (1, 0):
        assert main(["eval", str(run_dir), "--tta-shift", str(shift), "--runtime", "torch", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        images, labels = digits.test_images, digits.test_labels
        expected = evaluate_arrays(run.model, images, labels, digits, EVAL_BATCH, dtype=dtype, shift_tta=shift)[1]
        assert result["tta_shift"] == shift and result["test_accuracy"] == pytest.approx(expected)
    assert main(["eval", str(run_dir), "--tta-shift", "1", "--runtime", "torch"]) == 0
    assert "with test-time 1-pixel shifts" in " ".join(capsys.readouterr().out.split())  # the title wraps
    for bad, message in (("-1", "expected zero or a positive whole number, got -1"), ("14", "--tta-shift 14 is half")):
        assert main(["eval", str(run_dir), "--tta-shift", bad, "--runtime", "torch"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
