"""Row views: random row subsets for training augmentation and test-time averaging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aegir.encoding.batch import encode_dataset, view_seed
from aegir.encoding.serialize import SerializeConfig, row_sample, serialize
from aegir.inference import Predictions, average_views, load_classifier, predict
from aegir.tables.table import LabeledColumn, LabeledDataset, Table
from aegir.train.finetune import FinetuneConfig, _epoch_view


def test_row_sample_views():
    assert row_sample(10, 4) == [0, 3, 6, 9]  # the deterministic view is unchanged
    a, b = row_sample(100, 8, seed=1), row_sample(100, 8, seed=2)
    assert len(a) == len(set(a)) == 8 and all(0 <= i < 100 for i in a)
    assert a == row_sample(100, 8, seed=1) and a != b
    short = row_sample(5, 8, seed=3)
    assert sorted(short) == [0, 1, 2, 3, 4]  # short tables: every row, in another order


def _ds() -> LabeledDataset:
    t = Table([[str(i) for i in range(50)], [f"x{i}" for i in range(50)]], header=["a", "b"], meta={"name": "t"})
    return LabeledDataset([t], [LabeledColumn(0, 0, ("n",)), LabeledColumn(0, 1, ("w",))], source="mem")


def test_views_keep_columns_row_aligned_and_view0_is_the_default():
    ds, cfg = _ds(), SerializeConfig(max_bytes=128, max_rows=6)
    t = ds.tables[0]
    seed = view_seed(2, 0)
    assert serialize(t, 0, cfg, row_seed=seed).rows_used == serialize(t, 1, cfg, row_seed=seed).rows_used
    assert [e.ids for e in encode_dataset(ds, None, cfg)] == [e.ids for e in encode_dataset(ds, None, cfg, view=0)]
    assert encode_dataset(ds, None, cfg, view=1)[0].ids != encode_dataset(ds, None, cfg, view=2)[0].ids


def test_average_views_by_hand():
    one = Predictions(np.array([[1.0, 3.0]], np.float32), np.array([[0.0, 2.0]], np.float32),
                      np.array([[4]]), np.array([[10]]))
    two = Predictions(np.array([[3.0, -1.0]], np.float32), np.array([[2.0, 2.0]], np.float32),
                      np.array([[9]]), np.array([[10]]))
    avg = average_views([one, two])
    assert avg.logits.tolist() == [[2.0, 1.0]] and avg.pooled.tolist() == [[1.0, 2.0]]
    assert avg.n_boundary.tolist() == [[4]]  # chunker figures come from view 0
    with pytest.raises(ValueError):
        average_views([])


def test_epoch_views_are_seeded_and_optional():
    cfg = FinetuneConfig(task="custom")
    views = [_epoch_view(cfg, e) for e in range(4)]
    assert views[0] == 0 and len(set(views)) == 4 and views == [_epoch_view(cfg, e) for e in range(4)]
    assert {_epoch_view(FinetuneConfig(task="custom", row_views=False), e) for e in range(4)} == {0}
    assert _epoch_view(FinetuneConfig(task="custom", seed=1), 1) != views[1]


def test_eval_with_views_averages_the_view_logits(trained, custom_data):
    from aegir.eval_run import eval_data, eval_dataset

    lc = load_classifier(trained.final_checkpoint)
    ds = eval_data(lc, str(custom_data), "csv")
    index = {l: i for i, l in enumerate(lc.vocab.labels)}
    one = eval_dataset(lc, ds, views=1)
    three = eval_dataset(lc, ds, views=3)
    by_hand = np.mean([predict(lc.model, encode_dataset(ds, index, lc.serialize_cfg, view=v)).logits
                       for v in range(3)], axis=0)
    assert np.allclose(three.raw.logits, by_hand, atol=1e-5)
    assert np.array_equal(one.raw.n_boundary, three.raw.n_boundary)
    with pytest.raises(ValueError):
        eval_dataset(lc, ds, views=0)


def test_annotate_views_read_more_rows(trained):
    from aegir.annotation import annotate

    long = pd.DataFrame({"n": [str(i) for i in range(500)], "w": [f"word{i}" for i in range(500)]})
    one = annotate(long, trained.final_checkpoint, top_k=1)
    four = annotate(long, trained.final_checkpoint, top_k=1, views=4)
    assert four.columns[0].rows_read > one.columns[0].rows_read
    assert any("4 views" in n for n in four.notes)


def test_views_benchmark_curve_is_eval_with_views(trained, custom_data):
    """benchmarks/cta_views.py predicts each view once and scores N views as the mean of the first N
    views' logits: the labels must be the ones `aegir eval --views N` predicts. At the trained budget
    the serialization is the trained one; a doubled budget reads more bytes of the same columns."""
    from cta_views import view_curve

    from aegir.encoding.serialize import at_budget

    from aegir.eval_run import eval_data, eval_dataset

    lc = load_classifier(trained.final_checkpoint)
    ds = eval_data(lc, str(custom_data), "csv")
    index = {l: i for i, l in enumerate(lc.vocab.labels)}
    cfg = lc.serialize_cfg
    assert at_budget(cfg, cfg.max_bytes) is cfg
    per_view = [predict(lc.model, encode_dataset(ds, index, cfg, view=v)) for v in range(4)]
    curve = view_curve(per_view, [1, 2, 4])
    for n in (1, 2, 4):
        want = [lc.vocab.labels.index(p.predicted[0]) for p in eval_dataset(lc, ds, views=n).predictions]
        assert curve[n].tolist() == want
    with pytest.raises(ValueError, match="5 views asked, 4 predicted"):
        view_curve(per_view, [1, 5])
    wide = at_budget(cfg, 2 * cfg.max_bytes)
    assert (wide.max_bytes, wide.max_target_bytes) == (2 * cfg.max_bytes, round(cfg.max_target_bytes * 2))
    assert (wide.max_cell_bytes, wide.max_column_bytes, wide.max_rows) == (cfg.max_cell_bytes, cfg.max_column_bytes, cfg.max_rows)
    short, long = encode_dataset(ds, index, cfg), encode_dataset(ds, index, wide)
    assert all(len(a.ids) <= len(b.ids) <= wide.max_bytes for a, b in zip(short, long))
    assert sum(len(e.ids) for e in short) < sum(len(e.ids) for e in long)
    with pytest.raises(ValueError, match="at least 8"):
        at_budget(cfg, 4)
    # eval and annotate read at that budget on request (--max-bytes), with the same weights.
    by_hand = predict(lc.model, long).logits
    assert np.allclose(eval_dataset(lc, ds, max_bytes=wide.max_bytes).raw.logits, by_hand, atol=1e-5)
    assert lc.serialize_cfg is cfg  # the loaded classifier itself is not changed


def test_annotate_and_eval_cli_read_more_bytes(trained, tmp_path):
    from typer.testing import CliRunner

    from aegir.annotation import annotate
    from aegir.cli import app

    long = pd.DataFrame({"n": [str(10_000 + i) for i in range(12)], "w": [f"word{i}" for i in range(12)]})
    short, wide = annotate(long, trained.final_checkpoint), annotate(long, trained.final_checkpoint, max_bytes=512)
    assert all(c.truncated for c in short.columns) and not any(c.truncated for c in wide.columns)
    csv = tmp_path / "t.csv"
    long.to_csv(csv, index=False)
    ok = CliRunner().invoke(app, ["annotate", str(csv), "--checkpoint", str(trained.final_checkpoint), "--max-bytes", "512"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, ["annotate", str(csv), "--checkpoint", str(trained.final_checkpoint), "--max-bytes", "4"])
    assert bad.exit_code == 2 and "max-bytes" in bad.output
