"""NDJSON: pi_2's output format, one JSON object per line.

Line-delimited output is chosen so a truncated or partly broken answer keeps its valid lines: the
parser reports which lines parsed and how long the valid prefix is, and rewards give partial credit.

Modes
- strict: every non-blank line must be exactly one JSON object. Anything else is an error line.
- lenient: also accepts what models commonly wrap around the rows: a ```json code fence (only the first
  fenced block is read), chatter lines that contain no "{" (skipped, not counted), text after an object on
  its line (`{"a": 1} <- the row`), a trailing comma, and a whole-text JSON array of objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

_FENCE_RE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)


@dataclass(frozen=True)
class NDJSONError:
    line: int  # 1-based line number in the (fence-stripped) text
    message: str
    text: str  # the offending line, cut to 80 characters


@dataclass
class NDJSONParse:
    rows: list[dict[str, Any]]  # every parsed object, in order
    n_lines: int  # lines that count (non-blank; lenient: that contain "{")
    n_valid: int
    valid_prefix: int  # number of leading counted lines that parsed
    errors: list[NDJSONError] = field(default_factory=list)
    fenced: bool = False  # lenient mode stripped a code fence
    mode: str = "strict"

    @property
    def ok(self) -> bool:
        """At least one line, and every counted line parsed."""
        return self.n_lines > 0 and self.n_valid == self.n_lines

    @property
    def valid_rate(self) -> float:
        return self.n_valid / self.n_lines if self.n_lines else 0.0

    @property
    def prefix_rate(self) -> float:
        return self.valid_prefix / self.n_lines if self.n_lines else 0.0


def strip_fence(text: str) -> tuple[str, bool]:
    """The content of the first ``` fenced block (an unclosed fence runs to the end), or the text."""
    m = _FENCE_RE.search(text)
    if m is None:
        return text, False
    return m.group(1), True


def parse_ndjson(text: str, mode: str = "strict") -> NDJSONParse:
    if mode not in ("strict", "lenient"):
        raise ValueError(f"parse_ndjson: mode must be 'strict' or 'lenient', got {mode!r}")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise TypeError(f"parse_ndjson: expected text, got {type(text).__name__}")
    fenced = False
    if mode == "lenient":
        text, fenced = strip_fence(text)
        arr = _whole_array(text)
        if arr is not None:
            return NDJSONParse(rows=arr, n_lines=len(arr), n_valid=len(arr), valid_prefix=len(arr),
                               fenced=fenced, mode=mode)
    rows: list[dict[str, Any]] = []
    errors: list[NDJSONError] = []
    n_lines = n_valid = prefix = 0
    prefix_open = True
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if mode == "lenient" and "{" not in line:
            continue  # chatter such as "Here are the rows:"
        n_lines += 1
        obj, err = _parse_line(line, mode)
        if obj is not None:
            rows.append(obj)
            n_valid += 1
            if prefix_open:
                prefix += 1
        else:
            prefix_open = False
            errors.append(NDJSONError(line=lineno, message=err or "invalid", text=line[:80]))
    return NDJSONParse(rows=rows, n_lines=n_lines, n_valid=n_valid, valid_prefix=prefix, errors=errors,
                       fenced=fenced, mode=mode)


def _parse_line(line: str, mode: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        if mode == "strict":
            return None, f"invalid JSON: {e.msg} at column {e.colno}"
        return _lenient_line(line, e)
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    return obj, None


def _lenient_line(line: str, first_err: json.JSONDecodeError) -> tuple[dict[str, Any] | None, str | None]:
    start = line.find("{")
    try:
        obj, _end = json.JSONDecoder().raw_decode(line[start:])  # ignores whatever follows the object
    except json.JSONDecodeError:
        return None, f"invalid JSON: {first_err.msg} at column {first_err.colno}"
    if not isinstance(obj, dict):
        return None, "expected a JSON object"
    return obj, None


def _whole_array(text: str) -> list[dict[str, Any]] | None:
    t = text.strip()
    if not t.startswith("["):
        return None
    try:
        arr = json.loads(t)
    except json.JSONDecodeError:
        return None
    if isinstance(arr, list) and arr and all(isinstance(o, dict) for o in arr):
        return arr
    return None


def rows_to_ndjson(rows: Sequence[dict[str, Any]], field_order: Sequence[str] | Any) -> str:
    """One compact JSON object per line with keys in `field_order` (missing keys -> null; keys not in the
    order follow at the end so nothing is silently lost). `field_order` may also be a `Schema`, in which
    case multi-table rows use their own table's order."""
    from aegir.t2t.schema import TABLE_KEY, Schema  # local: schema imports nothing from here

    lines = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise TypeError(f"rows_to_ndjson: row {i} is {type(r).__name__}, not a dict")
        if isinstance(field_order, Schema):
            order = field_order.key_order(r.get(TABLE_KEY) if field_order.tables else None)
        else:
            order = list(field_order)
        out = {k: r.get(k) for k in order}
        for k, v in r.items():
            if k not in out:
                out[k] = v
        lines.append(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines)
