"""`aegir data ...`: inspect labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table as RichTable

console = Console()


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Inspect labelled table data.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("stats")
    def stats(
        path: Optional[Path] = typer.Argument(None, help="Data path (SOTAB root or split folder, GitTables folder/fold CSV, CSV folder, TURL JSON)."),
        format: str = typer.Option("sotab", "--format", "-f", help="sotab | gittables | csv | turl | synthetic"),
        gold: Optional[Path] = typer.Option(None, help="Gold CSV (SOTAB split folder or CSV folder)."),
        top: int = typer.Option(15, help="How many labels of the distribution to print."),
        n_synthetic: int = typer.Option(500, help="Tables to generate for --format synthetic."),
        seed: int = typer.Option(0, help="Seed for --format synthetic."),
    ) -> None:
        """Tables, columns, labelled columns and the label distribution of a dataset."""
        from aegir.tables.load import load_labeled

        for name, ds in load_labeled(format, path, gold=gold, n_synthetic=n_synthetic, seed=seed).items():
            counts = ds.label_counts()
            console.print(f"[bold]{name}[/bold]  ({ds.source}, task {ds.task}{', multi-label' if ds.multi_label else ''})")
            console.print(f"  tables {len(ds.tables):,}   columns {ds.n_columns:,}   labelled columns {len(ds.targets):,}"
                          f"   labels {len(counts)}   skipped {ds.skipped}")
            rt = RichTable("label", "columns", "share", box=None, pad_edge=False)
            total = sum(counts.values()) or 1
            for lab, c in list(counts.items())[:top]:
                rt.add_row(lab, f"{c:,}", f"{c / total:.1%}")
            if len(counts) > top:
                rt.add_row(f"… {len(counts) - top} more", "", "")
            console.print(rt)
