"""CPA end to end on the real SOTAB V2 CPA sample, with `--pool-main` (the main column's positions pooled
into the pair embedding): the run trains, its checkpoint and an exported specialist rebuild the wider head
and predict the same, a CTA task refuses the flag by name, and `annotate` gives every other column's
property relative to a main column chosen by index or name (API and CLI)."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aegir.annotation import annotate
from aegir.cli import app
from aegir.encoding.batch import encode_dataset
from aegir.inference import export_specialist, load_classifier, predict
from aegir.tables import TableError
from aegir.train.finetune import FinetuneConfig, finetune
from aegir.train.tasks import resolve_task


@pytest.fixture(scope="module")
def cpa_run(shared_data, tmp_path_factory):
    cfg = FinetuneConfig(task="sotab-cpa", data=str(shared_data / "sotab_v2_sample"), model_size="nano", pool_main=True,
                         epochs=1, max_steps=3, batch_size=8, lr=3e-3, warmup_steps=1, max_bytes=64, row_views=False,
                         out=str(tmp_path_factory.mktemp("cpa")), progress=False, checkpoint_every=10_000)
    return cfg, finetune(cfg)


def test_pool_main_cpa_run_checkpoint_and_specialist(cpa_run, tmp_path):
    cfg, res = cpa_run
    lc = load_classifier(res.final_checkpoint)
    d0 = lc.model.cfg.d_model[0]
    assert lc.cpa and lc.model.pool_main
    assert lc.model.head.proj.in_features == lc.model.pooled_dim == 3 * d0

    td = resolve_task("sotab-cpa", cfg.data)
    ex = encode_dataset(td.valid, None, lc.serialize_cfg)[:24]
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


def _people(path):
    df = pd.DataFrame({"name": ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
                       "born": ["1815-12-10", "1912-06-23", "1906-12-09"],
                       "city": ["London", "London", "New York"]})
    df.to_csv(path, index=False)
    return df


def test_annotate_cpa_pairs_against_a_main_column(cpa_run, trained, tmp_path):
    _, res = cpa_run
    ck = res.final_checkpoint
    vocab = set(load_classifier(ck).vocab.labels)
    df = _people(tmp_path / "people.csv")
    out = annotate(tmp_path / "people.csv", ck, top_k=2)
    assert [(c.column, c.main_column) for c in out.columns] == [(1, 0), (2, 0)]  # default main column 0
    assert all(len(c.labels) == 2 and {l for l, _ in c.labels} <= vocab for c in out.columns)
    # the same pairs give the same scores from a DataFrame; a main column by name or index
    assert [c.labels for c in annotate(df, ck, top_k=2).columns] == [c.labels for c in out.columns]
    by_name = annotate(df, ck, main_column="city")
    assert [(c.column, c.main_column) for c in by_name.columns] == [(0, 2), (1, 2)]
    assert [c.labels for c in annotate(df, ck, main_column=2).columns] == [c.labels for c in by_name.columns]
    assert out.to_records()[0]["main_column_index"] == 0 and "main_column_index" in out.to_frame()
    with pytest.raises(TableError, match="out of range"):
        annotate(df, ck, main_column=3)
    with pytest.raises(TableError, match="'country' is not a column name"):
        annotate(df, ck, main_column="country")
    with pytest.raises(TableError, match="at least two columns"):
        annotate(df[["name"]], ck)
    with pytest.raises(TableError, match="--main-column"):  # a CTA checkpoint has no main column
        annotate(df, trained.final_checkpoint, main_column=0)


def test_annotate_cli_main_column(cpa_run, tmp_path):
    _, res = cpa_run
    _people(tmp_path / "people.csv")
    js = tmp_path / "ann.json"
    r = CliRunner().invoke(app, ["annotate", str(tmp_path / "people.csv"), "--checkpoint", str(res.final_checkpoint),
                                 "--main-column", "born", "--out", str(js)])
    assert r.exit_code == 0, r.output
    recs = json.loads(js.read_text())
    assert [(x["column_name"], x["main_column_index"]) for x in recs] == [("name", 1), ("city", 1)]
    assert "subject" in r.output
    bad = CliRunner().invoke(app, ["annotate", str(tmp_path / "people.csv"), "--checkpoint", str(res.final_checkpoint),
                                   "--main-column", "9"])
    # main() turns the TableError into one "error: ..." line and exit status 2
    assert isinstance(bad.exception, TableError) and "main column 9 out of range" in str(bad.exception)


def test_cpa_and_cta_data_do_not_mix_and_the_subject_column_is_checked(cpa_run, trained, custom_data, shared_data,
                                                                       tmp_path):
    from aegir.eval_run import run_eval

    _, res = cpa_run
    with pytest.raises(TableError, match=r"a CPA model \(sotab-cpa\) cannot be scored on CTA data"):
        run_eval(res.final_checkpoint, data=str(custom_data), fmt="csv", out=tmp_path / "e1")
    with pytest.raises(TableError, match=r"a CTA model \(custom\) cannot be scored on CPA data"):
        run_eval(trained.final_checkpoint, data=str(shared_data / "sotab_v2_sample" / "CPA" / "Train"), fmt="sotab",
                 out=tmp_path / "e2")
    df = pd.DataFrame({"name": ["", "", ""], "author": ["Ann Lee", "Bo Ray", "Cy Dow"], "year": ["1999", "2004", "2011"]})
    empty_subject = annotate(df, res.final_checkpoint, main_column="name")
    assert any("main (subject) column 0 ('name') holds no values" in n for n in empty_subject.notes)
    twins = pd.DataFrame([["A", "B", "1999"]], columns=["name", "name", "year"])
    with pytest.raises(TableError, match=r"columns 0, 1 are all named 'name'; pass the main column's index"):
        annotate(twins, res.final_checkpoint, main_column="name")
