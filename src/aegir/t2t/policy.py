"""The extraction policy: the rules both stages follow, rendered into every prompt's [POLICY] block.

The policy text is the same at training and inference, and it is machine-readable: each rule is one
"- key: text" line, so reward functions can read the allowed types and structures back out of a prompt
(`Policy.parse`) instead of assuming the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aegir.t2t.schema import FIELD_TYPES, STRUCTURES, SchemaError, TABLE_KEY

POLICY_VERSION = 1
DEFAULT_MISSING_TOKENS: tuple[str, ...] = ("", "-", "--", "n/a", "N/A", "NA", "null", "none", "unknown")


@dataclass(frozen=True)
class Policy:
    version: int = POLICY_VERSION
    allowed_types: tuple[str, ...] = FIELD_TYPES
    structures: tuple[str, ...] = STRUCTURES
    max_fields: int = 64

    def render(self) -> str:
        types = ", ".join(self.allowed_types)
        structs = ", ".join(self.structures)
        lines = [
            f"- version: {self.version}",
            "- names: every field name is lower_snake_case (a-z, 0-9 and _ only), unique; a repeated name "
            "gets _2, _3, ... suffixes. Name the attribute, not its value.",
            "- evidence: include a field only if the document states a value for it; never invent fields or "
            "values. Copy values as written in the document.",
            f"- types: {types}. Use string unless every value is clearly of another type.",
            "- required: true only when every row of the table states a value; otherwise false.",
            "- constraints: add \"enum\" (a list) only for a closed set of values the document enumerates, and "
            "\"pattern\" (a regular expression) only for a fixed format such as codes or dates.",
            f"- max_fields: {self.max_fields}",
            f"- structures: {structs}.",
            "- kv_single: facts about one entity as key/value pairs -> one row.",
            "- flat_single_row: a header row and exactly one data row -> one row.",
            "- multi_row: several entities or events of the same kind -> one row each; set \"row_key\" to the "
            "field that names a row. Several kinds of rows (e.g. teams and players) -> \"tables\": "
            "[{\"name\", \"row_key\", \"fields\"}, ...].",
            "- schema_output: one JSON object {\"structure\", \"fields\": [{\"name\", \"type\", \"required\"}], "
            "optional \"row_key\"} or {\"structure\": \"multi_row\", \"tables\": [...]}; nothing else.",
            "- table_output: NDJSON, one JSON object per line, every schema field in schema order, null when the "
            f"document does not state the value; with several tables each line starts with \"{TABLE_KEY}\": "
            "the table name. No code fences, no text before or after.",
        ]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """Read a rendered policy back (the keys it needs; prose lines are ignored)."""
        kv: dict[str, str] = {}
        for line in text.splitlines():
            m = re.match(r"^- ([a-z_]+): (.*)$", line.strip())
            if m:
                kv[m.group(1)] = m.group(2)
        try:
            version = int(kv.get("version", POLICY_VERSION))
            max_fields = int(kv.get("max_fields", 64))
        except ValueError as e:
            raise SchemaError(f"policy: bad number in policy block: {e}") from None
        types = _word_list(kv.get("types", ""), FIELD_TYPES)
        structs = _word_list(kv.get("structures", ""), STRUCTURES)
        return cls(version=version, allowed_types=types or FIELD_TYPES, structures=structs or STRUCTURES,
                   max_fields=max_fields)


def _word_list(text: str, known: tuple[str, ...]) -> tuple[str, ...]:
    # "string, integer, number. Use string unless ..." -> the known words of the first sentence.
    first = text.split(".")[0]
    words = [w.strip() for w in first.split(",")]
    return tuple(w for w in words if w in known)


DEFAULT_POLICY = Policy()
