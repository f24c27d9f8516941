"""The first-row guess of read_csv(header="infer"): each column's vote by hand, the decision, and the
rate on real headerless tables (docs/results/header_guess.md has the full comparison)."""

import csv

from aegir.tables.readers.csv import read_csv
from aegir.tables.readers.header import Vote, column_vote, guess_header, shape
from aegir.tables.readers.sotab import read_sotab_table


def test_shape_collapses_character_classes():
    assert [shape(s) for s in ("2020-9-26", "PT30M", "Soap Opera", "a_b1")] == ["9-9-9", "A9A", "Aa Aa", "a_a9"]


def test_each_rule_votes_as_documented():
    assert column_vote("InStock", ["InStock", "OutOfStock"]) == Vote(-1, "recurs")
    # One letter may be a name ("A") as often as a value: not "recurs", but fixed-width letters still vote.
    assert column_vote("A", ["A", "I"]) == Vote(-1, "length")
    assert column_vote("age", ["31", "42"]) == Vote(2, "text over numbers")
    assert column_vote("1940", ["22.2", "10.5"]) == Vote(-2, "number")
    assert column_vote("2020-12-31", ["2020-9-26", "2020-9-30"]) == Vote(-1, "shape")
    assert column_vote("iso3", ["ARG", "AUT", "BHR"]) == Vote(1, "other length")
    assert column_vote("BEL", ["ARG", "AUT", "BHR"]) == Vote(-1, "length")
    assert column_vote("duration", ["PD1TH0M0", "PD2TH0M0"]) == Vote(0, "")  # same length, other shape: chance
    assert column_vote("A long title that runs well past forty characters", ["x y", "z"]) == Vote(-1, "value")
    assert column_vote("https://a.org/x", ["https://b.org/y x"]) == Vote(-1, "value")
    assert column_vote("first_name", ["Ann", "Bobby"]) == Vote(1, "identifier")
    assert column_vote("name", ["Ann", "Bobby"]) == Vote(0, "")
    assert column_vote("", ["Ann"]) == Vote(0, "") and column_vote("x", []) == Vote(0, "")


def test_the_side_with_more_votes_wins_and_a_tie_falls_back_to_names():
    # A SOTAB-like table: "Soap Opera Digest" recurs, the dates share a shape: two votes for data.
    rows = [["Soap Opera Digest", "February 11, 2019"], ["Soap Opera Digest", "October 4, 2018"],
            ["Woman's Day", "October 2019"]]
    g = guess_header(rows)
    assert (g.has_header, g.how, g.header_votes, g.data_votes) == (False, "evidence", 0, 2)
    g = guess_header([["name", "age"], ["Ann", "31"], ["Bobby", "42"]])
    assert (g.has_header, g.how, g.header_votes, g.data_votes) == (True, "evidence", 2, 0)
    g = guess_header([["alpha", "beta"], ["gamma", "delta"]])  # nothing either way: taken for names
    assert (g.has_header, g.how) == (True, "names")
    g = guess_header([["x", "x"], ["gamma", "delta"]])  # a tie, and a first row that cannot be names
    assert (g.has_header, g.how) == (False, "tie")


def test_read_csv_reads_a_headerless_text_table_as_data(tmp_path):
    p = tmp_path / "books.csv"
    p.write_text("Two Koala Bears in a Tree,InStock,2020-06-06\nEarly Music,InStock,2020-06-12\n"
                 "Abstract Tones,OutOfStock,2020-07-01\n")
    t = read_csv(p)
    assert (t.header, t.n_rows, t.meta["header"]) == (None, 3, "evidence")  # the reader before took row 1 for names


def test_real_headerless_tables_are_mostly_read_as_data(shared_data, tmp_path):
    """The SOTAB V2 validation tables as headerless CSVs: the reader before took 48 of 199 first rows
    for a header; with the column votes none (benchmark: 0). A regression bound, not the figure."""
    files = sorted((shared_data / "sotab_v2_sample" / "CTA" / "Validation").glob("*.json.gz"))
    assert len(files) == 199
    headed = []
    for f in files:
        p = tmp_path / (f.name + ".csv")
        with open(p, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(read_sotab_table(f).rows())
        if read_csv(p).meta["has_header"]:
            headed.append(f.name)
    assert len(headed) <= 4, headed
