"""Table overlap between the shared datasets' splits -> docs/results/data_overlap.md (+ .json).

Which labelled data can start or extend a fine-tune without touching an evaluation split's tables:
- SOTAB V2: CTA training tables (`CTA/Train`, `CTA/Train50`) that are also `CPA/Train` tables (the CPA
  cross-validation's evaluation tables), matched by `aegir.encoding.corpus.table_key` (`X_CTA` = `X_CPA`);
- GitTables: the DBpedia-labelled folds 0-3 against the Schema.org folds (train 0-2, evaluate 3): tables
  shared with the evaluation fold, extra DBpedia-labelled columns in the Schema.org training tables, and how
  often the two label names agree on a column both label.

    python benchmarks/data_overlap.py [--result docs/results/data_overlap]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from aegir.encoding.corpus import table_key
from aegir.paths import shared_data_dir


def sotab_overlap(root: Path) -> dict:
    def keys(*dirs: str) -> tuple[int, set[str]]:
        files = [f for d in dirs for f in (root / d).glob("*.json.gz")]
        return len(files), {table_key(f) for f in files}

    n_cta_files, cta = keys("CTA/Train", "CTA/Train50")
    _, cpa = keys("CPA/Train")
    cta_files_shared = sum(table_key(f) in cpa for d in ("CTA/Train", "CTA/Train50") for f in (root / d).glob("*.json.gz"))
    return {"cta_train_files": n_cta_files, "cta_train_tables": len(cta), "cpa_train_tables": len(cpa),
            "shared_tables": len(cta & cpa), "cta_files_of_shared_tables": cta_files_shared}


def gittables_overlap(root: Path) -> dict:
    db = pd.concat([pd.read_csv(root / "gt-semtab22-dbpedia-all" / f"db_semi1_cv_{i}.csv") for i in range(4)])
    sp = {i: pd.read_csv(root / "gt-semtab22-schema-property-all" / f"sp_semi1_cv_{i}.csv") for i in range(4)}
    sp_train = pd.concat([sp[i] for i in range(3)])
    eval_tables, train_tables = set(sp[3].table_id), set(sp_train.table_id)
    sp_labels = {c.removeprefix("schema:") for c in sp_train["class"].dropna()}
    db_lab = db[db["class"].notna() & db.table_id.isin(train_tables)]
    m = db_lab.merge(sp_train[["table_id", "col_idx", "class"]], on=["table_id", "col_idx"], how="left",
                     suffixes=("_db", "_sp"))
    extra, both = m[m.class_sp.isna()], m[m.class_sp.notna()]
    return {"db_tables": int(db.table_id.nunique()), "eval_fold_tables": len(eval_tables),
            "db_tables_in_eval_fold": len(set(db.table_id) & eval_tables),
            "db_labelled_columns_in_train_tables": len(db_lab),
            "extra_columns_without_schema_label": len(extra),
            "extra_columns_whose_db_label_names_a_schema_label": int(extra.class_db.isin(sp_labels).sum()),
            "columns_with_both_labels": len(both),
            "name_agreement_where_both": round(float((both.class_sp.str.removeprefix("schema:") == both.class_db).mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--result", default="docs/results/data_overlap")
    args = ap.parse_args()
    data = shared_data_dir()
    if data is None:
        raise SystemExit("data_overlap.py: ../shared/data not found (set AEGIR_SHARED_DATA)")
    res = {"sotab_v2": sotab_overlap(data / "sotab_v2_sample"),
           "gittables": gittables_overlap(data / "gittables_semtab22")}
    s, g = res["sotab_v2"], res["gittables"]
    md = ["# Table overlap between the shared datasets' splits", "",
          "Written by `benchmarks/data_overlap.py`.", "",
          "| dataset | figure | value |", "|---|---|---|"]
    md += [f"| SOTAB V2 | {k.replace('_', ' ')} | {v} |" for k, v in s.items()]
    md += [f"| GitTables | {k.replace('_', ' ')} | {v} |" for k, v in g.items()]
    md += ["", "SOTAB: a classifier trained on the CTA training tables has seen the columns of "
           f"{s['shared_tables']} of the {s['cpa_train_tables']} CPA evaluation tables. GitTables: the DBpedia folds "
           "are not a clean source of extra labels (see docs/results/cta_analysis.md)."]
    out = Path(args.result)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
