"""`aegir liveness`: the gate that proves a fine-tuned annotator has not collapsed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from aegir.commands import INFER_BF16_HELP

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("liveness")
    def liveness(
        checkpoint: Path = typer.Option(..., help="Classifier checkpoint (final.pt / run folder / specialist)."),
        data: Optional[str] = typer.Option(None, help="Validation data (default: the task's validation split; SOTAB V2 validation for sotab-cta)."),
        format: Optional[str] = typer.Option(None, help="Format of --data: sotab | gittables | csv | turl | synthetic."),
        out: Optional[Path] = typer.Option(None, help="Folder for liveness.json, liveness.txt and PNG plots."),
        views: int = typer.Option(1, min=1, help="Average predictions over this many row views per column."),
        bf16: Optional[bool] = typer.Option(None, "--bf16/--fp32", help=INFER_BF16_HELP),
    ) -> None:
        """Collapse figures, MCL clusters, chunker health and the PASS/FAIL gate (docs/current/ontology/charter.md)."""
        from aegir.diagnostics import format_report
        from aegir.liveness_run import run_liveness_cmd

        report, out_dir = run_liveness_cmd(checkpoint, data, format, out, views=views, bf16=bf16)
        console.print(format_report(report))
        console.print(f"wrote {out_dir}")
        raise typer.Exit(0 if report.passed else 1)
