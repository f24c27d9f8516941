"""`aegir demo`: the main job on the embedded default data (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("outputs"), help="Where run folders go."),
        pretrain_steps: int = typer.Option(1000, help="Pretraining steps (nano)."),
        finetune_epochs: int = typer.Option(5, help="Fine-tuning epochs on synthetic tables."),
        n_synthetic: int = typer.Option(1000, help="Synthetic tables to generate."),
    ) -> None:
        """Pretrain nano on the embedded corpus, fine-tune CTA, run the liveness gate, annotate an example CSV."""
        from aegir.demo import DemoConfig, run_demo

        res = run_demo(DemoConfig(out=str(out), pretrain_steps=pretrain_steps, finetune_epochs=finetune_epochs,
                                  n_synthetic=n_synthetic))
        raise typer.Exit(0 if res.gate_passed else 1)
