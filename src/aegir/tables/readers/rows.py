"""Rows of text cells -> Table: what every row-by-row reader (CSV, Excel) shares.

`collect` reads a stream of rows keeping the first ones or a seeded uniform sample (Algorithm L) and
counting the rest, so memory is bounded by the rows kept, not by the file. `to_table` then skips a
preamble, decides the header (given, or guessed by `readers.header`) and records what it did in `meta`.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from aegir.tables.readers.common import row_sample_kind
from aegir.tables.readers.header import guess_header, is_number
from aegir.tables.table import Table, TableError

FIRST_ROWS = 200  # the rows the preamble and header guesses look at
PREAMBLE_MAX = 20  # leading rows that may be a preamble
# Cells of the rows kept (rows x widest row) past which a table is refused: spreadsheets and web pages repeat a
# row or span a cell by a count in the file, so a file of a few KB could otherwise ask for billions of cells
# (100,000 rows x 16,384 columns). A real table this large would not fit in memory as text either.
MAX_CELLS = 50_000_000


def blank(row: list[str]) -> bool:
    return not row or not (row[0].strip() or any(map(str.strip, row)))


def holds_table(rows: Iterable[list[str]]) -> bool:
    """Two or more non-blank rows: a header and a row, or rows (a cover sheet with only a title is no table).
    Reads `rows` up to the second such row."""
    return sum(1 for _ in itertools.islice((r for r in rows if not blank(r)), 2)) == 2


@dataclass
class Collected:
    first: list[list[str]]  # the source's first FIRST_ROWS non-blank rows
    kept: list[tuple[int, list[str]]]  # (row number among non-blank rows, row), in source order
    total: int  # non-blank rows in the source
    last: list[str] | None = None  # the source's last non-blank row (read_csv checks it ends outside a quote)


def keep_for(max_rows: int | None, header: bool | str) -> int | None:
    """Rows `collect` must keep so that `to_table` can return max_rows data rows: the header, and with
    the header guessed the rows a preamble may take (a spread sample keeps as many more, so exactly
    max_rows data rows remain once those are known and dropped)."""
    return None if max_rows is None else max_rows + 1 + (PREAMBLE_MAX if header == "infer" else 0)


def collect(rows: Iterable[list[str]], keep: int | None, spread: bool = False) -> Collected:
    """The non-blank rows of `rows`, read as a stream: all of them (keep None), the first `keep`, or
    with `spread` a uniform random sample of `keep` of them (seeded), and how many there are. Memory
    grows with `keep`, not with the source: a multi-GB file is counted, not held. Errors the
    iterator raises (a malformed line, an undecodable byte) pass through to the reader."""
    first: list[list[str]] = []
    kept: list[tuple[int, list[str]]] = []
    total = 0
    seen: list[list[str] | None] = [None]  # the last non-blank row, noted as the rows stream by
    it: Iterator[list[str]] = _non_blank(rows, seen)
    if keep is not None and spread:
        total = reservoir(it, keep, first, kept)
    else:
        for total, row in enumerate(it, 1):
            if total <= FIRST_ROWS:
                first.append(row)
            if keep is not None and total > keep:
                if total > FIRST_ROWS:
                    break
                continue
            kept.append((total - 1, row))
        # Past the rows kept: count the rest, without building a table.
        total += sum(1 for _ in it)
    return Collected(first, kept, total, seen[0])


def _non_blank(rows: Iterable[list[str]], seen: list) -> Iterator[list[str]]:
    """The rows that hold a cell (blank lines carry none), noting the last in `seen[0]`: no pass of its own
    over a multi-GB file to find it."""
    for row in rows:
        if not blank(row):
            seen[0] = row
            yield row


def sample_rows(rows: Iterator[Any], max_rows: int | None, spread: bool,
                count: Callable[[], int] | None = None) -> tuple[list[tuple[int, Any]], int]:
    """Rows of any kind (parsed records, database tuples; no blank filter): all of them (max_rows None), the
    first max_rows, or with `spread` a seeded uniform sample of max_rows (`reservoir`), as (row number, row) in
    source order, and how many rows there are. `count`, when given, tells that number for the first rows
    without reading the rest (a database's count(*)); otherwise the rest is read and counted."""
    kept: list[tuple[int, Any]] = []
    if max_rows is None:
        kept = list(enumerate(rows))
        return kept, len(kept)
    if spread:
        total = reservoir(rows, max_rows, [], kept)
        return kept, total
    kept = list(enumerate(itertools.islice(rows, max_rows)))
    return kept, count() if count is not None else len(kept) + sum(1 for _ in rows)


def reservoir(rows, k: int, first: list, kept: list, rng: random.Random | None = None) -> int:
    """Li's Algorithm L over `rows`: `kept` ends as a uniform random sample of k of them (all when
    there are fewer), as (row number, row) in file order; `first` gets the first FIRST_ROWS. Past the
    first k rows it draws random numbers only at the rows it takes (~k log(n/k) of them; the rows
    between are only counted). Seeded: the same file gives the same sample."""
    rng = rng or random.Random(0)
    u = lambda: 1.0 - rng.random()  # noqa: E731  in (0, 1]: its log is finite
    w = math.exp(math.log(u()) / k)
    take = k + _skip(u(), w)  # the next row (number) to take into the sample
    n = 0
    for row in rows:  # row by row until the sample is full and `first` is filled
        i, n = n, n + 1
        if i < FIRST_ROWS:
            first.append(row)
        if i < k:
            kept.append((i, row))
        elif i == take:
            kept[rng.randrange(k)] = (i, row)
            w *= math.exp(math.log(u()) / k)
            take = n + _skip(u(), w)
        if n >= k and n >= FIRST_ROWS:
            break
    while True:  # then skip to each row taken: the rows between are counted, not sampled
        gap = take - n
        passed = sum(1 for _ in itertools.islice(rows, gap))
        n += passed
        row = next(rows, None) if passed == gap else None
        if row is None:
            break
        kept[rng.randrange(k)] = (n, row)
        n += 1
        w *= math.exp(math.log(u()) / k)
        take = n + _skip(u(), w)
    kept.sort(key=lambda t: t[0])
    return n


def _skip(u: float, w: float) -> int:
    """Rows Algorithm L passes over before its next take: floor(log u / log(1 - w))."""
    return 0 if w >= 1.0 else int(math.floor(math.log(u) / math.log1p(-w)))


def _numbers_only(row: list[str]) -> bool:
    cells = [c.strip() for c in row if c.strip()]
    return bool(cells) and all(map(is_number, cells))


def preamble(rows: list[list[str]]) -> int:
    """How many leading rows are a preamble: a title or export notes above the table ("Sales report",
    "Generated 2024-01-01"). Those are rows with fewer than half the table's usual number of filled
    cells, followed by a row with at least that many (the header or the first data row). The usual
    number is the most common count of non-blank cells over the first FIRST_ROWS rows; a table of one or two
    columns has no such preamble (a sparse first row is as likely), and at most PREAMBLE_MAX rows go. A row whose
    filled cells are all numbers is data (a record with only its id filled), not a title or note, which are text."""
    filled = [sum(1 for c in r if c.strip()) for r in rows[:FIRST_ROWS]]
    usual = max(set(filled), key=lambda n: (filled.count(n), n))
    if usual < 3:
        return 0
    k = 0
    while k < min(PREAMBLE_MAX, len(filled) - 1) and 2 * filled[k] < usual and not _numbers_only(rows[k]):
        k += 1
    return k if k < len(filled) and filled[k] >= usual else 0


def to_table(rows: Collected, where: str | Path, *, header: bool | str, max_rows: int | None, spread: bool,
             source: dict[str, Any], meta: dict[str, Any] | None = None) -> Table:
    """The Table of collected rows. header: True, False, or "infer" (a preamble skipped, then the
    first row's columns vote, `readers.header.guess_header`). Its meta: the reader's `source` keys,
    then rows_total, row_sample, header, has_header and preamble_rows, then the caller's `meta`.
    `where` names the source in errors (a path, or a workbook and sheet)."""
    if not rows.first:
        raise TableError(f"{where}: file is empty (no row has a non-blank cell)")
    skipped = 0
    if header == "infer":
        skipped = preamble(rows.first)
        guess = guess_header(rows.first[skipped:])
        has_header, how = guess.has_header, guess.how
    else:
        has_header, how = bool(header), "given"
    start = skipped + has_header  # the first data row
    hdr = rows.first[skipped] if has_header else None
    body = [row for i, row in rows.kept if i >= start]
    if max_rows is not None and len(body) > max_rows:
        # Head: the first max_rows. Spread: a uniform sample of the sample's data rows, in file order.
        body = (body[:max_rows] if not spread else
                [body[i] for i in sorted(random.Random(1).sample(range(len(body)), max_rows))])
    width = max(map(len, body), default=0)
    if len(body) * width > MAX_CELLS:
        raise TableError(f"{where}: the {len(body):,} rows kept are {width:,} cells wide, more than {MAX_CELLS:,} cells "
                         "in all; keep fewer rows (max_rows, annotate's max_rows_read)")
    total = rows.total - start  # data rows in the source
    m = {**source, "rows_total": total, "row_sample": row_sample_kind(len(body), total, spread),
         # How the first row was read: "given" (by the caller), "evidence" (its columns' values voted,
         # readers.header), "names" (no evidence either way; taken for names because its cells are unique
         # and non-numeric: the guess annotate reports, as it can be wrong) or "tie" (read as data).
         "header": how, "has_header": has_header,
         "preamble_rows": skipped}  # leading rows skipped as a title/notes before the table (header="infer")
    if hdr is not None:  # rows with more fields than the header: their extra cells make columns with no name
        long = [i - start + 1 for i, row in rows.kept if i >= start and len(row) > len(hdr)]
        if long:
            m.update(long_rows=len(long), first_long_row=long[0], header_fields=len(hdr))
    m.update(meta or {})
    if not body and hdr is None:
        raise TableError(f"{where}: no data rows")
    return Table.from_rows(body, header=hdr, meta=m) if body else Table(columns=[[] for _ in hdr], header=hdr, meta=m)
