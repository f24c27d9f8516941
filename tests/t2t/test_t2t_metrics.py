"""Metrics against hand-computed values (Wu et al.'s cell F1, header F1, schema F1, sanity)."""

import pytest
import sacrebleu

from aegir.t2t.datasets import load_e2e, load_rotowire, synthetic_examples
from aegir.t2t.gold import GoldTable
from aegir.t2t.metrics import (
    cell_f1,
    chrf_sim,
    end_to_end_score,
    quick_table_sanity,
    schema_f1,
)
from aegir.t2t.schema import Field, Schema, build_assistant_schema, canonical_gold, gold_to_rows, rows_to_tables

GOLD = canonical_gold(GoldTable.from_pairs([["Name", "Alimentum"], ["Area", "City centre"], ["Family friendly", "No"]]))


def kv(**pairs):
    return GoldTable.from_pairs([[k, v] for k, v in pairs.items()])


def test_gold_vs_gold_is_one_everywhere(shared_data):
    docs = [canonical_gold(e.tables) for e in load_e2e(limit=300)] + \
           [canonical_gold(e.tables) for e in load_rotowire()] + \
           [canonical_gold(e.tables) for e in synthetic_examples(20, seed=1)]
    for sim in ("exact", "chrf"):
        for norm in (False, True):
            c = cell_f1(docs, docs, sim=sim, normalize=norm)
            assert (c.precision, c.recall, c.f1) == (1.0, 1.0, 1.0)
            assert c.row_header_f1 == 1.0 and c.col_header_f1 == 1.0
            assert c.n_tables == 300 + 10 + 20 + 4  # Rotowire: 2 tables/doc; 4 of 20 synthetic docs are games (2 tables)
    assert set(c.by_name) == {"", "team", "player"}  # single-table documents carry no table name


def test_wrong_header_zeroes_the_cell_under_exact():
    pred = kv(name="Alimentum", area="City centre", food="No")
    c = cell_f1([pred], [GOLD])
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3) and c.f1 == pytest.approx(2 / 3)
    # row headers of key/value gold are its keys: 2 of 3 right
    assert c.row_header_f1 == pytest.approx(2 / 3) and c.col_header_f1 is None


def test_raw_vs_normalised():
    pred = kv(name="Alimentum", area="city  centre", family_friendly="No")
    assert cell_f1([pred], [GOLD]).f1 == pytest.approx(2 / 3)
    assert cell_f1([pred], [GOLD], normalize=True).f1 == 1.0


def test_extra_prediction_costs_precision_only():
    pred = kv(name="Alimentum", area="City centre", family_friendly="No", near="Café Rouge")
    c = cell_f1([pred], [GOLD])
    assert (c.precision, c.recall) == (pytest.approx(3 / 4), 1.0)
    assert c.f1 == pytest.approx(2 * 0.75 / 1.75)


def test_chrf_matches_sacrebleu():
    for a, b in [("Blue spice", "Blue Spice"), ("city centre", "the city centre"), ("5", "50"), ("x", "y")]:
        assert chrf_sim(a, b) == pytest.approx(sacrebleu.sentence_chrf(a, [b]).score / 100)
    pred = canonical_gold(kv(Name="Blue spice"))
    gold = canonical_gold(kv(Name="Blue Spice"))
    expect = sacrebleu.sentence_chrf("Blue spice", ["Blue Spice"]).score / 100  # header chrF(name, name) = 1
    c = cell_f1(pred, gold, sim="chrf")
    assert c.precision == pytest.approx(expect) and c.f1 == pytest.approx(expect)
    assert cell_f1(pred, gold, sim="exact").f1 == 0.0
    assert cell_f1(pred, gold, sim="chrf", normalize=True).f1 == 1.0


def _players(*rows):
    return GoldTable(name="Player", header=["player", "points", "rebounds"], rows=[list(r) for r in rows],
                     row_header=True)


def test_duplicate_rows_are_not_rewarded_in_multi_row_mode():
    gold = _players(("Al", "17", "13"), ("Jeff", "17", ""))  # tuples: (Al,points,17) (Al,rebounds,13) (Jeff,points,17)
    once = cell_f1([_players(("Al", "17", "13"))], [gold])
    assert (once.precision, once.recall) == (1.0, pytest.approx(2 / 3))  # 2/2 predicted right, 2/3 gold found
    twice = cell_f1([_players(("Al", "17", "13"), ("Al", "17", "13"))], [gold])
    # Hungarian: copy 1 -> Al (2 tuples right), copy 2 -> Jeff (0 right): P = 2/4
    assert twice.precision == pytest.approx(0.5) and twice.recall == pytest.approx(2 / 3)
    assert twice.f1 == pytest.approx(4 / 7) and twice.f1 < once.f1
    # row order does not matter
    rev = cell_f1([_players(("Jeff", "17", ""), ("Al", "17", "13"))], [gold])
    assert rev.f1 == 1.0


def test_row_header_product_and_header_f1():
    gold = _players(("Al", "17", "13"), ("Jeff", "7", "2"))
    pred = _players(("Al", "17", "13"), ("Geoff", "7", "2"))  # wrong row header zeroes that row's cells
    c = cell_f1([pred], [gold])
    assert c.precision == pytest.approx(0.5) and c.recall == pytest.approx(0.5)
    assert c.row_header_f1 == pytest.approx(0.5)
    assert c.col_header_f1 == 1.0


def test_macro_average_missing_prediction_and_empty_gold():
    empty_gold = GoldTable("", ["a"], [[""]])
    c = cell_f1([GOLD[0], None, None], [GOLD[0], GOLD[0], empty_gold])
    assert c.n_tables == 2 and c.n_skipped == 1
    assert (c.precision, c.recall, c.f1) == (0.5, 0.5, 0.5)
    assert [t.f1 for t in c.per_table] == [1.0, 0.0]


def test_multi_table_documents_pair_by_name():
    team = GoldTable.from_grid([["", "Wins"], ["Hawks", "46"], ["Magic", "19"]], "Team")
    player = GoldTable.from_grid([["", "Points"], ["Al", "17"]], "Player")
    gold = canonical_gold([team, player])
    pred = [gold[1], GoldTable(name="team", header=["team", "wins"], rows=[["Hawks", "46"]], row_header=True)]
    c = cell_f1([pred], [gold])
    assert c.by_name == {"team": pytest.approx(2 / 3), "player": 1.0}  # team: P 1, R 1/2
    assert c.f1 == pytest.approx((2 / 3 + 1) / 2)


def test_schema_f1_exact_and_soft():
    gold = ["name", "area", "family_friendly"]
    s = schema_f1(["Name", "Area", "food"], gold)
    assert (s.precision, s.recall, s.f1) == (pytest.approx(2 / 3),) * 3
    soft = schema_f1(["Name", "Area", "kid_friendly"], gold, soft=True)
    k = sacrebleu.sentence_chrf("kid friendly", ["family friendly"]).score / 100
    assert soft.precision == pytest.approx((2 + k) / 3) and soft.recall == pytest.approx((2 + k) / 3)
    assert soft.f1 > schema_f1(["Name", "Area", "kid_friendly"], gold).f1
    assert schema_f1([], gold).f1 == 0.0 and schema_f1([], []).f1 == 1.0


def test_end_to_end_soft_header_alignment():
    g = GoldTable.from_pairs([["Name", "Alimentum"], ["Area", "City centre"], ["Family friendly", "No"]])
    ps = Schema("", "kv_single", (Field("restaurant_name"), Field("location_area"), Field("kid_friendly")))
    rows = [{"restaurant_name": "Alimentum", "location_area": "city centre", "kid_friendly": "No"}]
    assert cell_f1([rows_to_tables(rows, ps)], [canonical_gold(g)]).f1 == 0.0  # invented names: exact collapses
    e = end_to_end_score([ps], [rows], [[g]])
    assert e.alignments == [{"restaurant_name": "name", "location_area": "area", "kid_friendly": "family_friendly"}]
    assert e.cell.f1 == 1.0
    assert 0.0 < e.schema.f1 < 1.0
    # a missing pi_1 / pi_2 output scores 0
    assert end_to_end_score([None], [None], [[g]]).cell.f1 == 0.0


def test_end_to_end_multi_table_gold_schema_is_one(shared_data):
    ex = load_rotowire()[0]
    s = build_assistant_schema(ex.tables)
    e = end_to_end_score([s], [gold_to_rows(ex.tables, s)], [ex.tables], sim="exact", normalize=False)
    assert e.cell.f1 == 1.0 and e.schema.f1 == 1.0


def test_quick_table_sanity_hand_values():
    schema = Schema("", "flat_single_row", (Field("a"), Field("b", "integer", required=True)))
    comps = ['{"a":"x","b":1}\n{"b":2,"a":"y"}\n{"a":"z","b":"3"}', "garbage", ""]
    rep = quick_table_sanity(comps, schema)
    assert rep["json_valid_rate"] == pytest.approx(3 / 5)  # 3 valid of 3 + 1 + 1 (empty counts as one bad line)
    assert rep["key_order_pass_rate"] == pytest.approx(2 / 3)
    assert rep["type_check_pass_rate"] == pytest.approx(2 / 3)  # "3" is not an integer
    assert rep["n_rows"] == 3 and rep["strict_ok_rate"] == pytest.approx(1 / 3)
    # enum / pattern / required null
    s2 = Schema("", "flat_single_row", (Field("c", enum=("yes", "no")), Field("d", pattern=r"\d{4}"),
                                        Field("e", required=True)))
    rep2 = quick_table_sanity(['{"c":"yes","d":"1999","e":"x"}\n{"c":"maybe","d":"1999","e":"x"}\n'
                               '{"c":null,"d":"99","e":"x"}\n{"c":"no","d":null,"e":null}'], [s2])
    assert rep2["type_check_pass_rate"] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="2 schemas"):
        quick_table_sanity(["{}"], [schema, schema])


def test_sanity_accepts_table_ground_truth_strings():
    from aegir.t2t.datasets import build_sft_records

    recs = build_sft_records(synthetic_examples(5, seed=4), "table")
    rep = quick_table_sanity([r["messages"][2]["content"] for r in recs], [r["ground_truth"] for r in recs])
    assert rep["json_valid_rate"] == rep["key_order_pass_rate"] == rep["type_check_pass_rate"] == 1.0


def test_metrics_and_rewards_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, aegir.t2t.metrics, aegir.t2t.rewards, aegir.t2t.datasets, aegir.t2t.scoring;"
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_key_value_row_headers_do_not_depend_on_prediction_shape():
    # two predicted rows for key/value gold: cells pool (Wu's sets), keys still count as row headers
    pred = GoldTable("", ["name", "area", "family_friendly"], [["Alimentum", "", ""], ["", "City centre", ""]])
    c = cell_f1([pred], [GOLD])
    assert c.precision == 1.0 and c.recall == pytest.approx(2 / 3)
    assert c.row_header_f1 == pytest.approx(0.8)  # keys {name, area} vs {name, area, family_friendly}
