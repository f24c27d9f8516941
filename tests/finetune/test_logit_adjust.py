"""--logit-adjust TAU: offsets tau * log(prior) by hand, a loss that is the CE of the offset logits
(float64, by hand), run arguments a resume must match, and clear refusals for bad values and
multi-label tasks."""
import dataclasses

import numpy as np
import pytest
import torch

from aegir.checkpoint import CheckpointError
from aegir.config import ModelConfig
from aegir.model import AegirClassifier
from aegir.tables import TableError
from aegir.train.distributed import DistInfo
from aegir.train.finetune import FinetuneConfig, _TrainNet, finetune, logit_adjustment
from aegir.train.tasks import resolve_task


def test_offsets_are_tau_log_prior_by_hand():
    ids = [0, 0, 0, 1, 2, 2, 2, 2, 4]  # N = 9; labels 3 and 5 carry no column
    off = logit_adjustment(ids, 6, tau=1.0).double().numpy()
    want = np.log([3 / 9, 1 / 9, 4 / 9, 1 / 9, 1 / 9, 1 / 9])  # absent labels count as one column
    np.testing.assert_allclose(off, want, rtol=1e-6)
    np.testing.assert_allclose(logit_adjustment(ids, 6, tau=0.5).double().numpy(), 0.5 * want, rtol=1e-6)
    with pytest.raises(ValueError, match="labelled training columns"):
        logit_adjustment([], 6, tau=1.0)


def test_adjusted_loss_is_the_cross_entropy_of_offset_logits_by_hand(byte_batch):
    torch.manual_seed(0)
    clf = AegirClassifier(ModelConfig.preset("nano"), 5).eval()
    off = logit_adjustment([0, 0, 0, 0, 1, 1, 2, 3], 5, tau=1.0)
    net = _TrainNet(clf, None, None, None, 0.5, DistInfo(), logit_offset=off).eval()
    ids, mask, tmask = byte_batch
    labels = torch.tensor([0, 3, -1, 4])  # -1: an unlabelled column adds nothing
    with torch.no_grad():
        loss = net(ids, mask, tmask, labels, denom=4.0)[0]
        z = clf(ids, mask, tmask).logits.double() + off.double()  # (B, L)
    nll = torch.logsumexp(z, 1) - z[torch.arange(4), labels.clamp(min=0)]  # (B,)
    ok = labels >= 0
    assert float(loss) == pytest.approx(float(nll[ok].sum() / 4.0), rel=1e-5)
    # The offset favours frequent labels during training, so a rare label's column costs more than
    # without it: the pressure that lifts rare labels' plain logits at inference.
    with torch.no_grad():
        plain = _TrainNet(clf, None, None, None, 0.5, DistInfo()).eval()
        rare = torch.tensor([3, 3, 3, 3])
        assert float(net(ids, mask, tmask, rare, denom=4.0)[0]) > float(plain(ids, mask, tmask, rare, denom=4.0)[0])


def test_adjusted_run_is_recorded_resumed_and_refused_where_it_cannot_apply(custom_data, tmp_path):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=1, max_steps=4, batch_size=8,
                         warmup_steps=1, max_bytes=48, out=str(tmp_path), progress=False, checkpoint_every=2,
                         logit_adjust=1.0)
    res = finetune(cfg)
    assert res.steps == 4 and (res.run_dir / "final.pt").is_file()
    with pytest.raises(CheckpointError, match="logit_adjust"):
        finetune(dataclasses.replace(cfg, logit_adjust=0.0, resume=str(res.run_dir)))
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--logit-adjust must be"):
            FinetuneConfig(logit_adjust=bad)
    td = resolve_task("custom", str(custom_data))
    with pytest.raises(TableError, match="single-label tasks"):
        finetune(dataclasses.replace(cfg, run_name="multi"), task_data=dataclasses.replace(td, multi_label=True))
