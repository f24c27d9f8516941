"""Text -> table metrics: the one implementation used by evaluation, rewards and benchmarks.

Cell F1 follows Wu et al. (ACL 2022; docs/benchmarks.md):
1. every non-empty body cell is a tuple: (column header, value) for single-row / key-value tables,
   (row header, column header, value) for tables with a row-header column;
2. tuple similarity is the *product* of component similarities (exact: equality; chrF: sacrebleu
   sentence chrF / 100), so a wrong header zeroes the cell under exact match;
3. precision = mean over predicted tuples of the best similarity to a gold tuple, recall symmetric;
4. P/R/F1 per table, then macro-averaged over tables; a missing/empty prediction scores 0 and tables
   with empty gold are skipped.

Deviations, all documented in docs/t2t.md:
- Multi-row gold: predicted rows are first aligned one-to-one with gold rows (Hungarian, maximising the
  summed tuple similarity) and each tuple is matched only inside its aligned row; unaligned predicted
  rows score 0. Wu's plain max-matching would give duplicated rows full credit.
- Headers are compared in their canonical lower_snake_case form (the NDJSON format fixes field names);
  `normalize=True` additionally casefolds and collapses whitespace in every component (E2E's gold values
  were `str.capitalize()`d).
- Column headers counted for header F1 are those with at least one non-empty cell.

Pure Python + scipy + sacrebleu (no torch): importable by VERL reward workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from aegir.t2t.gold import GoldTable, as_table_list
from aegir.t2t.sanity import quick_table_sanity, table_sanity  # noqa: F401  (re-exported: one entry point)
from aegir.t2t.schema import Schema, canonical_gold, normalize_field_name, rows_to_tables

Sim = Callable[[str, str], float]


# --- similarities ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _chrf_metric():
    from sacrebleu.metrics import CHRF

    return CHRF()  # char_order=6, word_order=0, beta=2: the defaults of sacrebleu.sentence_chrf


@lru_cache(maxsize=262144)
def chrf_sim(pred: str, gold: str) -> float:
    """sacrebleu sentence chrF / 100 (identical strings short-cut to 1.0, an empty side to 0.0)."""
    if pred == gold:
        return 1.0
    if not pred or not gold:
        return 0.0
    return float(_chrf_metric().sentence_score(pred, [gold]).score) / 100.0


def exact_sim(pred: str, gold: str) -> float:
    return 1.0 if pred == gold else 0.0


def get_sim(sim: str) -> Sim:
    if sim == "exact":
        return exact_sim
    if sim == "chrf":
        return chrf_sim
    raise ValueError(f"similarity must be 'exact' or 'chrf', got {sim!r}")


def normalize_text(s: str) -> str:
    """casefold + collapse whitespace (the "normalised" variant)."""
    return " ".join(s.casefold().split())


def tuple_sim(a: tuple[str, ...], b: tuple[str, ...], sim: Sim) -> float:
    if len(a) != len(b):
        return 0.0
    out = 1.0
    for x, y in zip(a, b):
        out *= sim(x, y)
        if out == 0.0:
            break
    return out


def _max_match(pred: Sequence[Any], gold: Sequence[Any], sim: Callable[[Any, Any], float]) -> tuple[float, float]:
    """Wu et al.'s soft max-matching: (precision, recall)."""
    if not pred or not gold:
        return 0.0, 0.0
    # An exact hit is the best any similarity can give (all are <= 1 and 1 on equality), so only items
    # without one need the full row of similarities: gold vs gold costs O(n), not O(n^2) chrF calls.
    g_set, p_set = set(gold), set(pred)
    p_best = [1.0 if p in g_set else max(sim(p, g) for g in gold) for p in pred]
    g_best = [1.0 if g in p_set else max(sim(p, g) for p in pred) for g in gold]
    return sum(p_best) / len(p_best), sum(g_best) / len(g_best)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


# --- schema F1 -------------------------------------------------------------------------------
@dataclass
class PRF:
    precision: float
    recall: float
    f1: float


def _name_key(n: str) -> str:
    return ".".join(normalize_field_name(p) for p in str(n).split("."))


def schema_f1(pred_names: Sequence[str], gold_names: Sequence[str], soft: bool = False) -> PRF:
    """Field-name F1 after lower_snake_case normalisation, over name *sets*.

    exact: set precision/recall. soft: Wu-style max-matching with chrF between names (underscores read
    as spaces), which credits "family_friendly" vs "kid_friendly" partially."""
    p_set = sorted({_name_key(n) for n in pred_names})
    g_set = sorted({_name_key(n) for n in gold_names})
    if not p_set and not g_set:
        return PRF(1.0, 1.0, 1.0)
    if not p_set or not g_set:
        return PRF(0.0, 0.0, 0.0)
    if soft:
        p, r = _max_match(p_set, g_set, lambda a, b: chrf_sim(a.replace("_", " "), b.replace("_", " ")))
    else:
        inter = len(set(p_set) & set(g_set))
        p, r = inter / len(p_set), inter / len(g_set)
    return PRF(p, r, _f1(p, r))


# --- cell F1 ---------------------------------------------------------------------------------
@dataclass
class TableScore:
    doc: int  # index of the document in the batch
    name: str  # gold table name
    precision: float
    recall: float
    f1: float
    row_header_f1: float | None = None
    col_header_f1: float | None = None


@dataclass
class CellF1:
    precision: float
    recall: float
    f1: float
    n_tables: int  # scored tables (gold non-empty)
    n_skipped: int  # tables with empty gold
    row_header_f1: float | None = None  # macro over tables that have row headers
    col_header_f1: float | None = None  # macro over tables that have column headers
    by_name: dict[str, float] = field(default_factory=dict)  # macro F1 per gold table name
    per_table: list[TableScore] = field(default_factory=list)

    def to_dict(self, per_table: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "per_table"}
        if per_table:
            d["per_table"] = [t.__dict__ for t in self.per_table]
        return d


def _rows_mode(gold: GoldTable) -> bool:
    return gold.row_header or len(gold.rows) > 1


def _row_tuples(t: GoldTable, norm: Callable[[str], str]) -> list[list[tuple[str, ...]]]:
    """One de-duplicated tuple list per row (empty rows dropped)."""
    out = []
    for r in t.rows:
        if t.row_header:
            rh = norm(r[0])
            tup = {(rh, norm(h), norm(v)) for h, v in zip(t.header[1:], r[1:]) if v != ""}
        else:
            tup = {(norm(h), norm(v)) for h, v in zip(t.header, r) if v != ""}
        if tup:
            out.append(sorted(tup))
    return out


def _flat_tuples(t: GoldTable, norm: Callable[[str], str]) -> list[tuple[str, ...]]:
    return sorted({tup for row in _row_tuples(t, norm) for tup in row})


def _score_rows(pred: list[list[tuple[str, ...]]], gold: list[list[tuple[str, ...]]], sim: Sim) -> tuple[float, float]:
    """Hungarian row alignment, then max-matching inside aligned rows. Returns (precision, recall)."""
    n_pt = sum(len(r) for r in pred)
    n_gt = sum(len(r) for r in gold)
    if n_pt == 0 or n_gt == 0:
        return 0.0, 0.0
    # best[i][j] = (per-pred-tuple maxima, per-gold-tuple maxima) for pred row i vs gold row j
    p_best = np.zeros((len(pred), len(gold)), dtype=np.float64)  # (n_pred_rows, n_gold_rows) summed maxima
    g_best = np.zeros((len(pred), len(gold)), dtype=np.float64)  # (n_pred_rows, n_gold_rows)
    for i, pr in enumerate(pred):
        for j, gr in enumerate(gold):
            m = np.array([[tuple_sim(a, b, sim) for b in gr] for a in pr], dtype=np.float64)  # (|pr|, |gr|)
            p_best[i, j] = m.max(axis=1).sum()
            g_best[i, j] = m.max(axis=0).sum()
    ri, ci = linear_sum_assignment(p_best + g_best, maximize=True)
    p_sum = float(p_best[ri, ci].sum())
    g_sum = float(g_best[ri, ci].sum())
    return p_sum / n_pt, g_sum / n_gt


def _value_headers(t: GoldTable, norm: Callable[[str], str]) -> list[str]:
    """Column headers (the row-header column excluded) with at least one non-empty body cell."""
    cols = range(1, len(t.header)) if t.row_header else range(len(t.header))
    return sorted({norm(t.header[j]) for j in cols if any(r[j] != "" for r in t.rows)})


def _header_sets(pred: GoldTable | None, gold: GoldTable, norm: Callable[[str], str]
                 ) -> tuple[list[str], list[str] | None, list[str], list[str] | None]:
    """(pred row headers, gold row headers, pred column headers, gold column headers), each read in the
    role the *gold* gives it; a gold side of None means the gold has no such headers (not scored).
    Key/value gold: its keys are row headers (Wu et al.'s E2E row-header F1) and there are no column headers."""
    if gold.kv:
        return (_value_headers(pred, norm) if pred is not None else []), _value_headers(gold, norm), [], None
    p_ch = _value_headers(pred, norm) if pred is not None else []
    if gold.row_header:
        g_rh = sorted({norm(r[0]) for r in gold.rows if r[0] != ""})
        p_rh = sorted({norm(r[0]) for r in pred.rows if r[0] != ""}) if pred is not None and pred.row_header else []
        return p_rh, g_rh, p_ch, _value_headers(gold, norm)
    return [], None, p_ch, _value_headers(gold, norm)


def score_table(pred: GoldTable | None, gold: GoldTable, sim: str = "exact", normalize: bool = False
                ) -> tuple[float, float, float, float | None, float | None] | None:
    """(P, R, F1, row-header F1, column-header F1) for one table pair; None when the gold is empty."""
    s = get_sim(sim)
    norm = normalize_text if normalize else (lambda x: x)
    if _rows_mode(gold):
        g_rows = _row_tuples(gold, norm)
        if not g_rows:
            return None
        p_rows = _row_tuples(pred, norm) if pred is not None else []
        if pred is not None and pred.row_header != gold.row_header:
            # Tuple arity must match the gold's. A prediction without the row-header column gets empty row
            # headers (so, as in Wu et al., its cells score 0 against row-headed gold); a row-headed
            # prediction for gold without row headers drops its row-header component.
            p_rows = [[(("",) + t) if len(t) == 2 else t[1:] for t in r] for r in p_rows]
        p, r = _score_rows(p_rows, g_rows, s)
    else:
        g_t = _flat_tuples(gold, norm)
        if not g_t:
            return None
        p_t = _flat_tuples(pred, norm) if pred is not None else []
        p_t = [t[1:] if len(t) == 3 else t for t in p_t]
        p, r = _max_match(p_t, g_t, lambda a, b: tuple_sim(a, b, s))
    p_rh, g_rh, p_ch, g_ch = _header_sets(pred, gold, norm)
    rh = _f1(*_max_match(p_rh, g_rh, s)) if g_rh else None
    ch = _f1(*_max_match(p_ch, g_ch, s)) if g_ch else None
    return p, r, _f1(p, r), rh, ch


def _pair_tables(pred: list[GoldTable], gold: list[GoldTable]) -> list[GoldTable | None]:
    """For each gold table, the predicted table with the same name (canonical), else None; a document
    with one gold table takes the sole/first predicted table whatever its name."""
    out: list[GoldTable | None] = []
    by_name = {normalize_field_name(t.name) if t.name else "": t for t in reversed(pred)}
    for g in gold:
        key = normalize_field_name(g.name) if g.name else ""
        hit = by_name.get(key)
        if hit is None and len(gold) == 1 and pred:
            hit = pred[0]
        out.append(hit)
    return out


def _as_docs(x: Any) -> list[list[GoldTable]]:
    if isinstance(x, GoldTable):
        return [[x]]
    return [as_table_list(d) for d in x]


def cell_f1(pred_tables: Any, gold_tables: Any, sim: str = "exact", normalize: bool = False) -> CellF1:
    """Cell F1 over a batch of documents.

    pred_tables / gold_tables: one entry per document, each a GoldTable, a list of GoldTables (Rotowire:
    Team and Player) or None (no prediction). A bare GoldTable is one document. Headers must already be
    comparable (use `canonical_gold` / `rows_to_tables`)."""
    preds, golds = _as_docs(pred_tables), _as_docs(gold_tables)
    if len(preds) != len(golds):
        raise ValueError(f"cell_f1: {len(preds)} predicted documents but {len(golds)} gold documents")
    scores: list[TableScore] = []
    skipped = 0
    for d, (pt, gt) in enumerate(zip(preds, golds)):
        for p, g in zip(_pair_tables(pt, gt), gt):
            res = score_table(p, g, sim=sim, normalize=normalize)
            if res is None:
                skipped += 1
                continue
            scores.append(TableScore(d, g.name, *res))
    if not scores:
        return CellF1(0.0, 0.0, 0.0, 0, skipped)
    by_name: dict[str, list[float]] = {}
    for s in scores:
        by_name.setdefault(s.name, []).append(s.f1)
    rh = [s.row_header_f1 for s in scores if s.row_header_f1 is not None]
    ch = [s.col_header_f1 for s in scores if s.col_header_f1 is not None]
    return CellF1(
        precision=float(np.mean([s.precision for s in scores])),
        recall=float(np.mean([s.recall for s in scores])),
        f1=float(np.mean([s.f1 for s in scores])),
        n_tables=len(scores),
        n_skipped=skipped,
        row_header_f1=float(np.mean(rh)) if rh else None,
        col_header_f1=float(np.mean(ch)) if ch else None,
        by_name={k: float(np.mean(v)) for k, v in by_name.items()},
        per_table=scores,
    )


# --- end to end ------------------------------------------------------------------------------
def _name_sim(a: str, b: str) -> float:
    return chrf_sim(a.replace("_", " "), b.replace("_", " "))


def align_headers(pred_header: Sequence[str], gold_header: Sequence[str], min_sim: float = 0.5) -> dict[str, str]:
    """One-to-one pred -> gold header mapping maximising name chrF; pairs below `min_sim` stay unaligned."""
    if not pred_header or not gold_header:
        return {}
    m = np.array([[_name_sim(p, g) for g in gold_header] for p in pred_header], dtype=np.float64)  # (P, G)
    ri, ci = linear_sum_assignment(m, maximize=True)
    return {pred_header[i]: gold_header[j] for i, j in zip(ri, ci) if m[i, j] >= min_sim}


def _rename(t: GoldTable, mapping: dict[str, str], gold: GoldTable) -> GoldTable:
    header = [mapping.get(h, h) for h in t.header]
    # A renamed header may collide with an unaligned one; keep the unaligned one distinct.
    seen: set[str] = set()
    for k, h in enumerate(header):
        if h in seen:
            header[k] = f"{h}\u0000{k}"
        seen.add(header[k])
    rows = [list(r) for r in t.rows]
    row_header = t.row_header
    if gold.row_header and not t.row_header and gold.header[0] in header:
        # The aligned row-key column moves first so the prediction forms 3-tuples like the gold.
        k = header.index(gold.header[0])
        header = [header[k]] + header[:k] + header[k + 1:]
        rows = [[r[k]] + r[:k] + r[k + 1:] for r in rows]
        row_header = True
    return GoldTable(name=gold.name, header=header, rows=rows, kv=t.kv and len(rows) == 1, row_header=row_header)


@dataclass
class EndToEndScore:
    schema: PRF  # soft field-name F1 of pi_1's schema vs the gold headers
    cell: CellF1  # cell F1 after soft header alignment
    alignments: list[dict[str, str]]  # per document: predicted field -> gold field


def end_to_end_score(pred_schemas: Sequence[Schema | None], pred_rows: Sequence[Sequence[dict[str, Any]] | None],
                     gold_tables: Sequence[Any], sim: str = "chrf", normalize: bool = True,
                     min_header_sim: float = 0.5) -> EndToEndScore:
    """pi_1's schema -> pi_2's rows vs the gold, with an invented schema allowed: predicted tables are
    matched to gold tables and predicted fields to gold headers one-to-one by name similarity (chrF,
    Hungarian), then cells are scored as in `cell_f1`. One entry per document in each sequence."""
    if not (len(pred_schemas) == len(pred_rows) == len(gold_tables)):
        raise ValueError("end_to_end_score: pred_schemas, pred_rows and gold_tables differ in length")
    preds_out: list[list[GoldTable]] = []
    golds_out: list[list[GoldTable]] = []
    aligns: list[dict[str, str]] = []
    s_scores: list[PRF] = []
    for schema, rows, gold in zip(pred_schemas, pred_rows, gold_tables):
        g_tabs = canonical_gold(as_table_list(gold) if not isinstance(gold, GoldTable) else [gold])
        golds_out.append(g_tabs)
        g_names = [h for t in g_tabs for h in t.header]
        p_names = [f.name for g in schema.groups for f in g.fields] if schema is not None else []
        s_scores.append(schema_f1(p_names, g_names, soft=True))
        if schema is None or rows is None:
            preds_out.append([])
            aligns.append({})
            continue
        p_tabs = rows_to_tables(list(rows), schema)
        # Table pairing: Hungarian on name similarity plus header overlap.
        m = np.array([[0.5 * _name_sim(p.name or "t", g.name or "t")
                       + 0.5 * schema_f1(p.header, g.header, soft=True).f1 for g in g_tabs] for p in p_tabs],
                     dtype=np.float64)  # (n_pred_tables, n_gold_tables)
        ri, ci = linear_sum_assignment(m, maximize=True) if m.size else ([], [])
        mapped: list[GoldTable] = []
        mapping_all: dict[str, str] = {}
        for i, j in zip(ri, ci):
            mp = align_headers(p_tabs[i].header, g_tabs[j].header, min_header_sim)
            mapping_all.update({(f"{p_tabs[i].name}." if p_tabs[i].name else "") + k: v for k, v in mp.items()})
            mapped.append(_rename(p_tabs[i], mp, g_tabs[j]))
        preds_out.append(mapped)
        aligns.append(mapping_all)
    cell = cell_f1(preds_out, golds_out, sim=sim, normalize=normalize)
    sp = PRF(*(float(np.mean([getattr(s, k) for s in s_scores])) if s_scores else 0.0
               for k in ("precision", "recall", "f1")))
    return EndToEndScore(schema=sp, cell=cell, alignments=aligns)
