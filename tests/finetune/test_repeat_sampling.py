"""--repeat-threshold T (repeat-factor sampling): factors sqrt(T / f) by hand, seeded per-epoch copy
counts that average the factor, copies that are new row views, a run whose step count is the sum
of its epochs' batches, resume refusing another threshold, and clear refusals for bad values."""
import dataclasses
import math

import numpy as np
import pytest

from aegir.checkpoint import CheckpointError
from aegir.encoding.batch import encode_dataset
from aegir.encoding.serialize import SerializeConfig
from aegir.tables.table import LabeledColumn, LabeledDataset, Table
from aegir.train.finetune import FinetuneConfig, _repeat_view, finetune
from aegir.train.sampling import epoch_examples, epoch_repeats, repeat_factors


def test_factors_by_hand():
    # 10 labelled columns: label 0 on 8 (f 0.8), label 1 on 2 (f 0.2); one unlabelled column.
    sets = [(0,)] * 8 + [(1,)] * 2 + [()]
    r = repeat_factors(sets, 0.5)
    assert r[:8].tolist() == [1.0] * 8  # f 0.8 >= t: not repeated
    assert r[8] == r[9] == pytest.approx(math.sqrt(0.5 / 0.2))
    assert r[10] == 1.0  # unlabelled: teacher targets only, never repeated
    # Multi-label: a column takes the largest factor among its labels (f_0 = 9/10, f_2 = 1/10).
    r = repeat_factors([(0,)] * 8 + [(0, 2), (1,)], 0.3)
    assert r[8] == pytest.approx(math.sqrt(0.3 / 0.1)) and r[9] == pytest.approx(math.sqrt(0.3 / 0.1))
    assert repeat_factors(sets, 0.0).tolist() == [1.0] * 11
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--repeat-threshold must be in"):
            repeat_factors(sets, bad)
        with pytest.raises(ValueError, match="--repeat-threshold must be in"):
            FinetuneConfig(repeat_threshold=bad)


def test_epoch_counts_are_seeded_and_average_the_factor():
    f = np.array([1.0, 1.25, 2.5, 3.0])
    a, b = epoch_repeats(f, seed=3, epoch=7), epoch_repeats(f, seed=3, epoch=7)
    assert a.tolist() == b.tolist()  # a resumed run rebuilds the same epoch
    counts = np.stack([epoch_repeats(f, seed=3, epoch=e) for e in range(4000)])  # (epochs, N)
    assert counts[:, 0].tolist() == [1] * 4000 and set(counts[:, 3].tolist()) == {3}
    assert set(counts[:, 1].tolist()) == {1, 2} and set(counts[:, 2].tolist()) == {2, 3}
    np.testing.assert_allclose(counts.mean(0), f, atol=0.03)


def test_copies_are_new_row_views_and_keep_their_source():
    rows = [[f"value-{i:03d}" for i in range(200)], [str(i) for i in range(200)]]
    tables = [Table(columns=rows, header=None, meta={"name": "long"}),
              Table(columns=[["a", "b"], ["c", "d"]], header=None, meta={"name": "short"})]
    ds = LabeledDataset(tables, [LabeledColumn(0, 0, ("x",)), LabeledColumn(1, 1, ("y",))], task="cta")
    scfg = SerializeConfig(max_bytes=64, max_rows=8)
    cfg = FinetuneConfig(seed=0)
    base = encode_dataset(ds, {"x": 0, "y": 1}, scfg, view=0)
    ep = epoch_examples(base, np.array([3, 1]), lambda pos, k: encode_dataset(
        ds, {"x": 0, "y": 1}, scfg, view=_repeat_view(cfg, 0, k), indices=pos))
    assert ep.source == [0, 1, 0, 0]
    copies = [e.ids for e in ep.examples[2:]]
    # The long column's two copies show other rows than the deterministic view and than each other.
    assert copies[0] != base[0].ids and copies[1] != base[0].ids and copies[0] != copies[1]
    assert all(e.label_ids == (0,) for e in ep.examples[2:])
    # Without row views the copies are the deterministic view again (plain oversampling).
    assert _repeat_view(dataclasses.replace(cfg, row_views=False), 0, 1) == 0
    with pytest.raises(ValueError, match="repeat counts"):
        epoch_examples(base, np.array([1]), lambda pos, k: [])


def test_run_steps_follow_the_repeated_epochs_and_resume_refuses_another_threshold(custom_data, tmp_path):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=2, batch_size=8,
                         warmup_steps=1, max_bytes=48, out=str(tmp_path), progress=False, checkpoint_every=1000,
                         repeat_threshold=0.5)
    res = finetune(cfg)
    plain = finetune(dataclasses.replace(cfg, repeat_threshold=0.0, run_name="plain"))
    from aegir.train.tasks import resolve_task

    td = resolve_task("custom", str(custom_data))
    idx = {l: i for i, l in enumerate(td.vocab.labels)}
    f = repeat_factors([tuple(idx[l] for l in t.labels if l in idx) for t in td.train.targets], 0.5)
    assert (f > 1).any()  # the custom data is long-tailed enough for t = 0.5 to repeat something
    want = sum(math.ceil(epoch_repeats(f, 0, e).sum() / 8) for e in range(2))
    assert res.steps == want > plain.steps == 2 * math.ceil(len(f) / 8)
    with pytest.raises(CheckpointError, match="repeat_threshold"):
        finetune(dataclasses.replace(cfg, repeat_threshold=0.0, resume=str(res.run_dir)))
