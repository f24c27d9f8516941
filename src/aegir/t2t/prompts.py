"""Prompts for pi_1 (document -> schema) and pi_2 (document + schema -> NDJSON rows).

Built by one function for training and inference alike. The user message is a fixed sequence of
sections, each header alone on its line:

    <|policy|>
    [POLICY]
    ...rules (policy.py)...
    [METADATA]
    {"language": "en", ...}          (one line of JSON)
    [DOCUMENT]
    ...the document, verbatim...
    [SCHEMA]                         (pi_2 only)
    {"schema_id": ..., ...}          (one line of canonical schema JSON)
    [TASK]
    ...what to answer...

`parse_sections` reads them back. The document is user text and may itself contain a line such as
"[TASK]", so the parser takes the policy and metadata from the front and the task (and schema) from the
*last* markers, leaving everything between as the document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aegir.t2t.policy import DEFAULT_MISSING_TOKENS, DEFAULT_POLICY, Policy
from aegir.t2t.schema import Schema, SchemaError

POLICY_TAG = "<|policy|>"

SCHEMA_SYSTEM = (
    "You design table schemas for information extraction. Read the policy, the metadata and the document in "
    "the user message, decide which facts the document states and how they form a table, and answer with "
    "exactly one JSON object: the schema. Follow the policy strictly."
)
TABLE_SYSTEM = (
    "You extract tables from documents. Read the policy, the metadata, the document and the schema in the "
    "user message and answer with NDJSON: one JSON object per line, one line per row, keys exactly the "
    "schema's fields in the schema's order, values copied from the document (null when it does not state "
    "them). Follow the policy strictly."
)
SCHEMA_TASK = (
    "Write the schema for the table(s) this document supports: pick the structure, then list the fields in "
    "the order the document's facts suggest. Answer with the schema JSON only."
)
TABLE_TASK = (
    "Fill the schema from the document. Answer with NDJSON rows only: one JSON object per line, keys in schema "
    "order."
)


class PromptError(ValueError):
    """A prompt whose sections cannot be read back."""


@dataclass
class PromptSections:
    stage: str  # "schema" | "table"
    policy: str
    metadata: dict[str, Any]
    document: str
    task: str
    schema: Schema | None = None
    schema_json: str | None = None

    @property
    def parsed_policy(self) -> Policy:
        return Policy.parse(self.policy)


def default_metadata(metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The [METADATA] object: defaults, overridden by the caller's keys (extra keys are kept)."""
    md: dict[str, Any] = {
        "language": "en",
        "locale": "en-US",
        "table_hints": {},
        "missing_value_tokens": list(DEFAULT_MISSING_TOKENS),
    }
    if metadata:
        for k, v in metadata.items():
            md[k] = v
    return md


def _user_text(document: str, metadata: dict[str, Any] | None, policy: Policy, task: str,
               schema: Schema | None) -> str:
    if not isinstance(document, str):
        raise PromptError(f"document must be a string, got {type(document).__name__}")
    md = json.dumps(default_metadata(metadata), ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    parts = [POLICY_TAG, "[POLICY]", policy.render(), "[METADATA]", md, "[DOCUMENT]", document]
    if schema is not None:
        parts += ["[SCHEMA]", schema.to_json()]
    parts += ["[TASK]", task]
    return "\n".join(parts)


def schema_messages(document: str, metadata: dict[str, Any] | None = None,
                    policy: Policy = DEFAULT_POLICY) -> list[dict[str, str]]:
    """pi_1's prompt: [system, user]."""
    return [
        {"role": "system", "content": SCHEMA_SYSTEM},
        {"role": "user", "content": _user_text(document, metadata, policy, SCHEMA_TASK, None)},
    ]


def table_messages(document: str, schema: Schema, metadata: dict[str, Any] | None = None,
                   policy: Policy = DEFAULT_POLICY) -> list[dict[str, str]]:
    """pi_2's prompt: [system, user] with the [SCHEMA] block."""
    if not isinstance(schema, Schema):
        raise PromptError(f"table_messages needs a Schema, got {type(schema).__name__}")
    return [
        {"role": "system", "content": TABLE_SYSTEM},
        {"role": "user", "content": _user_text(document, metadata, policy, TABLE_TASK, schema)},
    ]


def parse_sections(user_text: str | list[dict[str, str]]) -> PromptSections:
    """Split a user message (or a message list: its last user message) back into its sections."""
    if isinstance(user_text, list):
        users = [m.get("content", "") for m in user_text if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise PromptError("prompt has no user message")
        user_text = users[-1]
    if not isinstance(user_text, str):
        raise PromptError(f"prompt must be text, got {type(user_text).__name__}")
    head = f"{POLICY_TAG}\n[POLICY]\n"
    start = user_text.find(head)
    if start < 0:
        raise PromptError(f"prompt does not start with {POLICY_TAG!r} followed by [POLICY]")
    rest = user_text[start + len(head):]
    i_md = rest.find("\n[METADATA]\n")
    if i_md < 0:
        raise PromptError("prompt has no [METADATA] section")
    policy = rest[:i_md]
    rest = rest[i_md + len("\n[METADATA]\n"):]
    i_doc = rest.find("\n[DOCUMENT]\n")
    if i_doc < 0:
        raise PromptError("prompt has no [DOCUMENT] section")
    try:
        metadata = json.loads(rest[:i_doc])
    except json.JSONDecodeError as e:
        raise PromptError(f"[METADATA] is not valid JSON: {e.msg}") from None
    if not isinstance(metadata, dict):
        raise PromptError("[METADATA] must be a JSON object")
    rest = rest[i_doc + len("\n[DOCUMENT]\n"):]
    i_task = rest.rfind("\n[TASK]\n")
    if i_task < 0:
        raise PromptError("prompt has no [TASK] section")
    body, task = rest[:i_task], rest[i_task + len("\n[TASK]\n"):]
    document, schema, schema_json = body, None, None
    i_schema = body.rfind("\n[SCHEMA]\n")
    if i_schema >= 0:
        cand = body[i_schema + len("\n[SCHEMA]\n"):]
        if "\n" not in cand.strip():
            try:
                schema = Schema.from_json(cand.strip())
                schema_json = cand.strip()
                document = body[:i_schema]
            except SchemaError:
                schema = None  # a "[SCHEMA]" line that belongs to the document itself
    stage = "table" if schema is not None else "schema"
    return PromptSections(stage=stage, policy=policy, metadata=metadata, document=document, task=task,
                          schema=schema, schema_json=schema_json)
