from typer.testing import CliRunner

from aegir.cli import app

runner = CliRunner()


def test_data_stats_sotab(shared_data):
    r = runner.invoke(app, ["data", "stats", str(shared_data / "sotab_v2_sample" / "CTA" / "Train"), "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "tables 1,199" in r.output and "labelled columns 1,640" in r.output and "labels 82" in r.output


def test_data_stats_synthetic_and_csv(tmp_path):
    r = runner.invoke(app, ["data", "stats", "--format", "synthetic", "--n-synthetic", "20"])
    assert r.exit_code == 0 and "tables 20" in r.output
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "labels.csv").write_text("table_name,column_index,label\na.csv,1,Number\n")
    r = runner.invoke(app, ["data", "stats", str(tmp_path), "--format", "csv"])
    assert r.exit_code == 0 and "labelled columns 1" in r.output and "Number" in r.output


def test_data_stats_bad_path_is_one_clear_error(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "aegir", "data", "stats", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr


def test_a_labels_csv_folder_read_as_sotab_says_format_csv(tmp_path):
    from aegir.tables import TableError
    from aegir.tables.load import load_labeled

    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "labels.csv").write_text("table_name,column_index,label\na.csv,1,Number\n")
    for path in (tmp_path, tmp_path / "labels.csv"):
        r = runner.invoke(app, ["data", "stats", str(path)])  # --format sotab is the default
        assert isinstance(r.exception, TableError) and "is read with --format csv" in str(r.exception), r.output
    (tmp_path / "labels.csv").unlink()
    try:
        load_labeled("sotab", tmp_path)
    except TableError as e:
        assert "not a SOTAB root or split folder" in str(e) and "(pass --gold)" not in str(e)
    else:
        raise AssertionError("a folder of CSVs without a gold file was read as SOTAB")
