"""annotate / annotate_files / `aegir annotate`: options and outputs checked before anything is read or written."""

import json
import stat

import pandas as pd
import pytest
from typer.testing import CliRunner

from aegir.annotate_batch import annotate_files
from aegir.annotation import annotate
from aegir.cli import app
from aegir.inference import export_specialist
from aegir.tables import TableError

DF = pd.DataFrame({"who": ["a@x.org", "b@y.com", "c@z.net"], "when": ["2024-01-02", "2023-05-06", "2022-07-08"]})


@pytest.mark.parametrize("kw, message", [
    (dict(top_k=0), "top_k must be a whole number >= 1, got 0"),
    (dict(top_k=2.5), "top_k must be a whole number >= 1, got 2.5"),
    (dict(views=0), "views must be a whole number >= 1"),
    (dict(batch_size=0), "batch_size must be a whole number >= 1"),
    (dict(min_score="0.5"), r"min_score must be a number in \[0, 1\]"),
    (dict(min_score=float("nan")), r"min_score must be a number in \[0, 1\]"),
    (dict(labels=[]), "labels is empty"),
    (dict(labels="email"), r"not one string: labels=\['email'\]"),
])
def test_bad_options_are_named(trained, kw, message):
    with pytest.raises(ValueError, match=message):
        annotate(DF, trained.final_checkpoint, **kw)


def test_unknown_labels_suggest_the_label_meant_and_an_iterator_is_read_once(trained):
    with pytest.raises(TableError, match=r"'Email' \(did you mean 'email'\?\), 'emial' \(did you mean 'email'\?\), 'zzq'$"):
        annotate(DF, trained.final_checkpoint, labels=["Email", "emial", "zzq"])
    gen = annotate(DF, trained.final_checkpoint, labels=(l for l in ("email", "date")), top_k=2)
    assert gen.to_records() == annotate(DF, trained.final_checkpoint, labels=["email", "date"], top_k=2).to_records()
    assert {l for c in gen.columns for l, _ in c.labels} <= {"email", "date"}


def test_annotate_files_checks_before_writing_and_takes_one_path(trained, tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    lake.mkdir()
    DF.to_csv(lake / "a.csv", index=False)
    out = tmp_path / "ann.jsonl"
    for kw in (dict(labels=["email", "Nope"]), dict(top_k=0)):
        with pytest.raises((TableError, ValueError)):
            annotate_files([lake], trained.final_checkpoint, out, **kw)
        assert not out.exists() and not (tmp_path / "ann.run.json").exists()  # nothing to clean up or --resume
    with pytest.raises(TableError, match="paths\\[0\\] is a DataFrame"):
        annotate_files([DF], trained.final_checkpoint, out)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no table here")
    with pytest.raises(TableError, match="no table files in .*empty"):
        annotate_files([tmp_path / "empty"], trained.final_checkpoint, out)
    assert not out.exists()
    # One path alone, as a string: that folder, not its characters (".." was read as the current folder).
    monkeypatch.chdir(lake)
    res = annotate_files("..", trained.final_checkpoint, out, progress=False)
    assert (res.files, res.annotated) == (1, 1)
    assert {json.loads(l)["file"] for l in out.read_text().splitlines()} == {"../lake/a.csv"}


def test_cli_out_is_checked_before_the_model_runs(trained, tmp_path):
    src = tmp_path / "t.csv"
    DF.to_csv(src, index=False)
    before = src.read_bytes()
    ck = ["--checkpoint", str(trained.final_checkpoint)]

    def run(*args):
        r = CliRunner().invoke(app, ["annotate", str(src), *ck, *args])
        r.text = " ".join(r.output.replace("│", " ").split())  # click's error box wraps the message
        return r
    same = run("--out", str(src))
    assert same.exit_code == 2 and "is the table being annotated" in same.text and src.read_bytes() == before
    folder = run("--out", str(tmp_path))
    assert folder.exit_code == 2 and "is a folder" in folder.text
    txt = run("--out", str(tmp_path / "a.txt"))
    assert txt.exit_code == 2 and ".json, .csv or .jsonl" in txt.text and not (tmp_path / "a.txt").exists()
    zero = run("--top-k", "0")
    assert zero.exit_code == 2 and "--top-k" in zero.text
    first = run("--out", str(tmp_path / "new" / "a.json"))  # a missing folder is made
    assert first.exit_code == 0, first.output
    recs = json.loads((tmp_path / "new" / "a.json").read_text())
    assert [r["column_name"] for r in recs] == ["who", "when"]
    again = run("--out", str(tmp_path / "new" / "a.json"))
    assert again.exit_code == 2 and "exists: pass --overwrite" in again.text
    assert run("--out", str(tmp_path / "new" / "a.json"), "--overwrite").exit_code == 0


def test_an_exported_specialist_is_readable_by_others(trained, tmp_path):
    spec = export_specialist(trained.final_checkpoint, tmp_path / "spec")
    for f in spec.iterdir():
        assert f.stat().st_mode & stat.S_IROTH, f  # safetensors writes 0600 by itself
    assert not [f for f in spec.iterdir() if f.name.startswith(".")]  # no temporary files left


def test_empty_columns_tables_without_rows_and_long_rows_are_said(trained, tmp_path):
    ck = trained.final_checkpoint
    blank = annotate(DF.assign(x=[None, None, None]), ck)
    assert any("1 column(s) hold no values in the rows read ('x')" in n for n in blank.notes)
    assert not any("hold no values" in n for n in annotate(DF, ck).notes)
    (tmp_path / "h.csv").write_text("who,when,price\n")
    names_only = annotate(tmp_path / "h.csv", ck, header=True)
    assert [c.name for c in names_only.columns] == ["who", "when", "price"]
    assert any("no data rows: every label comes from the column names alone" in n for n in names_only.notes)
    (tmp_path / "r.csv").write_text("who,when\na@x.org,2024-01-02\nb@y.com,2023-05-06,oops\nc@z.net,2022-07-08\n")
    ragged = annotate(tmp_path / "r.csv", ck)
    assert [c.name for c in ragged.columns] == ["who", "when", "column_2"]
    assert any("1 of the rows read have more fields than the header's 2 (the first: data row 2)" in n
               for n in ragged.notes)


def test_model_labels_lists_what_annotate_chooses_from(trained, tmp_path):
    r = CliRunner().invoke(app, ["model", "labels", "--checkpoint", str(trained.final_checkpoint)])
    assert r.exit_code == 0, r.output
    head, *labels = r.stdout.splitlines()
    assert labels == ["date", "email", "number", "word"] and "CTA (custom, one label per column), 4 labels" in head
    spec = export_specialist(trained.final_checkpoint, tmp_path / "spec")
    j = CliRunner().invoke(app, ["model", "labels", "--checkpoint", str(spec), "--json"])
    assert json.loads(j.stdout)["labels"] == labels


def test_liveness_of_a_specialist_writes_inside_its_folder(trained, custom_data, tmp_path):
    from aegir.liveness_run import run_liveness_cmd

    spec = export_specialist(trained.final_checkpoint, tmp_path / "specialists" / "cta")
    _, out_dir = run_liveness_cmd(spec, data=str(custom_data), fmt="csv")
    assert out_dir == spec / "liveness" and (spec / "liveness").is_dir()
    assert not (tmp_path / "specialists" / "liveness").exists()


def test_other_url_schemes_are_named_not_read_as_paths(trained):
    for url in ("ftp://host/t.csv", "s3://bucket/t.parquet"):
        with pytest.raises(TableError, match=rf"{url}: only http\(s\) URLs are downloaded"):
            annotate(url, trained.final_checkpoint)
