"""Structured value generators (dates, phones, prices, codes, enumerations) for `synth.py`.

Each SOTAB V2 CTA label maps to one generator `gen(c: ValueContext, n) -> list[str]`. A generator
first draws a *column style* (e.g. one date format, one phone layout, one currency) and then n
values in that style: real web tables are homogeneous within a column (one site, one template)
but vary wildly between sites, and that is what a column-type model has to learn. The formats
imitate values seen in the SOTAB V2 training split (ISO and US dates, `PT20M` durations,
`http://schema.org/InStock` enumerations, `38,27 €` prices, ...).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Callable

from faker import Faker

from aegir.tables import synth_text as T
from aegir.tables.synth_text import words


@dataclass
class ValueContext:
    """What a generator may use: the column's rng, locale, a Faker seeded from that rng, and the
    table's domain ("" when unknown) for labels whose values depend on it (ItemList: recipe
    steps in a Recipe table, a track list in a MusicAlbum table)."""

    rng: random.Random
    locale: str
    fake: Faker
    domain: str = ""

    @property
    def lang(self) -> str:
        return self.locale.split("_")[0]


Gen = Callable[[ValueContext, int], list[str]]


def _provider(fake: Faker, *names: str) -> Callable[[], str] | None:
    """The first Faker method of `names` this locale has (locales differ: en_NZ has no
    `administrative_unit`, en_PH no `phone_number`)."""
    for name in names:
        try:
            return getattr(fake, name)
        except AttributeError:
            continue
    return None


def many(n: int, fn: Callable[[], str]) -> list[str]:
    return [fn() for _ in range(n)]


def enum_column(c: ValueContext, n: int, pool: tuple[str, ...], p_same: float = 0.6) -> list[str]:
    """Enumeration-like columns: often one value repeated (one site, one status), sometimes mixed."""
    if c.rng.random() < p_same:
        v = c.rng.choice(pool)
        return [v if c.rng.random() < 0.85 else c.rng.choice(pool) for _ in range(n)]
    return many(n, lambda: c.rng.choice(pool))


def schema_url(c: ValueContext, terms: tuple[str, ...], base: str = "schema.org") -> list[str]:
    """One site writes an enumeration one way: bare term, http:// or https:// prefixed."""
    pre = c.rng.choice(("", "", f"http://{base}/", f"https://{base}/"))
    return [pre + t for t in terms]


# --- dates and times ------------------------------------------------------------------------
_MONTHS = {
    "en": words("January|February|March|April|May|June|July|August|September|October|November|December"),
    "de": words("Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember"),
    "fr": words("janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre"),
    "es": words("enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"),
    "it": words("gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|novembre|dicembre"),
    "pt": words("janeiro|fevereiro|março|abril|maio|junho|julho|agosto|setembro|outubro|novembro|dezembro"),
    "nl": words("januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december"),
}


def _rand_date(rng: random.Random, lo: int = 1960, hi: int = 2022) -> dt.date:
    start = dt.date(lo, 1, 1).toordinal()
    return dt.date.fromordinal(rng.randint(start, dt.date(hi, 12, 31).toordinal()))


def _date_fmt(c: ValueContext) -> Callable[[dt.date], str]:
    lang = c.lang if c.lang in _MONTHS else "en"
    mon = _MONTHS[lang]
    us = c.locale in ("en_US", "en_CA")
    styles: list[Callable[[dt.date], str]] = [
        lambda d: d.isoformat(),
        lambda d: d.isoformat(),
        lambda d: f"{d.month}/{d.day}/{d.year}" if us else f"{d.day:02d}/{d.month:02d}/{d.year}",
        lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
        lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
        lambda d: f"{_MONTHS['en'][d.month - 1]} {d.day}, {d.year}",
        lambda d: f"{_MONTHS['en'][d.month - 1][:3]} {d.day:02d}, {d.year}",
        lambda d: f"{_MONTHS['en'][d.month - 1][:3]}. {d.day:02d}, {d.year}",
        lambda d: f"{_MONTHS['en'][d.month - 1]} {d.year}",
        lambda d: f"{d.day} {_MONTHS['en'][d.month - 1]} {d.year}",
        lambda d: str(d.year),
    ]
    if lang == "de":
        styles += [lambda d: f"{d.day}. {mon[d.month - 1]} {d.year}", lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"]
    elif lang in ("es", "pt"):
        styles += [lambda d: f"{d.day} de {mon[d.month - 1]} de {d.year}"]
    elif lang in ("fr", "it", "nl"):
        styles += [lambda d: f"{d.day} {mon[d.month - 1]} {d.year}"]
    elif lang == "ja":
        styles += [lambda d: f"{d.year}年{d.month}月{d.day}日", lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}"] * 2
    return c.rng.choice(styles)


def gen_date(c: ValueContext, n: int) -> list[str]:
    f = _date_fmt(c)
    lo = c.rng.choice((1950, 1990, 2010, 2018))
    return many(n, lambda: f(_rand_date(c.rng, lo, 2022)))


def gen_datetime(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    tz = rng.choice(("Z", "+00:00", "-05:00", "+01:00", "+02:00", "-07:00", "+09:00", ".000Z"))
    midnight = rng.random() < 0.3  # many CMSs store dates as midnight timestamps
    style = rng.randrange(4)

    def one() -> str:
        d = _rand_date(rng, 2005, 2021)
        h, m, s = (0, 0, 0) if midnight else (rng.randrange(24), rng.randrange(60), rng.randrange(60))
        if style == 0:
            return f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}{tz}"
        if style == 1:
            return f"{d.month}/{d.day}/{d.year} {(h % 12) or 12}:{m:02d}:{s:02d} {'AM' if h < 12 else 'PM'}"
        if style == 2:
            return f"{d.isoformat()} {h:02d}:{m:02d}:{s:02d}"
        return f"{d.isoformat()}T{h:02d}:{m:02d}{tz if tz != '.000Z' else 'Z'}"

    return many(n, one)


def gen_time(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    style = rng.randrange(10)
    hours = (11, 12, 14, 15, 10, 9, 20, 22, 7, 16)

    def one() -> str:
        h, m = rng.choice(hours), rng.choice((0, 0, 0, 30, 15))
        h12, ap = (h % 12) or 12, ("am" if h < 12 else "pm")
        return (f"{h:02d}:{m:02d}:00", f"{h:02d}:{m:02d}", f"T{h:02d}:{m:02d}", f"{h:02d}:{m:02d} HRS",
                f"{h12}:{m:02d} {ap.upper()}", f"To {h:02d}:{m:02d}", f"{h:02d}:{m:02d}:00-05:00",
                f"Check In - {h12}.{m:02d} {ap.upper()}", f"Check Out: {h12}.{m:02d}{ap}",
                f"{h12}.{m:02d}{ap} to {rng.randint(4, 8)}.00pm")[style]

    return many(n, one)


def gen_duration(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    style = rng.randrange(7)
    movie = rng.random() < 0.5

    def one() -> str:
        mins = rng.randint(75, 170) if movie else rng.choice((5, 10, 15, 20, 25, 30, 45, 60, 90, 120))
        h, m = divmod(mins, 60)
        return (f"PT{mins}M", (f"PT{h}H{m}M" if m else f"PT{h}H") if h else f"PT{m}M", f"{mins} min",
                str(mins), f"{mins} Min.", f"PD{rng.randint(1, 3)}TH0M0", f"{h}h {m:02d}min" if h else f"{m} min")[style]

    return many(n, one)


_DAYS = {
    "en": words("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"),
    "de": words("Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag"),
    "fr": words("lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche"),
    "es": words("lunes|martes|miércoles|jueves|viernes|sábado|domingo"),
}


def gen_day_of_week(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    days = _DAYS.get(c.lang, _DAYS["en"]) if rng.random() < 0.4 else _DAYS["en"]
    style = rng.randrange(4)
    fmt = (lambda d: d, lambda d: f"{d}:", lambda d: f"http://schema.org/{d}", lambda d: d[:2])[style]
    if style == 2:
        days = _DAYS["en"]

    def one() -> str:
        k = rng.choice((1, 5, 6, 7, 7))
        picked = rng.sample(days, k)
        return " ".join(fmt(d) for d in picked)

    base = one()
    return [base if rng.random() < 0.7 else one() for _ in range(n)]


def gen_opening_hours(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    o, cl = rng.choice((7, 8, 9, 10, 11)), rng.choice((17, 18, 19, 20, 22))
    style = rng.randrange(5)
    v = (f"Mo-Fr {o:02d}:00-{cl:02d}:00", f"Mo,Tu,We,Th,Fr,Sa,Su {o:02d}:00-{cl:02d}:00",
         f"Monday – Friday: {o}:00 AM–{cl - 12}:00 PM", f"Mo {o:02d}.00 – {cl}.00 Tu {o:02d}.00 – {cl}.00 Su CLOSED",
         f"Mo-Sa {o:02d}:00-{cl:02d}:00 Su Closed")[style]
    alt = "Mo-Su 00:00-24:00"
    return [v if rng.random() < 0.85 else alt for _ in range(n)]


# --- phones, addresses, places ---------------------------------------------------------------
def _phone_style(c: ValueContext) -> Callable[[], str]:
    rng = c.rng

    def d(k: int) -> str:
        return "".join(str(rng.randrange(10)) for _ in range(k))

    if c.locale in ("en_US", "en_CA") or rng.random() < 0.25:
        area = lambda: str(rng.randint(201, 989))  # noqa: E731 - tiny local helper
        return rng.choice((
            lambda: f"({area()}) {d(3)}-{d(4)}", lambda: f"{area()}-{d(3)}-{d(4)}",
            lambda: f"{area()}.{d(3)}.{d(4)}", lambda: f"+1 {area()}-{d(3)}-{d(4)}",
            lambda: f"{area()}{d(7)}", lambda: f"{area()} {d(3)} {d(4)}", lambda: f"1-800-{d(3)}-{d(4)}",
        ))
    fake_phone = _provider(c.fake, "phone_number") or (lambda: f"0{d(2)} {d(3)} {d(4)}")
    return rng.choice((fake_phone, fake_phone,
                       lambda: "+" + rng.choice(("33", "49", "34", "39", "44", "61", "81", "31")) + " " + d(3) + " " + d(6),
                       lambda: " ".join(d(2) for _ in range(5))))


def gen_phone(c: ValueContext, n: int) -> list[str]:
    f = _phone_style(c)
    pre = c.rng.choice(("", "", "", "Tel: ", "T. ", "Phone: "))
    v = pre + f()
    same = c.rng.random() < 0.35  # one business per page: the same number repeated
    return [v if same else pre + f() for _ in range(n)]


def gen_fax(c: ValueContext, n: int) -> list[str]:
    f = _phone_style(c)
    pre = c.rng.choice(("", "", "Fax: ", "F. ", "Fax "))
    return many(n, lambda: pre + f())


_REAL_CITIES = {
    "en_US": words("Denver|Portland|Los Angeles|Peachtree City|Prescott|Las Vegas|Niagara Falls|Austin|"
                "Chicago|Boston|Abilene|Fort Pierce|Longview|Saint Louis|Winchester|Island Lake|Seattle|"
                "Nashville|Phoenix|Miami|Raleigh|Albany|Saginaw|Hemlock|Scottsdale|Arlington|Tampa"),
    "en_GB": words("London|Manchester|Bristol|Leeds|Torquay|Falmouth|Bath|Poole|Ferndown|York|Glasgow|Cardiff"),
    "en_AU": words("Sydney|Melbourne|Benowa|Canberra|Port Hedland|Cairns|Perth|Adelaide|Hobart|Darwin"),
    "en_CA": words("Toronto|Mississauga|Moose Jaw|Calgary|Edmonton|Vancouver|Québec|Montreal|Ottawa"),
}


def city(c: ValueContext) -> str:
    real = _REAL_CITIES.get(c.locale)
    if real and c.rng.random() < 0.8:  # Faker's en_* cities are invented ("New Melanie")
        return c.rng.choice(real)
    return c.fake.city()


def gen_locality(c: ValueContext, n: int) -> list[str]:
    v = city(c)
    same = c.rng.random() < 0.4
    return [v if same else city(c) for _ in range(n)]


def gen_region(c: ValueContext, n: int) -> list[str]:
    abbr = c.locale in ("en_US", "en_AU", "pt_BR", "it_IT") and c.rng.random() < 0.5
    f = _provider(c.fake, *(("state_abbr",) if abbr else ()), "administrative_unit", "state", "region", "province", "city")
    return many(n, f or (lambda: city(c)))


def gen_postal_code(c: ValueContext, n: int) -> list[str]:
    v = c.fake.postcode()
    same = c.rng.random() < 0.3
    return [v if same else c.fake.postcode() for _ in range(n)]


_COUNTRY_NAMES = words("United States|Canada|France|Germany|Spain|Italy|Australia|United Kingdom|USA|"
                    "Deutschland|España|Brasil|Nederland|Japan|Schweiz|Österreich|Ireland|South Africa")


def gen_country(c: ValueContext, n: int) -> list[str]:
    home = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES", "it_IT": "IT",
            "pt_BR": "BR", "nl_NL": "NL", "ja_JP": "JP", "en_AU": "AU", "en_CA": "CA"}.get(c.locale, "US")
    style = c.rng.randrange(3)
    if style == 0:
        return [home if c.rng.random() < 0.8 else c.fake.country_code() for _ in range(n)]
    if style == 1:
        return enum_column(c, n, _COUNTRY_NAMES, p_same=0.7)
    return many(n, c.fake.country)


_EN_STREETS = words("Main|Oak|Pine Island|Maple|Washington|Park|Aerowood|Innovation|Melbourne|Guildford|Bute|"
                    "Cleary|Patricia|Middlefield|Old Vic|Edinburgh|Portside|Eastern|Beth Nealson|Kapp|Adams Waite|"
                    "Lake|Hill|Church|Mill|Cedar|Elm|Sunset|Highland|Broadway|2nd|3rd|30th|12th|Market|King|Queen")
_EN_SUFFIX = words("St|St.|Street|Ave|Avenue|Rd|Road|Dr|Dr.|Drive|Blvd|Ln|Way|Pike|Line|Ct|Pl")


def _en_street(c: ValueContext) -> str:
    rng = c.rng
    num = str(rng.choice((rng.randint(1, 99), rng.randint(100, 9999), rng.randint(10000, 99999))))
    if rng.random() < 0.1:
        num += rng.choice("AB") if rng.random() < 0.5 else f"-{int(num) + 2}"
    d = rng.choice(("", "", "", "", "N ", "S ", "E ", "W ", "SW ", "North "))
    unit = rng.choice(("",) * 6 + (f" #{rng.randint(1, 400)}", f" Suite {rng.randint(100, 900)}", f", Unit {rng.randint(1, 20)}"))
    return f"{num} {d}{rng.choice(_EN_STREETS)} {rng.choice(_EN_SUFFIX)}{unit}"


def gen_street(c: ValueContext, n: int) -> list[str]:
    suffix = c.rng.choice(("", "", "", ","))
    # Faker's English street names are invented ("Tony Village"); real-looking ones are built here.
    own = c.lang == "en" and c.rng.random() < 0.7
    po_box = c.lang == "en" and c.rng.random() < 0.1
    return many(n, lambda: ("PO BOX " + str(c.rng.randint(1, 999)) if po_box and c.rng.random() < 0.3
                            else _en_street(c) if own else c.fake.street_address()) + suffix)


def gen_postal_address(c: ValueContext, n: int) -> list[str]:
    sep = c.rng.choice((", ", " ", ", "))
    tail = c.rng.choice(("", "", ", United States", ", USA"))

    def one() -> str:
        return c.fake.address().replace("\n", sep) + (tail if c.locale == "en_US" else "")

    v = one()
    same = c.rng.random() < 0.4
    return [v if same else one() for _ in range(n)]


def gen_coordinate(c: ValueContext, n: int) -> list[str]:
    lat = c.rng.random() < 0.5
    center = c.rng.uniform(-60, 60) if lat else c.rng.uniform(-150, 150)
    digits = c.rng.choice((4, 4, 5, 6, 7))
    return many(n, lambda: f"{center + c.rng.uniform(-3, 3):.{digits}f}".rstrip("0"))


def gen_email(c: ValueContext, n: int) -> list[str]:
    obfuscate = c.rng.random() < 0.25  # some CMSs entity-encode addresses against scrapers

    def one() -> str:
        e = c.fake.email() if c.rng.random() < 0.5 else c.fake.company_email()
        if obfuscate:
            e = "".join(f"&#{ord(ch)};" if c.rng.random() < 0.4 else ch for ch in e)
        return e

    return many(n, one)


_SLUG_WORDS = tuple(w.lower() for w in T.ADJ + T.NOUN) + words(
    "event|workshop|sale|summer|class|night|live|tour|open|day|meeting|festival|2020|2019|free|kids|art")


def _slug(rng: random.Random, k: int) -> str:
    # Own word list, not Faker's: Faker's English word provider is lorem ipsum ("earum", "cum").
    return "-".join(rng.choice(_SLUG_WORDS) for _ in range(k))


def gen_url(c: ValueContext, n: int) -> list[str]:
    dom = c.fake.domain_name()
    scheme = c.rng.choice(("https://www.", "https://", "http://"))
    path = c.rng.choice(("events", "event", "calendar", "product", "books", "recipes", "p"))

    def one() -> str:
        slug = _slug(c.rng, c.rng.randint(2, 5))
        return f"{scheme}{dom}/{path}/{slug}/" if c.rng.random() < 0.6 else f"{scheme}{dom}/{path}/{c.rng.randint(100, 99999)}-{slug}.html"

    return many(n, one)


def gen_photo(c: ValueContext, n: int) -> list[str]:
    dom = c.fake.domain_name()
    scheme = c.rng.choice(("https://www.", "https://", "http://"))
    style = c.rng.randrange(3)

    def one() -> str:
        name = _slug(c.rng, c.rng.randint(1, 3)) + c.rng.choice((".jpg", ".jpg", ".png", ".jpeg", ".webp"))
        if style == 0:
            return f"{scheme}{dom}/wp-content/uploads/{c.rng.randint(2015, 2020)}/{c.rng.randint(1, 12):02d}/{name}"
        if style == 1:
            return f"https://images-na.ssl-images-amazon.com/images/I/{c.fake.pystr(9, 11)}._SL{c.rng.choice((500, 1500, 3000))}_.jpg"
        return f"{scheme}{dom}/media/cache/{c.rng.randint(100, 900)}x{c.rng.randint(100, 900)}/{name}"

    return many(n, one)


# --- money ------------------------------------------------------------------------------------
_LOCALE_CUR = {"en_US": "USD", "en_GB": "GBP", "de_DE": "EUR", "fr_FR": "EUR", "es_ES": "EUR",
               "it_IT": "EUR", "pt_BR": "BRL", "nl_NL": "EUR", "ja_JP": "JPY", "en_AU": "AUD", "en_CA": "CAD"}
_SYM = {"USD": "$", "GBP": "£", "EUR": "€", "BRL": "R$", "JPY": "¥", "AUD": "$", "CAD": "$"}


def _money_fmt(c: ValueContext) -> Callable[[float], str]:
    cur = _LOCALE_CUR.get(c.locale, "USD") if c.rng.random() < 0.85 else c.rng.choice(tuple(_SYM))
    sym = _SYM[cur]
    comma = c.lang in ("de", "fr", "es", "it", "pt", "nl")
    whole = cur == "JPY" or c.rng.random() < 0.1

    def num(x: float) -> str:
        s = f"{round(x):,}" if whole else f"{x:,.2f}"
        return s.translate(str.maketrans(",.", ".,")) if comma else s

    return c.rng.choice((
        lambda x: num(x), lambda x: f"{sym}{num(x)}", lambda x: f"{sym} {num(x)}", lambda x: f"{num(x)} {sym}",
        lambda x: f"{num(x)} {cur}", lambda x: f"{cur} {num(x)}",
        lambda x: f"{x:.2f}".rstrip("0").rstrip("."),
    ))


def gen_price(c: ValueContext, n: int) -> list[str]:
    f = _money_fmt(c)
    scale = c.rng.choice((10, 30, 100, 1000, 10000))
    # shops price either in whole units (45, 3790), at .95/.99 endings, or at arbitrary cents
    ending = c.rng.choice(("whole", "95", "99", "cents", "cents"))

    def one() -> float:
        x = c.rng.uniform(0.05, 1.0) * scale
        if ending == "whole":
            return float(round(x / 5) * 5 or 5) if c.rng.random() < 0.6 else float(round(x) or 1)
        if ending in ("95", "99"):
            return int(x) + int(ending) / 100
        return round(x, 2)

    return many(n, lambda: f(one()))


def gen_price_range(c: ValueContext, n: int) -> list[str]:
    style = c.rng.randrange(3)
    sym = _SYM.get(_LOCALE_CUR.get(c.locale, "USD"), "$")
    if style == 0:
        return enum_column(c, n, (sym * 1, sym * 2, sym * 3, sym * 4), p_same=0.8)
    if style == 1:
        return many(n, lambda: f"{sym}{c.rng.randint(10, 40)} - {sym}{c.rng.randint(50, 200)}")
    return enum_column(c, n, words("Negotiable|Moderate|Inexpensive|Expensive|Budget|Mid-range"))


def gen_currency(c: ValueContext, n: int) -> list[str]:
    cur = _LOCALE_CUR.get(c.locale, "USD") if c.rng.random() < 0.8 else c.rng.choice(("USD", "EUR", "GBP", "AUD", "CAD", "CHF"))
    rep = c.rng.choice((1, 1, 1, 2, 3))
    sep = c.rng.choice((" ", "; "))
    return [sep.join([cur] * rep) for _ in range(n)]


def gen_monetary_amount(c: ValueContext, n: int) -> list[str]:
    rng = c.rng
    sym = _SYM.get(_LOCALE_CUR.get(c.locale, "USD"), "$")
    style = rng.randrange(6)

    def one() -> str:
        lo = rng.randint(9, 25)
        yr = rng.randint(18, 90) * 1000
        return (f"{sym}{lo} - {sym}{lo + rng.randint(2, 10)} per hour", f"{lo}.{rng.choice(('00', '40', '50'))} HOUR",
                f"{yr:,} - {sym}{yr + 2000:,}", str(yr), f"{yr:,} + Bonus",
                rng.choice(("Competitive", "Pay depends on your level of experience and education.", "DOE")))[style]

    return many(n, one)
