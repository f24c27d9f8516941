"""Is a file's first row column names or data? The guess behind `read_csv(header="infer")`.

csv.Sniffer's `has_header`, used before, scores a column only when all its values share one type or one
length, and says "no header" when nothing scores. On short all-text tables (web tables, SOTAB) that left
a fallback rule (a first row of unique non-numeric cells is names) to decide almost everything, and it
took the first data row of 2,226 of the 3,358 headerless SOTAB sample tables for a header
(docs/results/header_guess.md). Here each column votes with what its other values say about its first
cell, including evidence that the first cell *is* data: it recurs among the values, it has their shape
(a date like the other dates), or it reads as a value (a sentence, a URL), which column names rarely do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BODY_ROWS = 50  # rows under the first that a column's vote looks at
_IDENT = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+|[a-z]+([A-Z][a-z0-9]*)+")  # snake_case or camelCase


@dataclass(frozen=True)
class Vote:
    """One column's vote on its first cell: weight > 0 says header, < 0 data, 0 none; `rule` says why."""
    weight: int
    rule: str = ""


@dataclass(frozen=True)
class HeaderGuess:
    has_header: bool
    how: str  # "evidence" (the votes differ), "names" (a tie; unique non-numeric cells taken for names), "tie"
    header_votes: int
    data_votes: int


def is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def shape(s: str) -> str:
    """A cell's character classes with runs collapsed: "2020-9-26" -> "9-9-9", "PT30M" -> "A9A"."""
    out: list[str] = []
    for ch in s:
        c = "A" if ch.isupper() else "a" if ch.isalpha() else "9" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def _reads_as_value(s: str) -> bool:
    # Column names are short labels; a long text, a sentence, a link or an address is content.
    return len(s) > 40 or len(s.split()) > 6 or "://" in s or "@" in s


def column_vote(first: str, body: list[str]) -> Vote:
    """One column's vote on its first cell: Vote(+w, rule) says header, Vote(-w, rule) data, Vote(0) none.
    `body` holds the column's non-blank values below the first row. The rules, first match wins:
    the first cell recurs in the body (data); the body is mostly numbers (the first cell numeric: data,
    else header; weight 2, the strongest evidence there is); the first cell has a body value's shape
    and the shape has digits or punctuation (data); the body has one length (fixed-width codes: another
    length says header, the same length and shape data); it reads as a value (data); it is a
    snake/camelCase identifier that no body value is (header)."""
    first = first.strip()
    if not first or not body:
        return Vote(0)
    if len(first) > 1 and first in body:  # one letter may be both a name ("A") and a value
        return Vote(-1, "recurs")
    if sum(map(is_number, body)) >= 0.8 * len(body):
        return Vote(-2, "number") if is_number(first) else Vote(2, "text over numbers")
    s, shapes = shape(first), {shape(b) for b in body}
    if any(not c.isalpha() and c != " " for c in s) and s in shapes:
        return Vote(-1, "shape")
    lengths = {len(b) for b in body}
    if len(lengths) == 1 and len(set(body)) > 1:  # fixed-width values: codes, IDs
        if len(first) not in lengths:
            return Vote(1, "other length")
        if s in shapes:  # same length and shape ("BHR" under "ARG"); same length alone can be chance
            return Vote(-1, "length")
    if _reads_as_value(first):
        return Vote(-1, "value")
    if _IDENT.fullmatch(first) and not any(_IDENT.fullmatch(b) for b in body):
        return Vote(1, "identifier")
    return Vote(0)


def guess_header(rows: list[list[str]]) -> HeaderGuess:
    """Header or data, from the first row against the BODY_ROWS rows under it: the side with more
    votes wins. On a tie (an all-text table whose columns give no evidence either way) the first row
    is taken for names if its cells are unique and non-numeric, as most CSVs users hand over have a
    header; that weakest guess is `how="names"`, which annotate reports."""
    first, below = rows[0], rows[1:1 + BODY_ROWS]
    h = d = 0
    for j, cell in enumerate(first):
        body = [r[j].strip() for r in below if j < len(r) and r[j].strip()]
        w = column_vote(cell, body).weight
        h, d = h + max(w, 0), d + max(-w, 0)
    if h != d:
        return HeaderGuess(h > d, "evidence", h, d)
    names = len(set(first)) == len(first) and not any(is_number(c) for c in first)
    return HeaderGuess(names, "names" if names else "tie", h, d)
