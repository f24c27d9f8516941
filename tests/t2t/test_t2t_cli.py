"""`aegir t2t build-sft` / `aegir t2t score` in-process via typer's CliRunner."""

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from aegir.commands.t2t_data import _SCORE_ROWS, register_t2t
from aegir.t2t.datasets import build_sft_records, load_e2e
from aegir.t2t.scoring import score_files

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    t2t = typer.Typer()
    app.add_typer(t2t, name="t2t")
    register_t2t(t2t)
    return app


def test_help_on_every_command():
    app = _app()
    for cmd in ("build-sft", "score"):
        res = runner.invoke(app, ["t2t", cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output


def test_score_e2e_gold_against_itself_prints_one_everywhere(shared_data, tmp_path):
    gold = shared_data / "t2t" / "e2e_dev.jsonl"
    out = tmp_path / "report.json"
    res = runner.invoke(_app(), ["t2t", "score", "--pred", str(gold), "--gold", str(gold), "--out", str(out)],
                        terminal_width=120)
    assert res.exit_code == 0, res.output
    values = re.findall(r"│\s*([^│]+?)\s*│\s*([0-9.]+|n/a)\s*│", res.output)
    assert len(values) >= len(_SCORE_ROWS) - 1  # column-header F1 is not printed for key/value gold
    assert all(v == "1.0000" for _, v in values), values
    rep = json.loads(out.read_text())
    assert rep["n_gold"] == 4672 and rep["n_missing"] == 0
    assert all(v == 1.0 for v in rep["metrics"].values() if v is not None)


def test_score_predictions_file(shared_data, tmp_path):
    exs = load_e2e(limit=4)
    recs = build_sft_records(exs, "table")
    preds = tmp_path / "pred.jsonl"
    lines = [
        {"id": recs[0]["id"], "prediction": recs[0]["messages"][2]["content"]},  # perfect
        {"id": recs[1]["id"], "prediction": "```json\n" + recs[1]["messages"][2]["content"] + "\n```"},  # fenced
        {"id": recs[2]["id"], "rows": json.loads(recs[2]["ground_truth"])["rows"]},  # rows form
        {"id": "not-in-gold", "prediction": "{}"},
    ]  # recs[3] missing
    preds.write_text("\n".join(json.dumps(l) for l in lines))
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps({"id": e.id, "text": e.document, "table": [list(p) for p in
                                          e.tables[0].pairs]}) for e in exs))
    rep = score_files(preds, str(gold))
    assert (rep.n_gold, rep.n_pred, rep.n_missing, rep.n_unmatched) == (4, 3, 1, 1)
    assert rep.metrics["cell_f1_exact_raw"] == pytest.approx(0.75)  # 3 perfect documents, 1 missing
    assert rep.metrics["format_ok_rate"] == pytest.approx(2 / 4)  # the fenced and the missing fail strict


def test_build_sft_cli(tmp_path):
    res = runner.invoke(_app(), ["t2t", "build-sft", "--stage", "schema", "--data", "synthetic", "--limit", "12",
                                 "--out", str(tmp_path / "sft")])
    assert res.exit_code == 0, res.output
    recs = [json.loads(l) for l in (tmp_path / "sft" / "schema.jsonl").read_text().splitlines()]
    assert len(recs) == 12 and recs[0]["messages"][0]["role"] == "system"
    bad = runner.invoke(_app(), ["t2t", "build-sft", "--stage", "both", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0
