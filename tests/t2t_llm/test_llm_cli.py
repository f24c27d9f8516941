import json

import pytest
from typer.testing import CliRunner

from aegir.cli import app
from aegir.t2t.datasets import build_sft_records

runner = CliRunner()


@pytest.mark.parametrize("cmd", [["t2t", "sft"], ["t2t", "rl"], ["t2t", "pipeline-rl"], ["t2t", "export-verl"],
                                 ["extract"]])
def test_every_command_has_help(cmd):
    r = runner.invoke(app, cmd + ["--help"])
    assert r.exit_code == 0 and "Usage" in r.output


def _write_records(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")


def test_sft_and_export_from_records_file(make_examples, tmp_path):
    recs = build_sft_records(make_examples(4), "table")
    rp = tmp_path / "table.jsonl"
    _write_records(rp, recs)
    r = runner.invoke(app, ["t2t", "sft", "--stage", "table", "--records", str(rp), "--model", "tiny",
                            "--max-steps", "1", "--curriculum-stage", "ctx2048", "--micro-batch", "2",
                            "--global-batch", "2", "--no-gradient-checkpointing", "--num-workers", "0",
                            "--lora-r", "4", "--lora-alpha", "8", "--eval-fraction", "0", "--est-step-seconds", "36", "--out",
                            str(tmp_path / "sft")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "sft" / "t2t_config.json").read_text())
    assert cfg["lora"]["r"] == 4 and cfg["global_batch"] == 2 and cfg["stages"][0]["learning_rate"] == 1.5e-4
    assert cfg["est_step_seconds"] == 36.0
    assert (tmp_path / "sft" / "adapter" / "adapter_model.safetensors").is_file()
    # Extraction with that adapter as pi_2 carries no "without a trained adapter" note; with the base it does.
    doc = tmp_path / "doc.txt"
    doc.write_text("Aromi is a coffee shop in the city centre.", encoding="utf-8")
    sp = tmp_path / "s.json"
    sp.write_text(json.dumps({"structure": "kv_single", "fields": [{"name": "name", "type": "string"}]}))
    for pi2, noted in ((str(tmp_path / "sft" / "adapter"), False), ("tiny", True)):
        r = runner.invoke(app, ["extract", str(doc), "--schema", str(sp), "--pi2", pi2, "--model", "tiny",
                                "--out-dir", str(tmp_path / "x")])
        assert r.exit_code == 0, r.output
        assert ("pi_2 ran on a model without a trained adapter" in " ".join(r.output.split())) == noted, r.output

    r = runner.invoke(app, ["t2t", "export-verl", "--records", str(rp), "--stage", "table", "--out",
                            str(tmp_path / "verl")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "verl" / "table" / "rl_train.parquet").is_file()


def test_user_errors_exit_2_with_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"stage": "table"}\nnot json\n', encoding="utf-8")
    r = runner.invoke(app, ["t2t", "sft", "--stage", "table", "--records", str(bad), "--model", "tiny"])
    assert r.exit_code == 2 and f"{bad}:2: invalid JSON" in r.output
    r = runner.invoke(app, ["t2t", "sft", "--stage", "rows", "--records", str(bad), "--model", "tiny"])
    assert r.exit_code == 2 and "schema" in r.output
    r = runner.invoke(app, ["t2t", "rl", "--stage", "table", "--records", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "no such records file" in r.output
