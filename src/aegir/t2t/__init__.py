"""Text -> schema -> table.

pi_1 reads a document and writes a schema (schema.py); pi_2 reads the document plus that schema and
writes NDJSON rows (ndjson.py). prompts.py builds both prompts, datasets.py the SFT data, metrics.py and
rewards.py score the outputs. This package's data half is pure Python (no torch); the LLM half (models,
sft, rl, pipeline, verl, extract) imports torch / transformers and is not imported here.
"""

from aegir.t2t.gold import GoldTable
from aegir.t2t.ndjson import NDJSONParse, parse_ndjson, rows_to_ndjson
from aegir.t2t.policy import DEFAULT_POLICY, Policy
from aegir.t2t.prompts import PromptSections, parse_sections, schema_messages, table_messages
from aegir.t2t.schema import (
    STRUCTURES,
    Field,
    Schema,
    SchemaError,
    SchemaTable,
    build_assistant_schema,
    canonical_gold,
    detect_structure,
    gold_to_rows,
    normalize_field_name,
    rows_to_tables,
)

__all__ = [
    "GoldTable", "NDJSONParse", "parse_ndjson", "rows_to_ndjson", "DEFAULT_POLICY", "Policy", "PromptSections",
    "parse_sections", "schema_messages", "table_messages", "STRUCTURES", "Field", "Schema", "SchemaError",
    "SchemaTable", "build_assistant_schema", "canonical_gold", "detect_structure", "gold_to_rows",
    "normalize_field_name", "rows_to_tables",
]
