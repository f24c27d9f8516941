"""The classical CTA baseline: character n-gram TF-IDF + logistic regression (scikit-learn).

Features come from the target column only (header + its cell values), the way a per-column
classifier sees it. Trained on exactly the data Aegir is trained on, so the comparison is fair.
For CPA, `main_column=True` adds a second TF-IDF block over the pair's main (subject) column, which
Aegir's serialization also reads: the property often depends on what the subject is (a Book's
datePublished against an Event's startDate).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from aegir.tables.table import LabeledDataset


def _text(ds: LabeledDataset, i: int, j: int, max_cells: int) -> str:
    """Column j of target i's table as the baseline reads it: header, then up to max_cells cells."""
    table = ds.tables[ds.targets[i].table_index]
    return " | ".join([table.column_name(j)] + table.columns[j][:max_cells])


def column_text(ds: LabeledDataset, i: int, max_cells: int = 32) -> str:
    return _text(ds, i, ds.targets[i].column, max_cells)


def main_column_text(ds: LabeledDataset, i: int, max_cells: int = 32) -> str:
    """The CPA pair's main column as column_text writes a column; empty without one."""
    j = ds.targets[i].main_column
    return "" if j is None else _text(ds, i, j, max_cells)


@dataclass
class BaselineResult:
    predictions: list[str]
    gold: list[str]


def add_class_weight_option(ap) -> None:
    """`--baseline-class-weight none|balanced` on a benchmark's argparse parser (cta_views, cta_bootstrap)."""
    ap.add_argument("--baseline-class-weight", choices=["none", "balanced"], default="none",
                    help="The baseline's logistic regression class weights (balanced: the stronger bar on GitTables).")


def class_weight_arg(value: str) -> str | None:
    """The option's value as `tfidf_logreg`'s class_weight ("none" -> None)."""
    return None if value == "none" else value


def tfidf_logreg(train: LabeledDataset, test: LabeledDataset, seed: int = 0,
                 class_weight: str | None = None, main_column: bool = False, max_cells: int = 32) -> BaselineResult:
    """class_weight="balanced" weighs each training column by N / (K * n_label): better macro-F1 on
    long-tailed label sets (GitTables), slightly worse on SOTAB's flatter one; cta_quality.py reports both.
    main_column: also read each CPA pair's main column, as a separate TF-IDF block (see the module doc).
    max_cells: cells read per column (32, the bar every result file uses; fewer measures how much the baseline
    owes to reading more of each column than a byte budget lets a serialization hold)."""
    def vectorizer() -> TfidfVectorizer:
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True, max_features=200_000)

    def features(ds: LabeledDataset):
        cols = [column_text(ds, i, max_cells) for i in range(len(ds.targets))]
        if not main_column:
            return cols
        return pd.DataFrame({"column": cols, "main": [main_column_text(ds, i, max_cells) for i in range(len(ds.targets))]})

    if main_column and not any(t.main_column is not None for t in train.targets):
        raise ValueError("main_column=True needs CPA data (targets with a main column)")
    feats = ColumnTransformer([("column", vectorizer(), "column"), ("main", vectorizer(), "main")]) if main_column else vectorizer()
    clf = make_pipeline(feats, LogisticRegression(max_iter=2000, C=10.0, random_state=seed, class_weight=class_weight))
    clf.fit(features(train), [t.label for t in train.targets])
    return BaselineResult(predictions=list(clf.predict(features(test))), gold=[t.label for t in test.targets])
