"""`--pool-main` (CPA): the main column's positions pooled into the pair embedding, end to end on the real
SOTAB V2 CPA sample: the run trains, its checkpoint and an exported specialist rebuild the wider head and
predict the same, and a CTA task refuses the flag by name."""
import numpy as np
import pytest

from aegir.encoding.batch import encode_dataset
from aegir.inference import export_specialist, load_classifier, predict
from aegir.tables import TableError
from aegir.train.finetune import FinetuneConfig, finetune


def test_pool_main_cpa_run_checkpoint_and_specialist(shared_data, tmp_path):
    cfg = FinetuneConfig(task="sotab-cpa", data=str(shared_data / "sotab_v2_sample"), model_size="nano", pool_main=True,
                         epochs=1, max_steps=3, batch_size=8, lr=3e-3, warmup_steps=1, max_bytes=64, row_views=False,
                         out=str(tmp_path), progress=False, checkpoint_every=10_000)
    res = finetune(cfg)
    lc = load_classifier(res.final_checkpoint)
    d0 = lc.model.cfg.d_model[0]
    assert lc.cpa and lc.model.pool_main
    assert lc.model.head.proj.in_features == lc.model.pooled_dim == 3 * d0

    from aegir.train.tasks import resolve_task

    td = resolve_task("sotab-cpa", cfg.data)
    ex = [e for e in encode_dataset(td.valid, None, lc.serialize_cfg)][:24]
    assert all(any(e.main_mask) for e in ex)  # every CPA input marks its main column
    got = predict(lc.model, ex, batch_size=8)
    assert got.pooled.shape == (24, 3 * d0)
    # the main-column third differs from the target third: it is a separate summary, not a copy
    assert not np.allclose(got.pooled[:, d0:2 * d0], got.pooled[:, :d0])

    spec = load_classifier(export_specialist(res.final_checkpoint, tmp_path / "spec"))
    assert spec.model.pool_main
    again = predict(spec.model, ex, batch_size=8)
    np.testing.assert_allclose(again.logits, got.logits, rtol=0, atol=1e-6)


def test_pool_main_is_refused_for_cta(custom_data, tmp_path):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", pool_main=True, max_steps=1,
                         epochs=1, max_bytes=48, out=str(tmp_path), progress=False)
    with pytest.raises(TableError, match="--pool-main"):
        finetune(cfg)
