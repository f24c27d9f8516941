"""`aegir pretrain`: help text, clear errors with exit code 2, and `--set` parsing."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from aegir.commands.pretrain import _parse_sets, register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps typer from collapsing to a single-command app
    def noop() -> None:
        pass

    return app


def test_help_lists_the_issue_flags() -> None:
    res = CliRunner().invoke(_app(), ["pretrain", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for flag in ("--config", "--model-size", "--steps", "--hours", "--batch-size", "--seq-len", "--lr",
                 "--warmup-steps", "--out", "--resume", "--data", "--bf16"):
        assert flag in res.output


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(_app(), ["pretrain", "--resume", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such run folder" in r.output
    r = CliRunner().invoke(_app(), ["pretrain", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    r = CliRunner().invoke(_app(), ["pretrain", "--batch-size", "0"])
    assert r.exit_code == 2 and "--batch-size must be >= 1" in r.output


def test_set_values_are_json() -> None:
    assert _parse_sets(["wkv_chunk=32", "d_model=[64, 96, 96]", "name=x"]) == {
        "wkv_chunk": 32, "d_model": [64, 96, 96], "name": "x"}
