"""Schema targets: names, collisions, ids, structures, JSON round trips and errors."""

import json
import subprocess
import sys

import pytest

from aegir.tables.table import Table
from aegir.t2t.datasets import load_e2e, load_rotowire, load_wikitabletext, synthetic_examples
from aegir.t2t.gold import GoldTable
from aegir.t2t.schema import (
    Field,
    Schema,
    SchemaError,
    build_assistant_schema,
    canonical_gold,
    detect_structure,
    gold_to_rows,
    normalize_field_name,
    rows_to_tables,
    unique_field_names,
)


@pytest.mark.parametrize("raw,expected", [
    ("Family friendly", "family_friendly"),
    ("familyFriendly", "family_friendly"),
    ("eatType", "eat_type"),
    ("HTTPServer port", "http_server_port"),
    ("  Price   range ", "price_range"),
    ("3-pointers made", "3_pointers_made"),
    ("FG%", "fg_percent"),
    ("Lörrach (city)", "lorrach_city"),
    ("already_snake", "already_snake"),
    ("__x__", "x"),
    ("", "field"),
    ("???", "field"),
])
def test_normalize_field_name(raw, expected):
    assert normalize_field_name(raw) == expected


def test_collisions_get_numbered_suffixes():
    assert unique_field_names(["Name", "name", "NAME"]) == ["name", "name_2", "name_3"]
    # a later natural "name_2" collides with the generated one and is suffixed in turn
    assert unique_field_names(["Name", "name", "name_2"]) == ["name", "name_2", "name_2_2"]
    assert unique_field_names(["", ""]) == ["field", "field_2"]


def test_build_assistant_schema_uses_headers_only():
    a = GoldTable.from_pairs([["Name", "Alimentum"], ["Area", "City centre"], ["area", "riverside"]])
    b = GoldTable.from_pairs([["Name", "Zizzi"], ["Area", "Riverside"], ["area", "x"]])
    sa, sb = build_assistant_schema(a), build_assistant_schema(b)
    assert sa == sb  # values never reach the schema
    assert sa.field_names == ["name", "area", "area_2"]
    assert all(f.type == "string" and f.required is False for f in sa.fields)
    assert sa.structure == "kv_single"


def test_schema_id_is_stable_across_key_orders_and_processes():
    s = Schema(schema_id="", structure="flat_single_row", fields=(Field("name"), Field("price", "number", True)))
    d = json.loads(s.to_json())
    # permute every object's key order
    permuted = {"fields": [dict(reversed(list(f.items()))) for f in d["fields"]], "structure": d["structure"],
                "schema_id": d["schema_id"]}
    assert Schema.from_json(json.dumps(permuted)).schema_id == s.schema_id
    assert Schema.from_json(json.dumps(permuted)).to_json() == s.to_json()
    code = ("from aegir.t2t.schema import Schema, Field;"
            "print(Schema('', 'flat_single_row', (Field('name'), Field('price', 'number', True))).schema_id)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == s.schema_id
    # the id changes with the content (field order is part of the schema)
    s2 = Schema(schema_id="", structure="flat_single_row", fields=(Field("price", "number", True), Field("name")))
    assert s2.schema_id != s.schema_id


def test_to_json_is_canonical_and_compact():
    s = build_assistant_schema(["Name", "Area"])
    assert s.to_json(include_id=False) == (
        '{"structure":"flat_single_row","fields":[{"name":"name","type":"string","required":false},'
        '{"name":"area","type":"string","required":false}]}')
    assert s.to_json().startswith('{"schema_id":"s_')
    assert Schema.from_json(s.to_json(include_id=False)) == s


@pytest.mark.parametrize("text,needle", [
    ("{not json", "invalid JSON"),
    ("[]", "expected a JSON object"),
    ('{"fields":[{"name":"a"}]}', "missing field 'structure'"),
    ('{"structure":"tree","fields":[{"name":"a"}]}', "structure 'tree'"),
    ('{"structure":"kv_single","fields":[]}', "non-empty list"),
    ('{"structure":"kv_single","fields":[{"name":"a","type":"uuid"}]}', "fields[0]"),
    ('{"structure":"kv_single","fields":[{"name":"a"},{"name":"a"}]}', "duplicate field name"),
    ('{"structure":"kv_single","fields":[{"name":"a","pattern":"("}]}', "bad regex"),
    ('{"structure":"kv_single","fields":[{"name":"a"}],"colour":1}', "unknown key"),
    ('{"structure":"multi_row","fields":[{"name":"a"}],"row_key":"b"}', "row_key 'b'"),
    ('{"structure":"kv_single","tables":[{"name":"t","fields":[{"name":"a"}]}]}', "need structure 'multi_row'"),
    ('{"structure":"multi_row","tables":[{"name":"t","fields":[{"name":"a"}]},{"name":"t","fields":[{"name":"b"}]}]}',
     "duplicate table names"),
    ('{"structure":"multi_row","tables":[{"fields":[{"name":"a"}]}]}', "tables[0]: 'name'"),
])
def test_from_json_errors_are_clear(text, needle):
    with pytest.raises(SchemaError) as e:
        Schema.from_json(text)
    assert needle in str(e.value)


def test_strict_id_check():
    s = build_assistant_schema(["a"])
    bad = json.loads(s.to_json())
    bad["schema_id"] = "s_0000"
    assert Schema.from_json(json.dumps(bad)).schema_id == s.schema_id
    with pytest.raises(SchemaError, match="does not match"):
        Schema.from_json(json.dumps(bad), strict_id=True)


def test_detect_structure_shapes():
    assert detect_structure(GoldTable.from_pairs([["a", "1"]])) == "kv_single"
    assert detect_structure(GoldTable("", ["a", "b"], [["1", "2"]])) == "flat_single_row"
    assert detect_structure(GoldTable("", ["a", "b"], [["1", "2"], ["3", "4"]])) == "multi_row"
    assert detect_structure(GoldTable.from_grid([["", "pts"], ["Al", "3"]], "Player")) == "multi_row"
    assert detect_structure(Table.from_rows([["1", "2"]], header=["a", "b"])) == "flat_single_row"
    assert detect_structure(Table.from_rows([["1"], ["2"]], header=["a"])) == "multi_row"
    assert detect_structure(Table.from_rows([["x"]], header=["k"], meta={"kv": True})) == "kv_single"


def test_detect_structure_on_shared_datasets(shared_data):
    assert {detect_structure(e.tables) for e in load_e2e(limit=200)} == {"kv_single"}
    assert {detect_structure(e.tables) for e in load_wikitabletext(limit=200)} == {"kv_single"}
    roto = load_rotowire()
    assert {detect_structure(e.tables) for e in roto} == {"multi_row"}
    s = build_assistant_schema(roto[0].tables)
    assert [t.name for t in s.tables] == ["team", "player"]
    assert s.tables[0].row_key == "team" and s.tables[1].row_key == "player"
    assert s.tables[0].field_names[:3] == ["team", "losses", "total_points"]


def test_detect_structure_on_synthetic():
    got = {detect_structure(e.tables) for e in synthetic_examples(10, seed=3)}
    assert got == {"kv_single", "flat_single_row", "multi_row"}


def test_gold_rows_round_trip_multi_table():
    team = GoldTable.from_grid([["", "Wins", "Losses"], ["Hawks", "46", ""], ["Magic", "19", "41"]], "Team")
    player = GoldTable.from_grid([["", "Points"], ["Al Horford", "17"]], "Player")
    s = build_assistant_schema([team, player])
    rows = gold_to_rows([team, player], s)
    assert rows[0] == {"_table": "team", "team": "Hawks", "wins": "46", "losses": None}
    assert list(rows[0]) == s.key_order("team")
    back = rows_to_tables(rows, s)
    assert back == canonical_gold([team, player])
    assert back[0].header == ["team", "wins", "losses"] and back[0].rows[0] == ["Hawks", "46", ""]


def test_multi_table_schema_json_round_trip():
    team = GoldTable.from_grid([["", "Wins"], ["Hawks", "46"]], "Team")
    player = GoldTable.from_grid([["", "Points"], ["Al", "17"]], "Player")
    s = build_assistant_schema([team, player])
    assert Schema.from_json(s.to_json()) == s
    assert s.field_names == ["team.team", "team.wins", "player.player", "player.points"]
