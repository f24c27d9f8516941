"""--class-weight balanced: scikit-learn's weights, a loss that is the weighted CE by hand, run
arguments that a resume must match, and a clear refusal for multi-label tasks."""
import dataclasses

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from aegir.checkpoint import CheckpointError
from aegir.model import AegirClassifier
from aegir.config import ModelConfig
from aegir.tables import TableError
from aegir.train.distributed import DistInfo
from aegir.train.finetune import FinetuneConfig, _TrainNet, balanced_class_weights, finetune
from aegir.train.tasks import resolve_task


def test_balanced_weights_are_scikit_learns():
    ids = [0, 0, 0, 1, 2, 2, 2, 2, 4]
    w = balanced_class_weights(ids, 6).double().numpy()
    present = np.unique(ids)
    want = compute_class_weight("balanced", classes=present, y=np.array(ids))
    np.testing.assert_allclose(w[present], want, rtol=1e-6)
    assert w[0] == pytest.approx(9 / (4 * 3)) and w[1] == pytest.approx(9 / (4 * 1))  # N / (K * n_c) by hand
    assert w[3] == 1.0 and w[5] == 1.0  # labels no column carries
    assert np.mean(w[ids]) == pytest.approx(1.0)  # the average column weighs 1: the lr keeps its meaning


def test_weighted_loss_is_the_weighted_cross_entropy_by_hand(byte_batch):
    torch.manual_seed(0)
    clf = AegirClassifier(ModelConfig.preset("nano"), 5).eval()
    w = torch.tensor([0.5, 2.0, 1.0, 3.0, 1.0])
    net = _TrainNet(clf, None, None, None, 0.5, DistInfo(), class_weight=w).eval()
    ids, mask, tmask = byte_batch
    labels = torch.tensor([1, 3, -1, 0])  # -1: an unlabelled column (teacher targets only) adds nothing
    with torch.no_grad():
        loss = net(ids, mask, tmask, labels, denom=4.0)[0]
        z = clf(ids, mask, tmask).logits.double()  # (B, L)
    nll = torch.logsumexp(z, 1) - z[torch.arange(4), labels.clamp(min=0)]  # (B,)
    ok = labels >= 0
    want = (w.double()[labels[ok]] * nll[ok]).sum() / 4.0
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    plain = _TrainNet(clf, None, None, None, 0.5, DistInfo()).eval()
    with torch.no_grad():
        assert float(plain(ids, mask, tmask, labels, denom=4.0)[0]) == pytest.approx(float(nll[ok].sum() / 4), rel=1e-5)


def test_balanced_run_is_recorded_resumed_and_refused_for_multi_label(custom_data, tmp_path):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=1, max_steps=4, batch_size=8,
                         warmup_steps=1, max_bytes=48, out=str(tmp_path), progress=False, checkpoint_every=2,
                         class_weight="balanced")
    res = finetune(cfg)
    assert res.steps == 4 and (res.run_dir / "final.pt").is_file()
    with pytest.raises(CheckpointError, match="class_weight"):
        finetune(dataclasses.replace(cfg, class_weight="none", resume=str(res.run_dir)))
    with pytest.raises(ValueError, match="--class-weight must be"):
        FinetuneConfig(class_weight="inverse")
    td = resolve_task("custom", str(custom_data))
    multi = dataclasses.replace(td, multi_label=True)
    with pytest.raises(TableError, match="single-label tasks"):
        finetune(dataclasses.replace(cfg, run_name="multi"), task_data=multi)
