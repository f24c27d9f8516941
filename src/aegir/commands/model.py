"""`aegir model ...`: inspect model configurations (parameter counts by H-Net stage) and a classifier's labels."""

from __future__ import annotations

import json

import typer
from rich.console import Console

console = Console()


def model_info(size: str, as_json: bool = False) -> str:
    """The text (or JSON) `aegir model info` prints for a preset."""
    from aegir.config import ModelConfig
    from aegir.model.summary import flops_per_byte, format_parameter_counts, parameter_counts

    cfg = ModelConfig.preset(size)
    pc = parameter_counts(cfg)
    fl = flops_per_byte(cfg)
    if as_json:
        return json.dumps({"config": cfg.to_dict(), "params": pc.to_dict(), "flops_per_byte": fl.to_dict()}, indent=2)
    ratios = ", ".join(f"{r:g}" for r in fl.compression)
    return (format_parameter_counts(pc, cfg)
            + f"\nforward FLOPs/byte at compression ({ratios}): backbone {fl.backbone_forward / 1e6:.2f}M, "
            f"LM head {fl.head / 1e6:.3f}M; training ~{fl.train / 1e6:.1f}M")


def classifier_summary(checkpoint: str, as_json: bool = False) -> str:
    """What `aegir model labels` prints: a classifier's task, kind and label vocabulary (one label per line)."""
    from aegir.inference import load_classifier

    lc = load_classifier(checkpoint)
    info = {"checkpoint": lc.source, "task": lc.task, "kind": ("CPA" if lc.cpa else "CTA"),
            "multi_label": lc.multi_label, "temperature": lc.temperature, "max_bytes": lc.serialize_cfg.max_bytes,
            "step": lc.meta.get("step"), "git_commit": lc.meta.get("git_commit"), "labels": list(lc.vocab.labels)}
    if as_json:
        return json.dumps(info, indent=1, default=str)
    head = (f"# {info['checkpoint']}: {info['kind']} ({info['task']}, "
            f"{'multi-label' if lc.multi_label else 'one label per column'}), {len(info['labels'])} labels")
    return "\n".join([head, *info["labels"]])


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(help="Inspect backbone configurations and a classifier's labels.", no_args_is_help=True)
    app.add_typer(model_app, name="model")

    @model_app.command("info")
    def info(
        size: str = typer.Option("tiny", "--size", "-s", help="Preset: nano | tiny | small | base."),
        as_json: bool = typer.Option(False, "--json", help="Print the config and counts as JSON."),
    ) -> None:
        """Parameter counts of a model preset, by H-Net stage and in total."""
        from aegir.config import ModelConfigError

        try:
            text = model_info(size, as_json)
        except ModelConfigError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        if as_json:
            print(text)
        else:
            console.print(text, highlight=False)

    @model_app.command("labels")
    def labels(
        checkpoint: str = typer.Option(..., help="Classifier checkpoint (final.pt, run folder or exported specialist)."),
        as_json: bool = typer.Option(False, "--json", help="Print the task, kind and labels as JSON."),
    ) -> None:
        """The labels a classifier chooses from (what annotate --labels takes), one per line, after a # summary line."""
        print(classifier_summary(checkpoint, as_json))
