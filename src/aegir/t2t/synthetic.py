"""Synthetic (document, table) pairs: the embedded default training data for both stages.

Each example draws an entity (or several) from a small domain model, keeps a random subset of its
attributes (so schemas vary and stay evidence-only), and renders it into a document with one of several
templates: prose, a key/value list, a markdown table, a bullet list, or a game report (two tables).
Every gold value appears verbatim in the document, so the gold is exactly what the text supports.

Deterministic: `synthetic_examples(n, seed)` gives the same list on every run and machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from aegir.t2t.gold import GoldTable

if TYPE_CHECKING:  # datasets imports this module: the class is imported where it is built
    from aegir.t2t.datasets import T2TExample

_FIRST = ["Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
          "Lars", "Maya", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
          "Wen", "Ximena", "Yusuf", "Zoe"]
_LAST = ["Abbott", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova",
         "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Schmidt",
         "Tanaka", "Ueda", "Varga", "Weber", "Yilmaz", "Zhou"]
_CITIES = ["Lyon", "Porto", "Gdansk", "Bergen", "Valencia", "Leipzig", "Turin", "Tampere", "Graz", "Cork",
           "Brno", "Utrecht", "Ghent", "Aarhus", "Bilbao", "Split"]
_COUNTRIES = ["France", "Portugal", "Poland", "Norway", "Spain", "Germany", "Italy", "Finland", "Austria",
              "Ireland", "Czechia", "Netherlands", "Belgium", "Denmark", "Croatia"]
_JOBS = ["architect", "chemist", "violinist", "civil engineer", "novelist", "cartographer", "surgeon",
         "economist", "photographer", "botanist"]
_TEAMS = ["Falcons", "Otters", "Comets", "Wolves", "Herons", "Titans", "Rockets", "Pilots", "Lynx", "Storm"]
_DEPTS = ["Sales", "Finance", "Research", "Support", "Logistics", "Legal", "Marketing"]
_ROLES = ["analyst", "manager", "engineer", "coordinator", "director", "designer"]


def _person(r: random.Random) -> str:
    return f"{r.choice(_FIRST)} {r.choice(_LAST)}"


@dataclass(frozen=True)
class _Attr:
    header: str
    gen: Callable[[random.Random], str]
    prose: tuple[str, ...]  # sentence fragments with {v} (and {s}: the subject)


_RESTAURANT = [
    _Attr("Name", lambda r: f"The {r.choice(['Golden', 'Blue', 'Old', 'Little', 'Green', 'Red'])} "
          f"{r.choice(['Lantern', 'Fig', 'Anchor', 'Olive', 'Harbour', 'Kettle'])}", ("{v}",)),
    _Attr("Cuisine", lambda r: r.choice(["Italian", "Japanese", "Indian", "French", "Mexican", "Greek"]),
          ("{s} serves {v} food.", "It is a {v} place.")),
    _Attr("Price range", lambda r: r.choice(["cheap", "moderate", "high", "less than £20", "£20-25"]),
          ("Prices are {v}.", "Its price range is {v}.")),
    _Attr("Area", lambda r: r.choice(["city centre", "riverside", "old town", "harbour district"]),
          ("It is located in the {v}.", "You will find it in the {v}.")),
    _Attr("Customer rating", lambda r: r.choice(["1 out of 5", "3 out of 5", "5 out of 5", "low", "average"]),
          ("Customers rate it {v}.", "It has a customer rating of {v}.")),
    _Attr("Family friendly", lambda r: r.choice(["yes", "no"]), ("Family friendly: {v}.",)),
    _Attr("Near", lambda r: f"the {r.choice(['Rialto', 'Crown', 'Mill', 'Station'])} {r.choice(['Hotel', 'Cafe', 'Bridge'])}",
          ("It is near {v}.", "It sits close to {v}.")),
]
_PERSON = [
    _Attr("Name", _person, ("{v}",)),
    _Attr("Occupation", lambda r: r.choice(_JOBS), ("{s} works as a {v}.", "By profession {s} is a {v}.")),
    _Attr("Birth year", lambda r: str(r.randint(1931, 2001)), ("{s} was born in {v}.",)),
    _Attr("Birth place", lambda r: r.choice(_CITIES), ("{s} grew up in {v}.", "Their home town is {v}.")),
    _Attr("Nationality", lambda r: r.choice(["French", "Portuguese", "Polish", "Norwegian", "Spanish", "German"]),
          ("{s} holds {v} citizenship.",)),
    _Attr("Awards", lambda r: str(r.randint(1, 9)), ("{s} has won {v} awards.",)),
    _Attr("Employer", lambda r: f"{r.choice(_LAST)} & {r.choice(_LAST)}", ("{s} is employed by {v}.",)),
]
_PRODUCT = [
    _Attr("Product", lambda r: f"{r.choice(['Nova', 'Atlas', 'Zephyr', 'Orion', 'Vela'])} "
          f"{r.choice(['X2', '300', 'Pro', 'Mini', 'S'])}", ("{v}",)),
    _Attr("Brand", lambda r: r.choice(["Kestrel", "Lumen", "Brightway", "Northwind"]), ("It is made by {v}.",)),
    _Attr("Price", lambda r: f"${r.randint(19, 899)}.{r.choice(['00', '49', '99'])}", ("It costs {v}.",)),
    _Attr("Colour", lambda r: r.choice(["black", "silver", "sand", "forest green", "navy"]),
          ("It comes in {v}.",)),
    _Attr("Weight", lambda r: f"{r.randint(120, 2400)} g", ("It weighs {v}.",)),
    _Attr("Release year", lambda r: str(r.randint(2012, 2025)), ("It was released in {v}.",)),
    _Attr("Warranty", lambda r: f"{r.randint(1, 5)} years", ("The warranty lasts {v}.",)),
]
_EMPLOYEE = [
    _Attr("Employee", _person, ("{v}",)),
    _Attr("Department", lambda r: r.choice(_DEPTS), ("in {v}",)),
    _Attr("Role", lambda r: r.choice(_ROLES), ("as {v}",)),
    _Attr("Start year", lambda r: str(r.randint(2001, 2024)), ("since {v}",)),
    _Attr("Office", lambda r: r.choice(_CITIES), ("based in {v}",)),
]


def _subset(r: random.Random, attrs: list[_Attr], keep_first: bool = True) -> list[_Attr]:
    """The first attribute (the entity's name) always, plus a random non-empty subset in schema order."""
    rest = [a for a in attrs[1:] if r.random() < 0.7] or [r.choice(attrs[1:])]
    return ([attrs[0]] if keep_first else []) + rest


def _render_record(r: random.Random, attrs: list[_Attr], values: list[str], style: str, pronoun: str) -> str:
    subj = values[0]
    if style == "kv_list":
        sep = r.choice([": ", " - ", " = "])
        return "\n".join(f"{a.header}{sep}{v}" for a, v in zip(attrs, values))
    if style == "markdown":
        head = "| " + " | ".join(a.header for a in attrs) + " |"
        rule = "|" + "|".join("---" for _ in attrs) + "|"
        return "\n".join([head, rule, "| " + " | ".join(values) + " |"])
    # prose: one fragment per attribute (the name opens the text), in a shuffled order
    sentences = []
    for a, v in list(zip(attrs, values))[1:]:
        sentences.append(r.choice(a.prose).format(v=v, s=r.choice([subj, pronoun])))
    r.shuffle(sentences)
    opener = r.choice(["{s} is worth knowing about.", "Here is a note on {s}.", "Consider {s}."]).format(s=subj)
    return " ".join([opener] + sentences)


def _record_example(r: random.Random, attrs_all: list[_Attr], style: str, kv: bool,
                    pronoun: str = "It") -> tuple[str, list[GoldTable]]:
    attrs = _subset(r, attrs_all)
    values = [a.gen(r) for a in attrs]
    doc = _render_record(r, attrs, values, style, pronoun)
    if kv:
        g = GoldTable.from_pairs([[a.header, v] for a, v in zip(attrs, values)])
    else:
        g = GoldTable(name="", header=[a.header for a in attrs], rows=[values])
    return doc, [g]


def _roster_example(r: random.Random, style: str) -> tuple[str, list[GoldTable]]:
    attrs = _subset(r, _EMPLOYEE)
    n = r.randint(2, 5)
    names: set[str] = set()
    rows = []
    while len(rows) < n:
        vals = [a.gen(r) for a in attrs]
        if vals[0] in names:
            continue  # row headers must be unique, or the gold itself is ambiguous
        names.add(vals[0])
        rows.append(vals)
    if style == "markdown":
        head = "| " + " | ".join(a.header for a in attrs) + " |"
        rule = "|" + "|".join("---" for _ in attrs) + "|"
        doc = "\n".join(["Team roster:", head, rule] + ["| " + " | ".join(v) + " |" for v in rows])
    else:
        lines = ["Staff list:"]
        for v in rows:
            frag = [a.prose[0].format(v=x) for a, x in zip(attrs[1:], v[1:])]
            lines.append(f"* {v[0]}, " + ", ".join(frag) if frag else f"* {v[0]}")
        doc = "\n".join(lines)
    return doc, [GoldTable(name="Employee", header=["Employee"] + [a.header for a in attrs[1:]], rows=rows,
                           row_header=True)]


def _game_example(r: random.Random) -> tuple[str, list[GoldTable]]:
    home, away = r.sample(_TEAMS, 2)
    hp, ap = r.randint(80, 130), r.randint(80, 130)
    if hp == ap:
        hp += 3
    hw, hl, aw, al = r.randint(5, 50), r.randint(5, 50), r.randint(5, 50), r.randint(5, 50)
    winner, loser = (home, away) if hp > ap else (away, home)
    sents = [f"The {home} ({hw} - {hl}) {'beat' if hp > ap else 'lost to'} the {away} ({aw} - {al}) "
             f"{max(hp, ap)} - {min(hp, ap)} on {r.choice(['Monday', 'Friday', 'Sunday'])}."]
    team = GoldTable(name="Team", header=["Team", "Wins", "Losses", "Total points"],
                     rows=[[home, str(hw), str(hl), str(hp)], [away, str(aw), str(al), str(ap)]], row_header=True)
    players = []
    used: set[str] = set()
    for _ in range(r.randint(2, 4)):
        name = _person(r)
        if name in used:
            continue
        used.add(name)
        pts, reb, ast = str(r.randint(2, 40)), str(r.randint(0, 15)), str(r.randint(0, 12))
        show_ast = r.random() < 0.6
        players.append([name, pts, reb, ast if show_ast else ""])
        team_of = r.choice([home, away])
        sents.append(f"{name} of the {team_of} had {pts} points and {reb} rebounds"
                     + (f", adding {ast} assists." if show_ast else "."))
    sents.append(f"The {winner} next face the {r.choice([t for t in _TEAMS if t not in (home, away)])}, while "
                 f"the {loser} head home.")
    player = GoldTable(name="Player", header=["Player", "Points", "Total rebounds", "Assists"], rows=players,
                       row_header=True)
    return " ".join(sents), [team, player]


_KINDS = ("restaurant", "person", "product", "roster", "game")


def synthetic_examples(n: int, seed: int = 0) -> list[T2TExample]:
    """`n` synthetic examples cycling over domains and render styles, deterministic in `seed`."""
    from aegir.t2t.datasets import T2TExample

    if n < 0:
        raise ValueError(f"synthetic_examples: n must be >= 0, got {n}")
    out = []
    for i in range(n):
        r = random.Random(seed * 1_000_003 + i)
        kind = _KINDS[i % len(_KINDS)]
        if kind == "restaurant":
            style = r.choice(["prose", "prose", "kv_list"])
            doc, tabs = _record_example(r, _RESTAURANT, style, kv=True)
        elif kind == "person":
            style = r.choice(["prose", "kv_list"])
            doc, tabs = _record_example(r, _PERSON, style, kv=True, pronoun=r.choice(["She", "He"]))
        elif kind == "product":
            style = r.choice(["markdown", "prose", "kv_list"])
            doc, tabs = _record_example(r, _PRODUCT, style, kv=False)
        elif kind == "roster":
            style = r.choice(["markdown", "bullets"])
            doc, tabs = _roster_example(r, style)
        else:
            style = "report"
            doc, tabs = _game_example(r)
        out.append(T2TExample(id=f"synthetic-{seed}-{i}", document=doc, tables=tabs, source="synthetic",
                              metadata={"language": "en", "locale": "en-US", "table_hints": {}},
                              ))
        out[-1].extra["style"] = style
        out[-1].extra["domain"] = kind
    return out
