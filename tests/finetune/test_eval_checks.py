"""`aegir eval` / `aegir liveness` / `aegir export`: where reports go, what they record, and what is refused."""

import json

import pytest
from typer.testing import CliRunner

from aegir.checkpoint import CheckpointError
from aegir.cli import app
from aegir.eval_run import run_eval
from aegir.inference import export_specialist, load_classifier


def test_eval_on_other_data_keeps_the_runs_report_and_records_what_it_scored(trained, custom_data):
    own = run_eval(trained.final_checkpoint)
    other = run_eval(trained.final_checkpoint, data=str(custom_data), fmt="csv", views=2)
    assert own.out_dir.name == "eval" and other.out_dir.name == f"eval-{custom_data.name}"
    rep = json.loads((other.out_dir / "report.json").read_text())["evaluated"]
    assert rep["data"] == str(custom_data.resolve()) and rep["format"] == "csv" and rep["views"] == 2
    assert rep["checkpoints"] == [str(trained.final_checkpoint)] and rep["columns"] == len(other.predictions)
    assert json.loads((own.out_dir / "report.json").read_text())["n"] == own.report.n  # not overwritten


def test_eval_options_are_bounded(trained):
    for args in (["--views", "0"], ["--batch-size", "0"]):
        r = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained.final_checkpoint), *args])
        assert r.exit_code == 2 and "Invalid value" in r.output, r.output


def test_export_refuses_to_replace_a_specialist_unless_told(trained, tmp_path):
    spec = export_specialist(trained.final_checkpoint, tmp_path / "spec")
    (spec / "eval").mkdir()  # a report about the model this folder held
    with pytest.raises(CheckpointError, match="a specialist is already there; pass --overwrite"):
        export_specialist(trained.final_checkpoint, spec)
    export_specialist(trained.final_checkpoint, spec, overwrite=True)
    assert not (spec / "eval").exists() and load_classifier(spec).vocab.labels == ["date", "email", "number", "word"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="exists and is not a specialist folder"):
        export_specialist(trained.final_checkpoint, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"


def test_liveness_names_gold_labels_the_model_cannot_say(trained, custom_data, tmp_path):
    from aegir.liveness_run import run_liveness_cmd

    data = tmp_path / "typo"
    data.mkdir()
    for f in custom_data.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    gold = (data / "labels.csv").read_text().replace(",email\n", ",emial\n", 1)
    (data / "labels.csv").write_text(gold)
    report, _ = run_liveness_cmd(trained.final_checkpoint, data=str(data), fmt="csv", out=tmp_path / "lv")
    check = next(c for c in report.checks if c.name == "distinct_predicted")
    assert "4 labels in gold" in check.detail and "not in the model's vocabulary (misses, not counted): emial" in check.detail
