"""Text -> schema -> table quality of SmolLM2-135M-Instruct, zero-shot vs LoRA SFT on CPU (fixed budget).

    .venv/bin/python benchmarks/t2t_quality.py                  # the committed run (docs/results/t2t.md)
    .venv/bin/python benchmarks/t2t_quality.py --model tiny --n-eval 2 --schema-steps 1 --table-steps 1 \
        --out /tmp/t2t.md                                        # smoke test of the script itself

Data: the shared E2E and WikiTableText *dev* files (../shared/data/t2t). Examples are grouped by their gold
table (E2E has several texts per meaning representation); a hash of the gold table picks held-out groups for
scoring, the rest are the training pool, so no scored table was seen in training.

Measured, per dataset, for the untuned model (zero-shot) and after LoRA SFT:
- pi_1 (document -> schema): schema JSON validity, field-name F1 exact / soft vs the gold headers;
- pi_2 (document + *gold* schema -> NDJSON, so pi_2 is scored alone): cell F1 exact (raw / normalised) and
  chrF (normalised), JSON validity per line and per answer, without and with grammar-constrained decoding;
- tokens/s of training (non-pad tokens the trainer consumed / wall time) and of generation.
pi_1 and pi_2 are separate LoRA adapters on the same base (the pi_1 adapter is removed before pi_2 trains);
tuned models are evaluated with the adapter merged into the weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchConfig:
    model: str = "smollm2"
    n_eval: int = 8  # held-out documents per dataset
    n_train: int = 200  # training pool per dataset (only steps x global_batch records are consumed)
    schema_steps: int = 6
    table_steps: int = 6
    global_batch: int = 4  # micro-batch 1 x grad-accum 4 (the design's 32 does not fit a CPU budget)
    learning_rate: float = 1e-3  # the curriculum's 1.5e-4 is for thousands of steps; a few steps need more
    max_new_schema: int = 96
    max_new_table: int = 96
    gen_batch: int = 8
    threads: int = 1
    precision: str = "bf16"  # autocast for training and generation on CPU (measured ~2x faster than fp32)
    seed: int = 0
    out: str = "docs/results/t2t.md"


@dataclass
class Phase:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)


def _group_key(ex: Any) -> str:
    return json.dumps([[t.header, t.rows] for t in ex.tables], ensure_ascii=False)


def split_heldout(examples: list[Any], n_eval: int, n_train: int, seed: int) -> tuple[list[Any], list[Any]]:
    """Whole gold-table groups go to eval (by hash order) until n_eval documents; one document per group."""
    groups: dict[str, list[Any]] = {}
    for ex in examples:
        groups.setdefault(_group_key(ex), []).append(ex)
    order = sorted(groups, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    ev = [groups[k][0] for k in order[:n_eval]]
    train = [ex for k in order[n_eval:] for ex in groups[k]][:n_train]
    return train, ev


def _autocast(cfg: BenchConfig):
    import contextlib

    import torch

    if cfg.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eval_schema(loaded: Any, exs: list[Any], cfg: BenchConfig) -> dict[str, float]:
    from aegir.t2t.extract import generate_batch, parse_schema_answer
    from aegir.t2t.metrics import schema_f1
    from aegir.t2t.prompts import schema_messages
    from aegir.t2t.schema import build_assistant_schema

    stats: dict[str, float] = {}
    with _autocast(cfg):
        outs = generate_batch(loaded, [schema_messages(ex.document, ex.metadata) for ex in exs], cfg.max_new_schema,
                              batch_size=cfg.gen_batch, stats=stats)
    valid, f_exact, f_soft = 0, [], []
    for ex, o in zip(exs, outs):
        gold = build_assistant_schema(ex.tables).field_names
        try:
            names = parse_schema_answer(o).field_names
            valid += 1
        except Exception:  # noqa: BLE001 - any unparseable answer scores 0, that is the measurement
            names = []
        f_exact.append(schema_f1(names, gold).f1)
        f_soft.append(schema_f1(names, gold, soft=True).f1)
    n = len(exs)
    return {"schema_json_valid": valid / n, "schema_f1_exact": sum(f_exact) / n, "schema_f1_soft": sum(f_soft) / n,
            "gen_tokens_per_s": stats["new_tokens"] / stats["seconds"], "example_output": outs[0][:160]}


def eval_table(loaded: Any, exs: list[Any], cfg: BenchConfig, constrained: bool) -> dict[str, float]:
    from aegir.t2t.extract import GrammarFactory, GrammarLimits, generate_batch
    from aegir.t2t.metrics import cell_f1
    from aegir.t2t.ndjson import parse_ndjson
    from aegir.t2t.prompts import table_messages
    from aegir.t2t.sanity import quick_table_sanity
    from aegir.t2t.schema import build_assistant_schema, canonical_gold, rows_to_tables

    schemas = [build_assistant_schema(ex.tables) for ex in exs]
    grammars = None
    if constrained:
        gf = GrammarFactory(loaded)
        grammars = [gf.ndjson(s, GrammarLimits(value_units=48)) for s in schemas]
    stats: dict[str, float] = {}
    with _autocast(cfg):
        outs = generate_batch(loaded, [table_messages(ex.document, s, ex.metadata) for ex, s in zip(exs, schemas)],
                              cfg.max_new_table, grammar=grammars, batch_size=cfg.gen_batch, stats=stats)
    preds = []
    for o, s in zip(outs, schemas):
        p = parse_ndjson(o, "strict")
        preds.append(rows_to_tables(p.rows, s) if p.rows else None)
    golds = [canonical_gold(ex.tables, s) for ex, s in zip(exs, schemas)]
    san = quick_table_sanity(outs, schemas)
    return {
        "cell_f1_exact_raw": cell_f1(preds, golds, sim="exact").f1,
        "cell_f1_exact_norm": cell_f1(preds, golds, sim="exact", normalize=True).f1,
        "cell_f1_chrf_norm": cell_f1(preds, golds, sim="chrf", normalize=True).f1,
        "json_valid_lines": san["json_valid_rate"],
        "json_valid_answers": san["strict_ok_rate"],
        "gen_tokens_per_s": stats["new_tokens"] / stats["seconds"],
        "example_output": outs[0][:160],
    }


def train(loaded: Any, task: str, examples: list[Any], steps: int, cfg: BenchConfig, out: Path) -> dict[str, Any]:
    from aegir.t2t.config import T2TTrainConfig
    from aegir.t2t.datasets import build_sft_records
    from aegir.t2t.sft import run_sft

    tc = T2TTrainConfig(num_workers=0, gradient_checkpointing=False, log_freq=1, eval_freq=0,
                        precision="bf16" if cfg.precision == "bf16" else "fp32", seed=cfg.seed)
    tc = tc.with_global_batch(cfg.global_batch, micro_batch=1)
    tc = tc.replace(stages=tuple(dataclasses.replace(s, learning_rate=cfg.learning_rate) for s in tc.stages))
    recs = build_sft_records(examples, task)
    res = run_sft(recs, task, out / f"sft-{task}", model=loaded, cfg=tc, max_steps=steps, stage_names=["ctx2048"])
    st = res.stages[0]
    return {"steps": st.steps, "records_seen": st.steps * cfg.global_batch, "loss_first": st.losses[0],
            "loss_last": st.losses[-1], "train_seconds": st.seconds, "train_tokens": st.tokens,
            "train_tokens_per_s": st.tokens_per_s, "lora": dataclasses.asdict(tc.lora),
            "warmup_steps": st.warmup_steps}


def run(cfg: BenchConfig) -> dict[str, Any]:
    import torch

    from aegir.t2t.datasets import load_e2e, load_wikitabletext
    from aegir.t2t.models import load_model

    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    data = {"e2e": load_e2e(), "wikitabletext": load_wikitabletext()}
    splits = {k: split_heldout(v, cfg.n_eval, cfg.n_train, cfg.seed) for k, v in data.items()}
    # interleave datasets so the few consumed training records cover both
    train_pool = [ex for pair in zip(*(tr for tr, _ in splits.values())) for ex in pair]
    loaded = load_model(cfg.model)
    run_dir = REPO / "outputs" / "t2t-quality" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {"config": dataclasses.asdict(cfg), "zero_shot": {}, "sft": {}, "training": {}}

    def evaluate(tag: str, which: tuple[str, ...]) -> None:
        # Serve a tuned adapter merged into the weights (how it would be deployed): unmerged LoRA layers with
        # r=128 on every projection halve CPU generation speed. Unmerged again before anything trains.
        merged = hasattr(loaded.model, "merge_adapter")
        if merged:
            loaded.model.merge_adapter()
        for ds, (_tr, ev) in splits.items():
            r = results[tag].setdefault(ds, {})
            if "schema" in which:
                r["pi1"] = eval_schema(loaded, ev, cfg)
            if "table" in which:
                r["pi2_unconstrained"] = eval_table(loaded, ev, cfg, constrained=False)
                r["pi2_constrained"] = eval_table(loaded, ev, cfg, constrained=True)
            print(f"[{time.perf_counter() - t_start:6.0f}s] {tag} {ds} {which}", file=sys.stderr)
        if merged:
            loaded.model.unmerge_adapter()

    evaluate("zero_shot", ("schema", "table"))
    results["training"]["schema"] = train(loaded, "schema", train_pool, cfg.schema_steps, cfg, run_dir)
    evaluate("sft", ("schema",))
    loaded.model = loaded.model.unload()  # drop pi_1's LoRA: pi_2 is its own adapter on the same base
    results["training"]["table"] = train(loaded, "table", train_pool, cfg.table_steps, cfg, run_dir)
    evaluate("sft", ("table",))
    results["total_seconds"] = time.perf_counter() - t_start
    results["finished_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                          "threads": cfg.threads, "cpu": platform.processor() or platform.machine()}
    results["n_train_pool"] = len(train_pool)
    return results


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def render(res: dict[str, Any]) -> str:
    c = res["config"]
    lines = [
        "# Text -> schema -> table: SmolLM2-135M zero-shot vs LoRA SFT (CPU, fixed small budget)",
        "",
        f"Written by `benchmarks/t2t_quality.py` on {res.get('finished_utc', '(time not recorded)')}; "
        f"model `{c['model']}`, total wall time {res['total_seconds'] / 60:.1f} min on a shared 2-core CPU box "
        f"({c['threads']} torch thread(s), {c['precision']} autocast).",
        "",
        "**Read this as a smoke-scale measurement, not a quality claim.** Held-out documents per dataset: "
        f"{c['n_eval']} (E2E and WikiTableText *dev* files; whole gold-table groups held out). Training: "
        f"{res['training']['schema']['steps']} (pi_1) and {res['training']['table']['steps']} (pi_2) optimizer steps "
        f"of {c['global_batch']} sequences (micro-batch 1 x grad-accum {c['global_batch']}), lr {c['learning_rate']:g}, "
        "LoRA r128 / alpha 256 / dropout 0.05 on q,k,v,o,gate,up,down; one curriculum stage (ctx2048: every record "
        "fits). The design's global batch 32 and hour-scale stage budgets do not fit a CPU run. With so few scored "
        "documents one document moves a dataset's score by 1/n.",
        "",
        "pi_2 is always given the **gold** schema here, so its scores measure pi_2 alone. Generation: greedy, "
        f"max_new_tokens {c['max_new_schema']} (schema) / {c['max_new_table']} (table).",
        "",
        "## pi_1: document -> schema",
        "",
        "| dataset | model | schema JSON valid | schema F1 exact | schema F1 soft | gen tok/s |",
        "|---|---|---|---|---|---|",
    ]
    for ds in ("e2e", "wikitabletext"):
        for tag, name in (("zero_shot", "zero-shot"), ("sft", "LoRA SFT")):
            m = res[tag][ds]["pi1"]
            lines.append(f"| {ds} | {name} | {_f(m['schema_json_valid'])} | {_f(m['schema_f1_exact'])} | "
                         f"{_f(m['schema_f1_soft'])} | {m['gen_tokens_per_s']:.1f} |")
    lines += [
        "",
        "## pi_2: document + gold schema -> NDJSON rows",
        "",
        "| dataset | model | decoding | cell F1 exact (raw) | cell F1 exact (norm.) | cell F1 chrF (norm.) | "
        "JSON-valid lines | JSON-valid answers | gen tok/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ds in ("e2e", "wikitabletext"):
        for tag, name in (("zero_shot", "zero-shot"), ("sft", "LoRA SFT")):
            for mode in ("unconstrained", "constrained"):
                m = res[tag][ds][f"pi2_{mode}"]
                lines.append(f"| {ds} | {name} | {mode} | {_f(m['cell_f1_exact_raw'])} | {_f(m['cell_f1_exact_norm'])} | "
                             f"{_f(m['cell_f1_chrf_norm'])} | {_f(m['json_valid_lines'])} | "
                             f"{_f(m['json_valid_answers'])} | {m['gen_tokens_per_s']:.1f} |")
    lines += ["", "## Training", "", "| adapter | steps | sequences | loss first -> last | train tokens | train tok/s |",
              "|---|---|---|---|---|---|"]
    for task, name in (("schema", "pi_1 (schema)"), ("table", "pi_2 (table)")):
        t = res["training"][task]
        lines.append(f"| {name} | {t['steps']} | {t['records_seen']} | {t['loss_first']:.3f} -> {t['loss_last']:.3f} | "
                     f"{t['train_tokens']} | {t['train_tokens_per_s']:.1f} |")
    lines += [
        "",
        "Train tokens count every non-pad token the trainer consumed (prompts included; the loss is on the "
        "assistant answer only). Generation tok/s = generated tokens / generate() wall time, batches of "
        f"{c['gen_batch']} (prefill of the ~700-token prompts included, which dominates on CPU).",
        "",
        "## Example outputs (first held-out document)",
        "",
    ]
    for ds in ("e2e", "wikitabletext"):
        for tag in ("zero_shot", "sft"):
            for key in ("pi1", "pi2_unconstrained", "pi2_constrained"):
                ex = res[tag][ds][key]["example_output"].replace("\n", "\\n").replace("|", "\\|")
                lines.append(f"- {ds} / {tag} / {key}: `{ex}`")
    lines += [
        "",
        "## Reading the numbers",
        "",
        "- Zero-shot, SmolLM2-135M ignores the answer format (it writes numbered prose), so unconstrained JSON "
        "validity and every F1 are 0; the grammar alone makes its answers valid NDJSON with the schema's keys, "
        "but the values are mostly copied noise.",
        "- Constrained decoding is a single pass here (`max_new_tokens` can still cut a row whose string values run "
        "long: that is the remaining invalid share). `aegir extract` adds a tight second pass for that case, which "
        "this benchmark does not use, so its validity column is a lower bound for `extract`.",
        "- Under constraint the tuned pi_2 must emit every schema key (unconstrained it sometimes stops early and "
        "drops keys), which is where most of its cell-F1 gain over unconstrained decoding comes from.",
        "- Generation tok/s include the prefill of the ~700-token prompt; answers that stop early (tuned) spread "
        "that cost over fewer tokens than answers that run to max_new_tokens (zero-shot), so tok/s are not a "
        "speed comparison between rows. Constrained rows also pay xgrammar's per-token mask.",
        "- Not measured here: end-to-end pi_1 -> pi_2 scoring, Rotowire (multi-row), GRPO / pipeline RL (their "
        "tests check that they run and produce reward variance, not quality).",
        "",
        "Raw numbers: the JSON file next to this one.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in dataclasses.fields(BenchConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    ap.add_argument("--render-from", default="", help="Re-render the Markdown from a saved results JSON.")
    args = vars(ap.parse_args(argv))
    render_from = args.pop("render_from")
    cfg = BenchConfig(**{k.replace("-", "_"): v for k, v in args.items()})
    res = json.loads(Path(render_from).read_text()) if render_from else run(cfg)
    out = Path(cfg.out)
    if not out.is_absolute():
        out = REPO / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(res), encoding="utf-8")
    result_file(out, ".json").write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    print(f"wrote {out} and {result_file(out, '.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
