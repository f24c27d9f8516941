"""Tables: the one data layer shared by column annotation and text-to-table."""

from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError

__all__ = ["Table", "LabeledColumn", "LabeledDataset", "TableError"]
