"""The classical CTA baseline: character n-gram TF-IDF + logistic regression (scikit-learn).

Features come from the target column only (header + its cell values), the way a per-column
classifier sees it. Trained on exactly the data Aegir is trained on, so the comparison is fair.
"""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from aegir.tables.table import LabeledDataset


def column_text(ds: LabeledDataset, i: int, max_cells: int = 32) -> str:
    t = ds.targets[i]
    table = ds.tables[t.table_index]
    return " | ".join([table.column_name(t.column)] + table.columns[t.column][:max_cells])


@dataclass
class BaselineResult:
    predictions: list[str]
    gold: list[str]


def tfidf_logreg(train: LabeledDataset, test: LabeledDataset, seed: int = 0,
                 class_weight: str | None = None) -> BaselineResult:
    """class_weight="balanced" weighs each training column by N / (K * n_label): better macro-F1 on
    long-tailed label sets (GitTables), slightly worse on SOTAB's flatter one; cta_quality.py reports both."""
    x_tr = [column_text(train, i) for i in range(len(train.targets))]
    y_tr = [t.label for t in train.targets]
    clf = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True, max_features=200_000),
        LogisticRegression(max_iter=2000, C=10.0, random_state=seed, class_weight=class_weight),
    )
    clf.fit(x_tr, y_tr)
    x_te = [column_text(test, i) for i in range(len(test.targets))]
    return BaselineResult(predictions=list(clf.predict(x_te)), gold=[t.label for t in test.targets])
