"""Excel number formats applied to numbers, so a worksheet's cells read as a person sees them.

A cell that shows 15% stores 0.15, and one that shows $1,234.50 stores 1234.5; the display is what tells a
percentage from a ratio and a price from a count, so the Excel reader writes numbers through their format.
Covered: the first section of a format (`positive;negative;zero;text`; a negative number gets a leading minus,
where Excel may show the second section's parentheses), fixed decimals (`0.00`), thousands separators
(`#,##0`) and scaling by trailing commas (`0.0,,`), percent (`0%`), scientific (`0.00E+00`), literal text in
quotes or after a backslash (`0.0 "kg"`, `\\$0`), currency symbols in brackets (`[$€-407]`), and the spacing
(`_)`) and fill (`* `) codes, which are dropped. Anything else with digit placeholders (fractions `# ?/?`,
conditions `[>100]`) is written plainly, as is "General". Dates never come here: openpyxl already reads
date-formatted cells as dates.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

_PLACEHOLDERS = set("0#?")


@dataclass(frozen=True)
class NumberFormat:
    prefix: str  # literal text before the number
    suffix: str  # literal text after it (a % sign included)
    decimals: int
    thousands: bool  # a , between digit placeholders
    scale: int  # divide by 1000 ** scale (trailing commas)
    percent: bool  # multiply by 100
    scientific: bool

    def render(self, x: float) -> str:
        v = abs(x) * (100 if self.percent else 1) / 1000 ** self.scale
        if self.scientific:
            body = f"{v:.{self.decimals}E}"
        else:
            # Half away from zero, as Excel rounds (Python's format rounds half to even: 1234.5 -> 1234).
            q = Decimal(repr(v)).quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)
            body = f"{q:,.{self.decimals}f}" if self.thousands else f"{q:.{self.decimals}f}"
        sign = "-" if x < 0 and float(body.replace(",", "").split("E")[0]) != 0 else ""
        return f"{sign}{self.prefix}{body}{self.suffix}"


def _section(fmt: str) -> str:
    """The first section of a format (sections are separated by ; outside quotes)."""
    quoted = False
    for i, c in enumerate(fmt):
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return fmt[:i]
    return fmt


@functools.lru_cache(maxsize=1024)
def parse(fmt: str) -> NumberFormat | None:
    """A number format, or None where it is General, text (@) or outside what `render` covers."""
    sec = _section(fmt)
    if not sec or sec.lower() == "general" or "@" in sec:
        return None
    literal_before, literal_after, number = [], [], []
    percent = scientific = False
    i = 0
    while i < len(sec):
        c = sec[i]
        out = literal_after if number else literal_before
        if c == '"':
            j = sec.find('"', i + 1)
            j = len(sec) if j < 0 else j
            out.append(sec[i + 1:j])
            i = j + 1
            continue
        if c == "\\" and i + 1 < len(sec):
            out.append(sec[i + 1])
            i += 2
            continue
        if c == "[":
            j = sec.find("]", i)
            if j < 0:
                return None
            code = sec[i + 1:j]
            if code.startswith("$"):
                out.append(code[1:].split("-")[0])  # [$€-407] -> €; [$-409] (a locale alone) -> nothing
            elif not re.fullmatch(r"[A-Za-z]+\d*", code):  # a condition such as [>100]: not covered
                return None
            i = j + 1  # colours ([Red], [Color10]) are dropped
            continue
        if c in "_*" and i + 1 < len(sec):
            i += 2  # spacing and fill
            continue
        if c in _PLACEHOLDERS or (c in ".," and (number or i + 1 < len(sec) and sec[i + 1] in _PLACEHOLDERS)):
            if literal_after:  # a second run of digits (fractions, phone masks): not covered
                return None
            number.append(c)
        elif c in "Ee" and number and i + 1 < len(sec) and sec[i + 1] in "+-":
            scientific = True
            i += 2
            while i < len(sec) and sec[i] in _PLACEHOLDERS:
                i += 1
            continue
        elif c == "%":
            percent = True
            out.append("%")
        elif c.isalpha() or c == "/":  # date/time codes or fractions among digit placeholders
            return None
        else:
            out.append(c)
        i += 1
    if not number:
        return None
    digits = "".join(number)
    int_part, _, frac = digits.partition(".")
    scale = len(digits) - len(digits.rstrip(","))  # trailing commas scale by thousands
    int_part = int_part.rstrip(",") if not frac else int_part
    return NumberFormat("".join(literal_before), "".join(literal_after),
                        decimals=sum(ch in _PLACEHOLDERS for ch in frac), thousands="," in int_part.strip(","),
                        scale=scale, percent=percent, scientific=scientific)


def format_number(x: float, fmt: str) -> str | None:
    """`x` as Excel shows it under `fmt`, or None where the format is General or not covered."""
    spec = parse(fmt) if fmt else None
    return None if spec is None else spec.render(x)
