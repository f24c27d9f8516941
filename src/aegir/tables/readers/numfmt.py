"""Excel number formats applied to numbers, so a worksheet's cells read as a person sees them.

A cell that shows 15% stores 0.15, and one that shows $1,234.50 stores 1234.5; the display is what tells a
percentage from a ratio and a price from a count, so the Excel reader writes numbers through their format.
Covered: a format's sections (`positive;negative;zero;text`: a negative number is written by the second section
without its minus, so `#,##0;(#,##0)` shows -1234 as (1,234), and zero by the third, so an accounting format shows
0 as -; with one section a negative number gets a leading minus; an empty section, which hides its numbers, leaves
them to the plain writer), fixed decimals (`0.00`), thousands separators
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
    int_zero: bool = True  # a 0 placeholder before the point: a zero integer part is shown (#.00 shows .50)

    def render(self, x: float, signed: bool = True) -> str:
        """`x` under this section; `signed`: a negative number gets a leading minus (a format's only section;
        a negative section carries its own sign, if any, as literal text)."""
        v = abs(x) * (100 if self.percent else 1) / 1000 ** self.scale
        if self.scientific:
            body = f"{v:.{self.decimals}E}"
        else:
            # Half away from zero, as Excel rounds (Python's format rounds half to even: 1234.5 -> 1234).
            q = Decimal(repr(v)).quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)
            body = f"{q:,.{self.decimals}f}" if self.thousands else f"{q:.{self.decimals}f}"
            if not self.int_zero and (body == "0" or body.startswith("0.")):
                body = body[1:]  # "#" and "?" show no digit for a zero integer part
        sign = "-" if signed and x < 0 and float(body.replace(",", "").split("E")[0] or 0) != 0 else ""
        return f"{sign}{self.prefix}{body}{self.suffix}"


def _sections(fmt: str) -> list[str]:
    """A format's sections (separated by ; outside quotes)."""
    out, quoted, start = [], False, 0
    for i, c in enumerate(fmt):
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            out.append(fmt[start:i])
            start = i + 1
    return out + [fmt[start:]]


@functools.lru_cache(maxsize=1024)
def parse(fmt: str) -> NumberFormat | None:
    """A format's first section, or None where it is General, text (@) or outside what `render` covers."""
    return parse_section(_sections(fmt)[0])


@functools.lru_cache(maxsize=1024)
def parse_section(sec: str) -> NumberFormat | None:
    """One section of a number format, or None where it is General, text (@) or outside what `render` covers."""
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
                        scale=scale, percent=percent, scientific=scientific, int_zero="0" in int_part)


def format_number(x: float, fmt: str) -> str | None:
    """`x` as Excel shows it under `fmt`, or None where the format is General or not covered (any of its
    number sections: a format whose negative section is not covered is not used for positive numbers either),
    and where it shows nothing (an empty section, `#` for zero): the plain writer then writes the number."""
    if not fmt:
        return None
    secs = _sections(fmt)[:3]  # a fourth section is for text
    specs = [parse_section(s) for s in secs]
    literal_zero = _zero_text(secs[2]) if len(secs) > 2 and specs[2] is None else None
    if specs[0] is None or any(spec is None and sec and not (i == 2 and literal_zero)
                               for i, (spec, sec) in enumerate(zip(specs, secs))):
        return None
    if x < 0 and len(secs) > 1:
        shown = specs[1].render(x, signed=False) if specs[1] else None
    elif x == 0 and len(secs) > 2:
        shown = specs[2].render(x, signed=False) if specs[2] else literal_zero
    else:
        shown = specs[0].render(x)
    return shown if shown and shown.strip() else None


def _zero_text(sec: str) -> str | None:
    """A zero section without digit placeholders (`"-"`, as some accounting formats show zero): its literal
    text, spacing, fill and colour codes dropped."""
    text = re.sub(r'_.|\*.|\[[^]]*\]', "", sec)
    text = re.sub(r'"([^"]*)"|\\(.)', lambda m: m.group(1) or m.group(2) or "", text)
    return text.strip() or None
