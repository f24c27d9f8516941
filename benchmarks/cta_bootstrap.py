"""Paired bootstrap: is a fine-tuned checkpoint's macro-F1 above the TF-IDF baseline's, beyond sampling noise?

Scores each `--checkpoint` (alone; `--views` row views averaged) and the classical baseline (char n-gram TF-IDF +
logistic regression, trained on the same data as `cta_quality.py --augment N` uses) on a task's validation
columns, then resamples the columns with replacement `--samples` times and recomputes both macro-F1s on each
resample (same resample for both: paired). Reports the observed difference, its 95% percentile interval and
the share of resamples where the checkpoint is not above the baseline. Macro-F1 is averaged over the labels
present in each resample's gold labels, as the project's metric does on the full set.

    python benchmarks/cta_bootstrap.py --task sotab-cta --augment 1500 --views 4 \
        --checkpoint A/final.pt --checkpoint B/final.pt --result docs/results/cta_bootstrap

`--mean-of NAME=A,B,C` adds a row for the mean macro-F1 of several checkpoints (the seeds of one recipe), scored
on the same resamples: the recipe's expected score, not one lucky seed's. `--ensemble NAME=A,B,C` adds a row
for those checkpoints used together as one classifier (mean probability, as `aegir eval --checkpoint A
--checkpoint B ...` predicts). Every row's distribution of differences is also plotted (`<result>.png`).
`--compare A:B` adds a paired difference between two of those rows (checkpoints or NAMEs), A minus B on the
same resamples: did a change of recipe (say, the mean of distilled students against the mean of the plain
runs they were distilled from) move the score beyond the validation set's sampling noise?

`--cv-folds K` scores a k-fold cross-validation (`aegir train --cv-folds K --cv-fold i`, tasks whose validation
tables are held out by hash): every `--checkpoint` is then `NAME=C0,C1,...` with fold i's run in place i, the
baseline is trained once per fold on that fold's training tables, and the K validation parts are pooled into one
set of columns, each scored by the run that did not train on it. `--mean-of` and `--ensemble` then name such
rows; an ensemble scores each fold with the named rows' runs of that fold, used together.
`--folds 0,1` pools only those folds (every `--checkpoint` then lists one run per named fold, in that order):
a paired comparison of two recipes on part of a cross-validation when the budget does not cover all K.

What it does not cover: run-to-run (seed) variance of training beyond the seeds given; for that, compare
more seeds. Validation numbers only (the official test splits are kept aside).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402
from classical_baseline import add_class_weight_option, class_weight_arg, tfidf_logreg  # noqa: E402

from aegir.eval_run import eval_dataset, predicted_label_sets  # noqa: E402
from aegir.evaluation import classification_report  # noqa: E402
from aegir.checkpoint import CheckpointError  # noqa: E402
from aegir.inference import Predictions, combine_members, load_classifier, load_classifiers  # noqa: E402
from aegir.train.tasks import resolve_task  # noqa: E402


BASELINE = "TF-IDF char 2-4 + LogReg"


def macro_f1_resampled(gold: np.ndarray, pred: np.ndarray, n_labels: int, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 for many resamples at once. gold, pred: (N,) label ids; weights: (S, N) multiplicities
    of each column in each resample. Returns (S,): F1 averaged over labels with gold support > 0."""
    S = weights.shape[0]
    hit = (gold == pred).astype(np.float64)  # (N,)
    tp = np.zeros((S, n_labels))
    sup = np.zeros((S, n_labels))
    npred = np.zeros((S, n_labels))
    for lab_of, acc in ((gold, sup), (pred, npred)):
        np.add.at(acc.T, lab_of, weights.T)  # acc[s, lab_of[i]] += weights[s, i]
    np.add.at(tp.T, gold, (weights * hit).T)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(sup + npred > 0, 2 * tp / (sup + npred), 0.0)  # 2TP / (2TP + FP + FN)
    present = sup > 0
    return (f1 * present).sum(1) / present.sum(1)


def resample_weights(n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, n) multiplicities of n columns in `samples` bootstrap resamples (with replacement)."""
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(samples)]).astype(np.float64)


def support_split(gold: list[str], pred: list[str], k: int) -> tuple[float, float, int, int]:
    """Macro-F1 over the labels with >= k gold columns, and over those with 1..k-1, and how many of
    each: the two parts average (weighted by those counts) to the full macro-F1. On small validation
    sets, the rare labels are where single columns swing the score. A part with no labels (e.g. no
    rare label in a large cross-validation) is None, printed as "–"."""
    support: dict[str, int] = {}
    for g in gold:
        support[g] = support.get(g, 0) + 1
    f1 = {r.label: r.f1 for r in classification_report(gold, pred).per_label}
    big = [f1[l] for l, c in support.items() if c >= k]
    small = [f1[l] for l, c in support.items() if c < k]
    return _mean_or_none(big), _mean_or_none(small), len(big), len(small)


def _mean_or_none(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _f3(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def parse_mean_of(spec: str, option: str = "--mean-of", at_least: int = 2) -> tuple[str, list[str]]:
    """'NAME=A,B,...' -> (NAME, [A, B, ...]); at least `at_least` checkpoints (a --checkpoint row of a
    cross-validation lists one run per fold, so `--folds 4` gives it one)."""
    name, sep, rest = spec.partition("=")
    members = [m for m in rest.split(",") if m]
    if not sep or not name or len(members) < at_least:
        want = "NAME=CHECKPOINT[,...]" if at_least == 1 else "NAME=CHECKPOINT,CHECKPOINT[,...] (two or more)"
        raise SystemExit(f"error: {option} {spec!r}: expected {want}")
    return name, members


def paired_difference(obs_a: float, boot_a: np.ndarray, obs_b: float, boot_b: np.ndarray) -> dict:
    """A minus B: the observed difference, the 95% percentile interval of the per-resample differences, and
    the share of resamples where A is not above B (ties count as not above)."""
    d = boot_a - boot_b
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"diff": obs_a - obs_b, "ci95": [float(lo), float(hi)], "share_not_above": float((d <= 0).mean())}


def parse_compare(spec: str, known: list[str]) -> tuple[str, str]:
    """'A:B' -> (A, B), both names of rows (checkpoint paths or NAMEs). Paths may hold ':' themselves, so
    every split at a ':' is tried and exactly one must name two known rows."""
    splits = [(spec[:i], spec[i + 1:]) for i, c in enumerate(spec) if c == ":"]
    hits = [(a, b) for a, b in splits if a in known and b in known and a != b]
    if len(hits) != 1:
        raise SystemExit(f"error: --compare {spec!r}: expected A:B, two different rows among: " + ", ".join(known))
    return hits[0]


def parse_folds(spec: str | None, k: int) -> list[int]:
    """'0,2' -> [0, 2]: the folds of a k-fold cross-validation to pool (all k when spec is None)."""
    if spec is None:
        return list(range(k))
    try:
        folds = [int(f) for f in spec.split(",")]
    except ValueError:
        raise SystemExit(f"error: --folds {spec!r}: expected fold numbers separated by commas, e.g. 0,1") from None
    if not folds or len(set(folds)) < len(folds) or not all(0 <= f < k for f in folds):
        raise SystemExit(f"error: --folds {spec!r}: distinct folds in 0..{k - 1} expected")
    return folds


def fold_mismatch(run_args: dict, fold: int, folds: int, split_seed: int) -> str | None:
    """Why a checkpoint is not fold `fold` of a `folds`-fold cross-validation with `split_seed`, or None."""
    got = (run_args.get("cv_fold", 0), run_args.get("cv_folds", 0), run_args.get("split_seed", run_args.get("seed", 0)))
    if got != (fold, folds, split_seed):
        return (f"trained as fold {got[0]} of {got[1]} (split seed {got[2]}), "
                f"expected fold {fold} of {folds} (split seed {split_seed})")
    return None


def plot_differences(rows: list[dict], diffs: list[np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.5))
    ax.boxplot(diffs[::-1], orientation="horizontal", whis=(2.5, 97.5), showfliers=False)
    ax.set_yticks(range(1, len(rows) + 1), [_short(r["checkpoint"]) for r in rows[::-1]], fontsize=7)
    ax.axvline(0, color="red", lw=1)
    ax.set_xlabel("macro-F1 minus the TF-IDF baseline's, per resample\n(box: quartiles, whiskers: 95% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _short(name: str, n: int = 48) -> str:
    return name if len(name) <= n else "..." + name[-n + 3:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sotab-cta")
    ap.add_argument("--data", default=None, help="The task's data (as `aegir train --data`); default: ../shared/data's copy.")
    ap.add_argument("--augment", type=int, default=0, help="Synthetic tables added to the baseline's training data.")
    ap.add_argument("--checkpoint", action="append", default=[], help="Classifier to compare (repeatable).")
    ap.add_argument("--mean-of", action="append", default=[], metavar="NAME=A,B,...",
                    help="Also compare the mean macro-F1 of these checkpoints (e.g. one recipe's seeds); repeatable.")
    ap.add_argument("--ensemble", action="append", default=[], metavar="NAME=A,B,...",
                    help="Also compare these checkpoints as one ensemble (mean probability); repeatable.")
    ap.add_argument("--compare", action="append", default=[], metavar="A:B",
                    help="Paired difference A minus B between two rows (checkpoints or NAMEs); repeatable.")
    add_class_weight_option(ap)
    ap.add_argument("--split-seed", type=int, default=0, help="The task's by-table hold-out seed (aegir train --split-seed).")
    ap.add_argument("--cv-folds", type=int, default=0,
                    help="Pool a k-fold cross-validation: every --checkpoint is NAME=FOLD0,FOLD1,... (see above).")
    ap.add_argument("--folds", default=None, metavar="I,J,...",
                    help="With --cv-folds: pool only these folds (default: all); checkpoints list one run per named fold.")
    ap.add_argument("--baseline-main-column", action="store_true",
                    help="CPA: the baseline also reads each pair's main column (a second TF-IDF block), as Aegir does.")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--rare-below", type=int, default=5,
                    help="Also report macro-F1 over labels with at least / fewer than this many validation columns.")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", default="docs/results/cta_bootstrap")
    args = ap.parse_args()
    K = args.cv_folds
    if args.folds is not None and not K:
        raise SystemExit("error: --folds needs --cv-folds")
    fold_ids = parse_folds(args.folds, K) if K else [0]
    groups = [parse_mean_of(g) for g in args.mean_of]
    ensembles = [parse_mean_of(e, "--ensemble") for e in args.ensemble]
    if len({name for name, _ in groups + ensembles}) < len(groups + ensembles):
        raise SystemExit("error: every --mean-of and --ensemble needs its own NAME")
    # runs[row] = the checkpoint(s) scoring each fold's validation columns, in fold order (one fold without CV).
    runs: dict[str, list[str]] = {}
    if K:
        for spec in args.checkpoint:
            name, members = parse_mean_of(spec, "--checkpoint", at_least=1)
            if len(members) != len(fold_ids):
                raise SystemExit(f"error: --checkpoint {name}: {len(members)} checkpoints for {len(fold_ids)} folds")
            runs[name] = members
        for flag, named in (("--mean-of", groups), ("--ensemble", ensembles)):
            for name, members in named:
                if unknown := [m for m in members if m not in runs]:
                    raise SystemExit(f"error: {flag} {name}: with --cv-folds its members are --checkpoint NAMEs; "
                                     f"unknown: {', '.join(unknown)}")
        args.checkpoint = list(runs)
    else:
        for _, members in groups:  # members are scored (and listed) one by one too
            args.checkpoint += [m for m in members if m not in args.checkpoint]
        runs = {ck: [ck] for ck in args.checkpoint}
    if not args.checkpoint and not ensembles:
        raise SystemExit("error: give at least one --checkpoint, --mean-of or --ensemble")
    row_names = args.checkpoint + [name for name, _ in groups + ensembles]  # the table's rows, in order
    compares = [parse_compare(c, row_names) for c in args.compare]
    torch.set_num_threads(args.threads)
    folds = [resolve_task(args.task, args.data, add_synthetic=args.augment, split_seed=args.split_seed, cv=(i, K) if K else None)
             for i in fold_ids]
    bw = class_weight_arg(args.baseline_class_weight)
    # Every fold's validation columns, in fold order, then column order: the pooled set the bootstrap resamples.
    gold_names = [t.labels[0] for td in folds for t in td.valid.targets]
    systems = {BASELINE: [p for td in folds for p in tfidf_logreg(td.train, td.valid, class_weight=bw,
                                                                    main_column=args.baseline_main_column).predictions]}

    # Each checkpoint file is predicted once per fold (views averaged) and kept: an ensemble is then the mean
    # probability of its members' kept predictions (`combine_members`, what `aegir eval` with several
    # checkpoints computes), so scoring many ensembles of the same runs costs no further forward passes.
    raw: dict[tuple[str, int], Predictions] = {}  # (checkpoint file, fold position) -> its predictions there

    def predict_file(ck: str, k: int, lc) -> Predictions:
        if (ck, k) not in raw:
            run = eval_dataset(lc, folds[k].valid, views=args.views)
            assert [p.gold[0] for p in run.predictions] == [t.labels[0] for t in folds[k].valid.targets]  # same columns, same order
            raw[(ck, k)] = run.raw
        return raw[(ck, k)]

    def labels_of(files: list[str], k: int, name: str, members=None) -> list[str]:
        """The top label per column of fold position k for these files used together (one file: that
        checkpoint alone), from the members' kept predictions."""
        try:
            members = load_classifiers(members or files)  # `aegir eval`'s checks: one label vocabulary, one kind of task
        except CheckpointError as e:
            raise SystemExit(f"error: --ensemble {name}: {e}") from None
        first = members[0]
        both = combine_members([predict_file(f, k, lc) for f, lc in zip(files, members)], first.multi_label)
        return [p[0] for p in predicted_label_sets(both, first.vocab.labels, first.multi_label)]

    for name, members in runs.items():
        pooled = []
        for k, (i, ck) in enumerate(zip(fold_ids, members)):
            lc = load_classifier(ck)
            if K and (why := fold_mismatch(lc.meta.get("run_args", {}), i, K, args.split_seed)):
                raise SystemExit(f"error: --checkpoint {name}: {ck} {why}")
            pooled += labels_of([ck], k, name, [lc])
        systems[name] = pooled
    for name, members in ensembles:
        # With --cv-folds each fold is scored by its own runs of the members (checkpoint NAMEs), used together.
        fold_files = [[runs[m][k] for m in members] for k in range(len(fold_ids))] if K else [members]
        systems[name] = [p for k, files in enumerate(fold_files) for p in labels_of(files, k, name)]
    names = sorted(set(gold_names).union(*systems.values()))
    ids = {n: i for i, n in enumerate(names)}
    gold = np.array([ids[g] for g in gold_names])
    rng = np.random.default_rng(args.seed)
    n = len(gold)
    weights = resample_weights(n, args.samples, rng)
    scores = {}
    for name, pred in systems.items():
        p = np.array([ids[x] for x in pred])
        full = macro_f1_resampled(gold, p, len(names), np.ones((1, n)))[0]
        ref = classification_report(gold_names, pred).macro_f1
        assert abs(full - ref) < 1e-9, (name, full, ref)  # the fast form is the project's metric
        scores[name] = (ref, macro_f1_resampled(gold, p, len(names), weights))
    b_obs, b_boot = scores[BASELINE]
    # Per fold (--cv-folds): macro-F1 on each fold's own validation columns, which sit in fold order.
    ends = np.cumsum([len(td.valid.targets) for td in folds])
    spans = list(zip([0, *ends[:-1]], ends))
    per_fold = {name: [classification_report(gold_names[a:b], pred[a:b]).macro_f1 for a, b in spans]
                for name, pred in systems.items()} if K else {}
    for name, members in groups:
        scores[name] = (float(np.mean([scores[m][0] for m in members])), np.mean([scores[m][1] for m in members], 0))
        if K:
            per_fold[name] = list(np.mean([per_fold[m] for m in members], 0))
    rows, diffs = [], []
    for ck in row_names:
        obs, boot = scores[ck]
        parts = [support_split(gold_names, systems[m], args.rare_below) for m in ([ck] if ck in systems else dict(groups)[ck])]
        split = (_mean_or_none([p[0] for p in parts]), _mean_or_none([p[1] for p in parts]))
        rows.append({"checkpoint": ck, "macro_f1": obs, "baseline_macro_f1": b_obs,
                     **paired_difference(obs, boot, b_obs, b_boot),
                     "macro_f1_frequent": split[0], "macro_f1_rare": split[1],
                     **({"per_fold": per_fold[ck]} if K else {})})
        diffs.append(boot - b_boot)
    pairs = []
    for a, b in compares:  # same resamples as every row: the difference is paired column by column
        pairs.append({"a": a, "b": b, "macro_f1_a": scores[a][0], "macro_f1_b": scores[b][0],
                      **paired_difference(*scores[a], *scores[b])})
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    b_big, b_small, n_big, n_small = support_split(gold_names, systems[BASELINE], args.rare_below)
    meta = {"rare_below": args.rare_below, "baseline_frequent_rare": [b_big, b_small], "labels_frequent_rare": [n_big, n_small],
            **({"baseline_per_fold": per_fold[BASELINE]} if K else {}),
            "task": args.task, **({"data": args.data} if args.data else {}), "split_seed": args.split_seed, **({"cv_folds": K, "folds": fold_ids, "cv": {n: m for n, m in runs.items()}} if K else {}),
            "augment": args.augment, "baseline_class_weight": args.baseline_class_weight,
            "baseline_main_column": args.baseline_main_column, "views": args.views, "samples": args.samples,
            "seed": args.seed, "valid_columns": n, "mean_of": {name: members for name, members in groups},
            "ensemble": {name: members for name, members in ensembles}}
    plot_differences(rows, diffs, result_file(out, ".png"))
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "rows": rows, "compare": pairs}, indent=1))
    listed = ", ".join(map(str, fold_ids))
    where = (f"{K}-fold cross-validation, every column scored once" if len(fold_ids) == K
             else f"folds {listed} of a {K}-fold cross-validation") if K else "validation"
    # Row names: "fold 4" for one fold, "folds 0-2" for consecutive folds, else the list.
    span = (f"fold {listed}" if len(fold_ids) == 1
            else f"folds {fold_ids[0]}-{fold_ids[-1]}" if fold_ids == list(range(fold_ids[0], fold_ids[-1] + 1))
            else f"folds {listed}")
    lines = [f"# Paired bootstrap against the TF-IDF baseline ({args.task} {where}, {n} columns)", "",
             "Written by `benchmarks/cta_bootstrap.py`: the validation columns resampled with replacement "
             f"{args.samples} times, both systems scored on every resample; {args.views} row views per checkpoint; "
             f"baseline trained on the same data (+{args.augment} synthetic tables"
             f"{', balanced class weights' if bw else ''}{', reading the main column too' if args.baseline_main_column else ''}). Covers the sampling noise of "
             "the validation set, not the seed-to-seed variance of training. Validation numbers, not test numbers.",
             "", f"Frequent / rare: macro-F1 over the {n_big} labels with at least {args.rare_below} validation columns / "
             f"the {n_small} with fewer (the baseline: {_f3(b_big)} / {_f3(b_small)}).",
             "", "| checkpoint | macro-F1 | baseline | difference | 95% interval | resamples not above | frequent / rare |",
             "|---|---|---|---|---|---|---|"]
    kind = {name: "mean of" for name, _ in groups} | {name: "ensemble" for name, _ in ensembles}

    def row_name(ck: str) -> str:
        if K and ck in runs:
            return f"{ck} ({span})"
        return f"`{ck}`" if ck in args.checkpoint else f"**{kind[ck]} {ck}**"

    lines += [f"| {row_name(r['checkpoint'])} | {r['macro_f1']:.3f} | {r['baseline_macro_f1']:.3f} | {r['diff']:+.3f} | "
              f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | {r['share_not_above']:.1%} | "
              f"{_f3(r['macro_f1_frequent'])} / {_f3(r['macro_f1_rare'])} |" for r in rows]
    if pairs:
        lines += ["", "Paired differences between rows (same resamples):", "",
                  "| A | B | macro-F1 A / B | A minus B | 95% interval | resamples where A is not above B |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {row_name(r['a'])} | {row_name(r['b'])} | {r['macro_f1_a']:.3f} / {r['macro_f1_b']:.3f} | "
                  f"{r['diff']:+.3f} | [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | {r['share_not_above']:.1%} |"
                  for r in pairs]
    if K:
        lines += ["", "Per fold (macro-F1 on each fold's own validation columns; the pooled figure above is not their mean):", "",
                  "| system | " + " | ".join(f"fold {i}" for i in fold_ids) + " |", "|---|" + "---|" * len(fold_ids),
                  "| baseline | " + " | ".join(f"{x:.3f}" for x in per_fold[BASELINE]) + " |"]
        lines += [f"| {row_name(r['checkpoint'])} | " + " | ".join(f"{x:.3f}" for x in r["per_fold"]) + " |" for r in rows]
    for name, members in groups:
        lines += ["", f"{name}: the mean over " + ", ".join(f"`{m}`" for m in members) + " on every resample."]
    for name, members in ensembles:
        lines += ["", f"{name}: one classifier, the mean probability of " + ", ".join(f"`{m}`" for m in members) + "."]
    for name, members in runs.items() if K else ():
        lines += ["", f"{name}: " + ", ".join(f"fold {i} `{m}`" for i, m in zip(fold_ids, members)) + "."]
    lines += ["", f"![differences]({result_file(out, '.png').name})"]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
