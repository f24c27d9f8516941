"""The embedded default data: a deterministic generator of SOTAB-like labelled web tables.

`generate_tables(n, seed)` returns a `LabeledDataset` (task "cta", source "synthetic") whose
labelled columns carry SOTAB V2 CTA labels (the 82-label Schema.org vocabulary). It is what the
main job trains on when `../shared` is absent, so the tables imitate the real benchmark:

- tables are grouped by Schema.org domain the way SOTAB groups them (a Hotel table has
  Hotel/name, addressLocality, postalCode, telephone, priceRange, ...), the entity-name column
  usually first (SOTAB's "main column");
- each column has one site-specific format (one date pattern, one phone layout, one currency);
- each table has one locale (en_US, de_DE, fr_FR, es_ES, it_IT, pt_BR, ja_JP, ...);
- cells go missing as "" or tokens like "N/A", "-", "null" (kept verbatim, as raw web tables
  hold them; unlike the file readers we do not normalise them, because a model must learn to
  ignore them);
- about half the tables are headerless (like SOTAB), the others have plausible, sometimes noisy
  headers (case, snake_case, abbreviations, "Unnamed: 3");
- unlabelled context columns (ids, counts, slugs, or an unannotated domain column) sit between
  the labelled ones.

Module layout: `synth_values.py` (dates, phones, addresses, web links, money), `synth_enums.py`
(Schema.org enumerations, identifiers, list-like values, quantities), `synth_text.py` (titles, descriptions, reviews),
`synth_names.py` (entity names, the label -> generator registry, `generate_column`), and this
file (domains, headers, missing values, table assembly).

Determinism: table i of seed s is built from its own `random.Random("aegir-synth:s:i")` (string
seeds are hashed with SHA-512, so this is stable across processes and platforms) and every
Faker use is re-seeded from that rng first. Same seed, arguments and Faker version ->
byte-identical output; `generate_tables(n)` is a prefix of `generate_tables(n + k)`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aegir.tables.synth_names import GENERATORS, SUPPORTED_LABELS, check_locale, generate_column
from aegir.tables.synth_text import words
from aegir.tables.table import LabeledColumn, LabeledDataset, Table

DEFAULT_LOCALES: tuple[tuple[str, float], ...] = (
    ("en_US", 0.40), ("en_GB", 0.08), ("de_DE", 0.09), ("fr_FR", 0.08), ("es_ES", 0.07),
    ("it_IT", 0.06), ("pt_BR", 0.05), ("nl_NL", 0.05), ("ja_JP", 0.04), ("en_AU", 0.04), ("en_CA", 0.04),
)
# The spellings of "missing" seen in SOTAB/GitTables ("null" appears verbatim in SOTAB V2 tables);
# `_missing` picks "" for most columns because most scraped tables leave the cell empty.
MISSING_TOKENS: tuple[str, ...] = ("", "N/A", "-", "null", "NaN", "n/a", "None", "\u2014")


@dataclass(frozen=True)
class Domain:
    """A Schema.org table class: its main (name) column label and the labels its tables carry."""

    name: str
    weight: float  # sampling weight: SOTAB's mix, flattened so that small domains' labels are not rare
    main: str
    labels: tuple[str, ...]


DOMAINS: tuple[Domain, ...] = (
    Domain("Book", 2.0, "Book/name", ("Person/name", "Organization", "Date", "BookFormatType", "Language",
           "IdentifierAT", "price", "currency", "ItemAvailability", "OfferItemCondition", "Number",
           "Book/description", "Review", "Boolean", "DateTime", "CreativeWork", "Photograph", "URL")),
    Domain("Event", 1.6, "Event/name", ("Event/description", "DateTime", "Date", "Place/name", "PostalAddress",
           "streetAddress", "addressLocality", "telephone", "email", "URL", "EventStatusType",
           "EventAttendanceModeEnumeration", "Duration", "category", "price", "currency", "Organization")),
    Domain("LocalBusiness", 1.6, "LocalBusiness/name", ("streetAddress", "addressLocality", "addressRegion",
           "postalCode", "Country", "telephone", "faxNumber", "openingHours", "DayOfWeek", "priceRange",
           "Photograph", "Brand", "email", "URL", "CoordinateAT", "paymentAccepted")),
    Domain("JobPosting", 1.3, "JobPosting/name", ("JobPosting/description", "Organization", "DateTime", "Date",
           "CategoryCode", "MonetaryAmount", "workHours", "OccupationalExperienceRequirements",
           "EducationalOccupationalCredential", "addressLocality", "addressRegion", "postalCode", "Country",
           "currency")),
    Domain("Product", 2.0, "Product/name", ("Product/description", "Brand", "ProductModel", "price", "currency",
           "ItemAvailability", "OfferItemCondition", "DeliveryMethod", "unitCode", "unitText", "weight",
           "QuantitativeValue", "category", "IdentifierAT", "Photograph", "URL", "Review")),
    Domain("Hotel", 1.3, "Hotel/name", ("Hotel/description", "streetAddress", "addressLocality", "addressRegion",
           "postalCode", "Country", "telephone", "faxNumber", "priceRange", "paymentAccepted",
           "LocationFeatureSpecification", "CoordinateAT", "Time", "Brand", "Photograph", "email")),
    Domain("Recipe", 1.4, "Recipe/name", ("Recipe/description", "Person/name", "Duration", "Energy", "Mass",
           "RestrictedDiet", "ItemList", "QuantitativeValue", "Date", "DateTime", "category", "Review",
           "Photograph", "Time", "Number")),
    Domain("Movie", 1.2, "Movie/name", ("Movie/description", "Date", "Duration", "Rating", "MusicArtistAT",
           "Person/name", "Language", "Photograph", "URL", "Number", "Review")),
    Domain("Person", 0.8, "Person/name", ("GenderType", "Distance", "weight", "Date", "addressLocality", "Country",
           "Organization", "email", "telephone", "unitCode")),
    Domain("TVEpisode", 0.6, "TVEpisode/name", ("CreativeWorkSeries", "Date", "Duration", "Number", "Photograph",
           "URL")),
    Domain("SportsEvent", 0.6, "SportsEvent/name", ("SportsTeam", "DateTime", "Date", "Place/name",
           "addressLocality", "EventStatusType", "URL", "price")),
    Domain("MusicRecording", 0.7, "MusicRecording/name", ("MusicAlbum/name", "MusicArtistAT", "Duration", "Date",
           "URL")),
    Domain("MusicAlbum", 0.5, "MusicAlbum/name", ("ItemList", "MusicArtistAT", "Date", "Number", "URL")),
    Domain("CreativeWork", 0.6, "CreativeWork/name", ("DateTime", "Boolean", "Person/name", "URL", "Photograph",
           "Organization")),
    Domain("Restaurant", 0.9, "Restaurant/name", ("streetAddress", "addressLocality", "postalCode", "telephone",
           "priceRange", "openingHours", "Review", "PostalAddress", "Time", "paymentAccepted", "Photograph",
           "URL")),
    Domain("Museum", 0.6, "Museum/name", ("addressLocality", "streetAddress", "Country", "telephone",
           "openingHours", "Photograph", "URL", "CoordinateAT")),
    Domain("Place", 0.5, "Place/name", ("PostalAddress", "addressLocality", "CoordinateAT", "telephone", "URL",
           "Photograph")),
)

# --- headers --------------------------------------------------------------------------------------
_HEADERS: dict[str, tuple[str, ...]] = {
    "addressLocality": words("city|locality|town|City"), "postalCode": words("zip|postal code|zipcode|postcode|ZIP"),
    "addressRegion": words("state|region|province"), "Country": words("country|nation|country code"),
    "priceRange": words("price range|price level|cost"), "telephone": words("phone|telephone|tel|phone number|contact"),
    "faxNumber": words("fax|fax number|fax no"), "Date": words("date|published|release date|date published|start date"),
    "DateTime": words("datetime|date modified|timestamp|start|posted|last updated"),
    "paymentAccepted": words("payment|payment accepted|payment methods"), "DayOfWeek": words("days|day of week|open days"),
    "Review": words("review|reviews|review text|comment"), "Organization": words("publisher|organization|company|organizer"),
    "MusicArtistAT": words("artist|composer|music by|band"), "Photograph": words("image|photo|picture|thumbnail|img url"),
    "CoordinateAT": words("latitude|longitude|lat|lng|geo"), "EventAttendanceModeEnumeration": words("attendance mode|mode"),
    "EventStatusType": words("status|event status"), "currency": words("currency|price currency|cur"),
    "email": words("email|e-mail|contact email|mail"), "Time": words("time|check-in|checkout time|start time"),
    "LocationFeatureSpecification": words("amenities|features|facilities"), "Duration": words("duration|runtime|cook time|total time|length"),
    "Rating": words("rating|content rating|rated|certificate"), "CreativeWork": words("video|video id|youtube"),
    "RestrictedDiet": words("diet|suitable for diet|dietary"), "GenderType": words("gender|sex"),
    "CreativeWorkSeries": words("series|show|part of series"), "DeliveryMethod": words("delivery|shipping|delivery method"),
    "Boolean": words("available|is free|flag|isFamilyFriendly"), "MonetaryAmount": words("salary|base salary|pay|compensation"),
    "workHours": words("hours|work hours|schedule"), "OccupationalExperienceRequirements": words("experience|experience required"),
    "unitText": words("unit|unit text|uom"), "SportsTeam": words("team|teams|competitor|home team"),
    "ProductModel": words("model|model number|mpn|sku"), "openingHours": words("opening hours|hours|open"),
    "Language": words("language|lang|in language"), "BookFormatType": words("format|binding|book format"),
    "CategoryCode": words("category|occupational category|job category"), "OfferItemCondition": words("condition|item condition"),
    "EducationalOccupationalCredential": words("education|qualifications|degree"), "Energy": words("calories|energy|kcal"),
    "PostalAddress": words("address|location|venue address"), "Brand": words("brand|manufacturer|chain"),
    "ItemList": words("instructions|steps|tracks|tracklist"), "unitCode": words("unit code|unit|uom code"),
    "Distance": words("height|distance|size"), "category": words("category|section|tags|type"),
    "QuantitativeValue": words("yield|servings|quantity|qty"), "weight": words("weight|shipping weight|wt"),
    "ItemAvailability": words("availability|stock|in stock"), "streetAddress": words("street|address|street address|address line 1"),
    "URL": words("url|link|website|page"), "IdentifierAT": words("isbn|gtin|ean|identifier|isbn13"),
    "price": words("price|cost|amount|sale price"), "Number": words("number|rating value|count|pages|episode number"),
    "Mass": words("fat|sugar|protein|carbs|sodium|nutrition"), "Person/name": words("author|name|director|by|person"),
}
_NAME_HEADERS = words("name|title|item|{d} name|{d}|{d} title|headline")
_DESC_HEADERS = words("description|summary|about|details|text|{d} description")
_LOCAL_HEADERS: dict[str, dict[str, str]] = {
    "de": {"price": "Preis", "telephone": "Telefon", "Date": "Datum", "addressLocality": "Ort", "postalCode": "PLZ",
           "streetAddress": "Straße", "Country": "Land", "Language": "Sprache", "name": "Name", "description": "Beschreibung"},
    "fr": {"price": "prix", "telephone": "téléphone", "Date": "date", "addressLocality": "ville", "postalCode": "code postal",
           "streetAddress": "adresse", "Country": "pays", "Language": "langue", "name": "nom", "description": "description"},
    "es": {"price": "precio", "telephone": "teléfono", "Date": "fecha", "addressLocality": "ciudad", "postalCode": "código postal",
           "streetAddress": "dirección", "Country": "país", "Language": "idioma", "name": "nombre", "description": "descripción"},
}
_CONTEXT_HEADERS = {"id": words("id|ID|#|row|item id"), "count": words("count|reviews|votes|views|qty sold"),
                    "slug": words("slug|path|handle|key"), "percent": words("discount|percent|share"),
                    "code": words("code|ref|reference|sku"), "flag": words("featured|active|visible")}


def _header_for(label: str | None, kind: str, domain: str, lang: str, rng: random.Random) -> str:
    if label is None:
        base = rng.choice(_CONTEXT_HEADERS.get(kind, words("col|field|value|info")))
    elif label.endswith("/name"):
        base = _LOCAL_HEADERS[lang]["name"] if lang in _LOCAL_HEADERS and rng.random() < 0.5 else rng.choice(_NAME_HEADERS)
    elif label.endswith("/description"):
        base = _LOCAL_HEADERS[lang]["description"] if lang in _LOCAL_HEADERS and rng.random() < 0.5 else rng.choice(_DESC_HEADERS)
    elif lang in _LOCAL_HEADERS and label in _LOCAL_HEADERS[lang] and rng.random() < 0.6:
        base = _LOCAL_HEADERS[lang][label]
    else:
        base = rng.choice(_HEADERS.get(label, (label.split("/")[0],)))
    base = base.replace("{d}", domain.lower())
    return _noisy(base, rng)


def _noisy(h: str, rng: random.Random) -> str:
    """Headers on the web are inconsistent: vary case and separators, sometimes abbreviate."""
    r = rng.random()
    if r < 0.35:
        return h
    if r < 0.50:
        return h.title()
    if r < 0.62:
        return h.lower().replace(" ", "_")
    if r < 0.72:
        parts = h.split()
        return parts[0].lower() + "".join(p.capitalize() for p in parts[1:])
    if r < 0.80:
        return h.upper()
    if r < 0.87:
        return h.replace(" ", "")[:4].lower()
    if r < 0.93:
        return f"{h} {rng.randint(1, 3)}"
    return rng.choice(("", "Unnamed: {}".format(rng.randint(1, 9)), "col{}".format(rng.randint(1, 9))))


# --- unlabelled context columns -------------------------------------------------------------------
def _context_column(kind: str, n: int, rng: random.Random) -> list[str]:
    if kind == "id":
        start = rng.randint(1, 90000)
        return [str(start + i * rng.choice((1, 1, 7))) for i in range(n)]
    if kind == "count":
        return [str(rng.randint(0, 5000)) for _ in range(n)]
    if kind == "slug":
        pool = words("blue|sale|item|new|classic|summer|home|best|mini|pro|xl|set|pack")
        return ["-".join(rng.sample(pool, rng.randint(2, 4))) for _ in range(n)]
    if kind == "percent":
        return [f"{rng.randint(0, 70)}%" for _ in range(n)]
    if kind == "code":
        p = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
        return [f"{p}-{rng.randint(1000, 99999)}" for _ in range(n)]
    return [rng.choice(("0", "1", "yes", "no")) for _ in range(n)]  # "flag"


_CONTEXT_KINDS = tuple(_CONTEXT_HEADERS)
# Labels whose SOTAB cells sometimes hold several "; "-joined values (one product, several offers).
_MULTI_VALUE_LABELS = frozenset({"price", "currency", "ItemAvailability", "OfferItemCondition", "Number",
                                 "category", "Review", "QuantitativeValue", "DeliveryMethod"})


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; the defaults imitate SOTAB V2's CTA training tables."""

    locales: tuple[tuple[str, float], ...] = DEFAULT_LOCALES
    headerless_fraction: float = 0.5
    missing_rate: float = 0.08  # mean fraction of missing cells in a column that has missing cells
    min_cols: int = 2
    max_cols: int = 8
    min_rows: int = 3
    max_rows: int = 20
    p_unannotated_domain_column: float = 0.3  # a context column of a domain type left unlabelled
    p_multi_value: float = 0.15  # "; "-joined offer values (of _MULTI_VALUE_LABELS columns), as in SOTAB
    p_html_escaped: float = 0.06  # columns scraped with HTML entities left in ("&amp;", "&#8217;")
    domains: tuple[Domain, ...] = field(default=DOMAINS)

    def __post_init__(self) -> None:
        if not 0.0 <= self.headerless_fraction <= 1.0:
            raise ValueError(f"synthetic tables: headerless_fraction must be in [0, 1], got {self.headerless_fraction}")
        if not 0.0 <= self.missing_rate <= 0.5:
            raise ValueError(f"synthetic tables: missing_rate must be in [0, 0.5], got {self.missing_rate}")
        if not 2 <= self.min_cols <= self.max_cols or not 1 <= self.min_rows <= self.max_rows:
            raise ValueError("synthetic tables: need 2 <= min_cols <= max_cols and 1 <= min_rows <= max_rows")
        if not self.locales or any(w <= 0 for _, w in self.locales):
            raise ValueError("synthetic tables: locales must be a non-empty list with positive weights")
        for loc, _ in self.locales:
            check_locale(loc)


def _html_escape(col: list[str], rng: random.Random) -> list[str]:
    """Web extractions often keep HTML entities; one column (one site) does it one way."""
    apos = rng.choice(("&#8217;", "&#39;", "&rsquo;", "'"))
    return [v.replace("&", "&amp;").replace("'", apos).replace('"', rng.choice(('&quot;', '\\"'))) for v in col]


def _weighted_sample(items: list[str], weights: list[float], k: int, rng: random.Random) -> list[str]:
    """k distinct items, item i drawn with weight w_i (Efraimidis-Spirakis keys u**(1/w))."""
    keyed = sorted(((rng.random() ** (1.0 / w), it) for it, w in zip(items, weights)), reverse=True)
    return [it for _, it in keyed[: max(0, k)]]


def _label_weights(domains: tuple[Domain, ...]) -> dict[str, float]:
    """Inverse of each label's expected share, so that labels found in one small domain (Energy
    in Recipe) are not 25x rarer than labels every domain has (URL, Date). SOTAB's training
    split is balanced per label, and so should the default training data be, roughly."""
    total = sum(d.weight for d in domains)
    share: dict[str, float] = {}
    for d in domains:
        for lab in d.labels:
            share[lab] = share.get(lab, 0.0) + d.weight / total / len(d.labels)
    return {lab: 1.0 / v for lab, v in share.items()}


_LABEL_WEIGHT = _label_weights(DOMAINS)


def _missing(col: list[str], rate: float, rng: random.Random, keep: int) -> list[str]:
    """Blank out cells at `rate`, but keep at least `keep` real values (a labelled column must
    still show its type)."""
    out = list(col)
    idx = [i for i in range(len(out)) if rng.random() < rate]
    token = "" if rng.random() < 0.6 else rng.choice(MISSING_TOKENS)  # one site writes "missing" one way ...
    for i in idx[: max(0, len(out) - keep)]:
        out[i] = token if rng.random() < 0.85 else rng.choice(MISSING_TOKENS)  # ... mostly
    return out


def _make_table(index: int, seed: int, cfg: SynthConfig) -> tuple[Table, list[LabeledColumn]]:
    rng = random.Random(f"aegir-synth:{seed}:{index}")
    dom = rng.choices(cfg.domains, weights=[d.weight for d in cfg.domains])[0]
    locale = rng.choices([l for l, _ in cfg.locales], weights=[w for _, w in cfg.locales])[0]
    lang = locale.split("_")[0]
    n_cols = rng.randint(cfg.min_cols, cfg.max_cols)
    n_rows = rng.randint(cfg.min_rows, cfg.max_rows)

    # Which columns carry labels: usually the main name column plus 1-4 domain properties; the
    # rest are unlabelled context (SOTAB annotates only some columns of each table).
    pool = [lab for lab in dom.labels if lab in GENERATORS]
    n_ctx = min(n_cols - 1, rng.choice((0, 0, 1, 1, 2, 3)))
    n_lab = n_cols - n_ctx
    labels: list[str] = []
    if rng.random() < 0.85:
        labels.append(dom.main)
    labels += _weighted_sample(pool, [_LABEL_WEIGHT[lab] for lab in pool], n_lab - len(labels), rng)
    specs: list[tuple[str | None, str]] = [(lab, "label") for lab in labels]
    for _ in range(n_cols - len(specs)):
        if rng.random() < cfg.p_unannotated_domain_column:
            specs.append((None, "domain:" + rng.choice(pool)))
        else:
            specs.append((None, rng.choice(_CONTEXT_KINDS)))
    main_first = bool(labels) and labels[0] == dom.main and rng.random() < 0.8
    head, rest = (specs[:1], specs[1:]) if main_first else ([], specs)
    rng.shuffle(rest)
    specs = head + rest

    columns: list[list[str]] = []
    header: list[str] = []
    targets: list[LabeledColumn] = []
    for j, (label, kind) in enumerate(specs):
        # the type the values have: the label, or for an unannotated domain column its hidden type
        value_type = label if label is not None else (kind[7:] if kind.startswith("domain:") else None)
        if value_type is not None:
            col = generate_column(value_type, n_rows, rng, locale, domain=dom.name)
        else:
            col = _context_column(kind, n_rows, rng)
        if rng.random() < cfg.p_html_escaped:
            col = _html_escape(col, rng)
        if value_type in _MULTI_VALUE_LABELS and rng.random() < cfg.p_multi_value:
            # one entity with several offers: "InStock; InStock", "30.4; 27.57; 43.32"
            col = ["; ".join([v] + rng.sample(col, min(len(col), rng.randint(1, 3)))) for v in col]
        if rng.random() < 0.5:
            rate = rng.uniform(0.0, 2.0 * cfg.missing_rate)
            col = _missing(col, rate, rng, keep=(n_rows + 1) // 2 if label is not None else 0)
        columns.append(col)
        header.append(_header_for(value_type, kind, dom.name, lang, rng))
        if label is not None:
            targets.append(LabeledColumn(table_index=index, column=j, labels=(label,)))

    headerless = rng.random() < cfg.headerless_fraction
    meta = {"name": f"{dom.name}_synth-s{seed}-{index:06d}", "domain": dom.name, "source": "synthetic",
            "locale": locale}
    return Table(columns=columns, header=None if headerless else header, meta=meta), targets


def generate_tables(
    n_tables: int,
    seed: int = 0,
    *,
    locales: list[str] | tuple[str, ...] | None = None,
    headerless_fraction: float = 0.5,
    missing_rate: float = 0.08,
    config: SynthConfig | None = None,
) -> LabeledDataset:
    """`n_tables` synthetic SOTAB-like tables with CTA targets (task "cta", source "synthetic").

    locales: Faker locales to draw each table's locale from (uniformly); None = DEFAULT_LOCALES
        (weighted towards en_US like the web). headerless_fraction / missing_rate: see SynthConfig.
    config: full control; when given, it wins over locales/headerless_fraction/missing_rate.
    """
    if isinstance(n_tables, bool) or not isinstance(n_tables, int) or n_tables < 0:
        raise ValueError(f"synthetic tables: n_tables must be a non-negative int, got {n_tables!r}")
    if config is None:
        locs = DEFAULT_LOCALES if locales is None else tuple((l, 1.0) for l in locales)
        config = SynthConfig(locales=locs, headerless_fraction=headerless_fraction, missing_rate=missing_rate)
    tables: list[Table] = []
    targets: list[LabeledColumn] = []
    for i in range(n_tables):
        t, tg = _make_table(i, seed, config)
        tables.append(t)
        targets.extend(tg)
    return LabeledDataset(tables=tables, targets=targets, task="cta", multi_label=False, source="synthetic")


__all__ = ["DOMAINS", "DEFAULT_LOCALES", "MISSING_TOKENS", "SUPPORTED_LABELS", "Domain", "SynthConfig",
           "generate_column", "generate_tables"]
