"""The two speedrun tricks beyond the recipe's: Lookahead around the optimizer and the whitening init of the
first conv. Each is checked against its definition, then in a real run (resumed exactly, recorded, refused where
it cannot apply)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.checkpoint import read_weights
from cnnlab.engine.lookahead import Lookahead
from cnnlab.engine.whitening import EPS, first_conv, patch_covariance, whiten_first_conv, whitening_filters
from cnnlab.errors import CnnlabError


def sgd_steps(model: nn.Module, batches, lookahead: Lookahead | None = None) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if lookahead is not None:
            lookahead.step()


def test_lookahead_moves_the_slow_weights_halfway_every_k_steps():
    # k = 2, plain SGD without momentum. Step 1 is SGD's own; after step 2 both copies hold init + 0.5 (where
    # SGD got in two steps - init); step 3 is SGD's step from there, and the slow copy waits for step 4.
    torch.manual_seed(0)
    batches = [(torch.randn(8, 5), torch.randint(0, 3, (8,))) for _ in range(3)]
    init = nn.Linear(5, 3)
    model, plain, after_sync = nn.Linear(5, 3), nn.Linear(5, 3), nn.Linear(5, 3)
    for copy in (model, plain):
        copy.load_state_dict(init.state_dict())
    lookahead = Lookahead(model, k=2)
    sgd_steps(model, batches[:1], lookahead)
    sgd_steps(plain, batches[:1])
    assert torch.equal(model.weight, plain.weight) and torch.equal(lookahead.slow[0], init.weight)
    sgd_steps(model, batches[1:2], lookahead)
    sgd_steps(plain, batches[1:2])
    for name, value in plain.state_dict().items():
        synced = init.state_dict()[name] + 0.5 * (value - init.state_dict()[name])
        assert torch.allclose(model.state_dict()[name], synced, atol=1e-7)
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), lookahead.slow))
    after_sync.load_state_dict(model.state_dict())
    sgd_steps(model, batches[2:], lookahead)
    sgd_steps(after_sync, batches[2:])
    assert torch.equal(model.weight, after_sync.weight) and not torch.equal(model.weight, lookahead.slow[0])
    assert lookahead.steps == 3


def test_a_lookahead_run_resumes_exactly_and_differs_from_plain_sgd(tmp_path, digits):
    # 300 images -> 4 steps per epoch; k = 3 puts the syncs at steps 3 and 6, so step 5's checkpoint is mid-cycle
    # and only a restored slow copy and step count give the uninterrupted run's weights.
    kwargs = dict(
        dataset="digits", train_subset=300, epochs=2, quiet=True, seed=3, checkpoint_every=1, keep_checkpoints=100
    )
    full = cnnlab.train("simple_cnn", out=str(tmp_path / "full"), lookahead=3, **kwargs)
    cnnlab.train("simple_cnn", out=str(tmp_path / "part"), lookahead=3, **kwargs)
    (tmp_path / "part" / "checkpoints" / "latest").write_text("step-00000005")
    resumed = cnnlab.train("simple_cnn", resume=str(tmp_path / "part"), quiet=True)
    assert resumed["test_loss"] == full["test_loss"]
    a, b = (read_weights(tmp_path / d / "model.safetensors") for d in ("full", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    cnnlab.train("simple_cnn", out=str(tmp_path / "plain"), **kwargs)
    plain = read_weights(tmp_path / "plain" / "model.safetensors")
    assert not torch.equal(plain["fc1.weight"], a["fc1.weight"])
    assert '"lookahead": 3' in (tmp_path / "full" / "config.json").read_text()


def test_whitening_filters_make_every_direction_unit_variance_and_uncorrelated():
    torch.manual_seed(0)
    mixing = torch.randn(6, 6, dtype=torch.float64)
    covariance = mixing @ mixing.T + 0.1 * torch.eye(6, dtype=torch.float64)
    filters = whitening_filters(covariance, eps=0.0)
    assert filters.shape == (12, 6)
    assert torch.equal(filters[1::2], -filters[0::2])  # each direction twice, with both signs
    positive = filters[0::2]
    assert torch.allclose(positive @ covariance @ positive.T, torch.eye(6, dtype=torch.float64), atol=1e-9)
    eigenvalues = torch.linalg.eigvalsh(covariance)
    norms = positive.norm(dim=1)  # unit eigenvector / sqrt(eigenvalue): the strongest direction comes first
    assert torch.allclose(norms, 1 / eigenvalues.flip(0).sqrt(), rtol=1e-9)


def test_the_whitened_stem_decorrelates_real_digit_patches(digits):
    from cnnlab.batches import prepare_batch
    from cnnlab.models._registry import create_model

    images = prepare_batch(digits.train_images[:1000], digits, channels_last=False)  # [N, 1, 28, 28]
    model = create_model("resnet20", num_classes=10, in_chans=1)
    conv = first_conv(model)  # 16 filters of 3x3x1: 8 directions with both signs, of the 9 there are
    assert whiten_first_conv(model, images) == 16
    outputs = F.conv2d(images, conv.weight[0::2].detach())  # the 8 positive filters, valid patches only
    covariance = torch.cov(outputs.transpose(0, 1).reshape(8, -1).double())
    # Each direction comes out with variance eigenvalue / (eigenvalue + EPS): 1 for the strong ones, less for the
    # faint ones (upsampled 8x8 digits are smooth, so several 3x3 directions hold almost nothing), and none
    # correlates with another.
    eigenvalues = torch.linalg.eigvalsh(patch_covariance(images, (3, 3))).flip(0)[:8]
    assert torch.allclose(covariance.diagonal(), eigenvalues / (eigenvalues + EPS), rtol=1e-3)
    assert covariance.diagonal()[0] > 0.999
    off_diagonal = covariance - torch.diag(covariance.diagonal())
    assert off_diagonal.abs().max() < 1e-4
    # the covariance it whitened is the images' own: its trace is the patches' total variance
    total = F.unfold(images, 3).transpose(1, 2).reshape(-1, 9).double().var(dim=0).sum()
    assert patch_covariance(images, (3, 3)).trace() == pytest.approx(total.item(), rel=1e-3)


def test_a_whitened_run_trains_and_is_recorded(tmp_path, digits):
    results = cnnlab.train("simple_cnn", dataset="digits", epochs=3, quiet=True, whiten=True, out=str(tmp_path / "run"))
    assert results["test_accuracy"] > 0.9
    assert '"whiten": true' in (tmp_path / "run" / "config.json").read_text()


def test_whiten_is_refused_beside_weights_and_on_a_grouped_stem(tmp_path):
    with pytest.raises(CnnlabError, match="--whiten sets the first conv's initial filters; --weights"):
        cnnlab.train("simple_cnn", dataset="digits", whiten=True, weights=str(tmp_path / "w.pth"), quiet=True)
    with pytest.raises(CnnlabError, match="grouped"):
        whiten_first_conv(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), torch.zeros(2, 4, 8, 8))
    with pytest.raises(CnnlabError, match="has none"):
        whiten_first_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(2, 1, 2, 2))
