"""Readers: every format becomes `Table`s plus `LabeledColumn` targets (a `LabeledDataset`)."""

from aegir.tables.readers.csv import from_dataframe, read_csv, read_labeled_csv_folder
from aegir.tables.readers.excel import read_excel, sheet_names
from aegir.tables.readers.files import read_table_file
from aegir.tables.readers.html import html_tables, read_html
from aegir.tables.readers.jsonl import read_json
from aegir.tables.readers.parquet import read_parquet
from aegir.tables.readers.sqlite import read_sqlite, table_names
from aegir.tables.readers.gittables import gittables_folds, read_gittables
from aegir.tables.readers.sotab import read_sotab, read_sotab_table, sotab_splits
from aegir.tables.readers.turl import read_turl

__all__ = ["read_csv", "read_parquet", "read_excel", "sheet_names", "read_sqlite", "table_names", "read_json", "read_html", "html_tables", "read_table_file", "from_dataframe", "read_labeled_csv_folder", "read_sotab", "read_sotab_table",
           "sotab_splits", "read_gittables", "gittables_folds", "read_turl"]
