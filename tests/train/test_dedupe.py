"""`dedupe_targets`: one copy of a table shared by two splits, but every column of a table."""

from aegir.tables.table import LabeledColumn, LabeledDataset, Table
from aegir.train.tasks import dedupe_targets


def test_a_shared_table_counts_once_and_twin_columns_of_one_table_twice():
    t = Table(columns=[["Widget"], ["INH"], ["x"], ["INH"]], header=None, meta={"name": "Product_a.json.gz"})
    copy = Table(columns=[["Widget"], ["INH"], ["INH"]], header=None, meta={"name": "Product_a.json.gz"})  # renumbered
    ds = LabeledDataset([t, copy], [
        LabeledColumn(0, 1, ("unitCode",), main_column=0), LabeledColumn(0, 3, ("unitCode",), main_column=0),
        LabeledColumn(1, 1, ("unitCode",), main_column=0), LabeledColumn(1, 2, ("unitCode",), main_column=0),
    ], task="cpa")
    kept = dedupe_targets(ds).targets
    assert [(c.table_index, c.column) for c in kept] == [(0, 1), (0, 3)]  # the twins stay; the copy's two go
    other_label = LabeledDataset([t], [LabeledColumn(0, 1, ("unitCode",)), LabeledColumn(0, 1, ("unitText",))])
    assert len(dedupe_targets(other_label).targets) == 2
