"""`aegir t2t build-sft` and `aegir t2t score`: SFT chat data and text -> table metrics.

Commands only parse flags and call `aegir.t2t.datasets.build_sft_dataset` / `aegir.t2t.scoring.score_files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

console = Console()

# Rows of the score table: (label, metric key). One place, so the printed table and the JSON agree.
_SCORE_ROWS = [
    ("cell F1 exact (raw)", "cell_f1_exact_raw"),
    ("cell P exact (raw)", "cell_precision_exact_raw"),
    ("cell R exact (raw)", "cell_recall_exact_raw"),
    ("cell F1 exact (normalised)", "cell_f1_exact_norm"),
    ("cell F1 chrF (raw)", "cell_f1_chrf_raw"),
    ("cell F1 chrF (normalised)", "cell_f1_chrf_norm"),
    ("row-header F1 exact", "row_header_f1_exact_raw"),
    ("column-header F1 exact", "col_header_f1_exact_raw"),
    ("schema F1 exact", "schema_f1_exact"),
    ("schema F1 soft", "schema_f1_soft"),
    ("end-to-end cell F1 (aligned, chrF)", "end_to_end_cell_f1"),
    ("JSON-valid line rate", "json_valid_rate"),
    ("key-order pass rate", "key_order_pass_rate"),
    ("type-check pass rate", "type_check_pass_rate"),
    ("format-OK rate (1 - wrong format)", "format_ok_rate"),
]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def register_t2t(t2t_app: typer.Typer) -> None:
    @t2t_app.command("build-sft")
    def build_sft(
        stage: str = typer.Option(..., "--stage", help="schema (pi_1: document -> schema) | table (pi_2: -> NDJSON)."),
        data: str = typer.Option("synthetic", "--data",
                                 help="A JSONL path, or e2e | wikitabletext | rotowire (shared data) | synthetic."),
        out: Path = typer.Option(..., "--out", help="Output folder for <stage>.jsonl, buckets and manifest.json."),
        limit: Optional[int] = typer.Option(None, "--limit", help="At most this many examples (synthetic: how many)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the synthetic generator."),
        chars_per_token: float = typer.Option(4.0, help="Token estimate for length bucketing."),
        bucket_margin: float = typer.Option(0.25, help="Headroom on the estimate when bucketing."),
    ) -> None:
        """Build chat-format SFT records (system, user, assistant) for one stage, bucketed by length."""
        from aegir.t2t.datasets import build_sft_dataset

        if stage not in ("schema", "table"):
            raise typer.BadParameter(f"--stage must be schema or table, got {stage!r}")
        with _progress() as prog:
            task = prog.add_task(f"building {stage} records", total=None)
            res = build_sft_dataset(data, stage, out, limit=limit, seed=seed, chars_per_token=chars_per_token,
                                    bucket_margin=bucket_margin,
                                    progress=lambda i, n: prog.update(task, completed=i, total=n))
        console.print(f"[bold]{res.n_records}[/bold] {stage} records from {res.n_examples} examples -> {res.out_dir}")
        rt = RichTable("bucket (tokens)", "records", box=None)
        for s, n in res.buckets.items():
            rt.add_row(str(s), str(n))
        console.print(rt)

    @t2t_app.command("score")
    def score(
        pred: Path = typer.Option(..., "--pred", help="Predictions JSONL (NDJSON text / rows / gold layout, by id)."),
        gold: str = typer.Option(..., "--gold", help="Gold JSONL path, or e2e | wikitabletext | rotowire."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the report as JSON here."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Score only the first N gold documents."),
    ) -> None:
        """Cell F1 (exact/chrF, raw/normalised), header F1, schema F1, end-to-end and format checks."""
        from aegir.t2t.scoring import score_files, write_report

        with _progress() as prog:
            task = prog.add_task("scoring", total=None)
            rep = score_files(pred, gold, limit=limit, progress=lambda i, n: prog.update(task, completed=i, total=n))
        rt = RichTable("metric", "value", title=f"{rep.n_gold} gold documents, {rep.n_pred} predictions "
                       f"({rep.n_missing} missing, {rep.n_unmatched} unmatched ids)")
        for label, key in _SCORE_ROWS:
            v = rep.metrics.get(key)
            if v is not None:  # None: the gold has no such item (key/value gold has no column headers)
                rt.add_row(label, f"{v:.4f}")
        for name, v in rep.by_table.items():
            rt.add_row(f"cell F1 exact, table {name or '(single)'}", f"{v:.4f}")
        console.print(rt)
        if out is not None:
            console.print(f"report -> {write_report(rep, out)}")
