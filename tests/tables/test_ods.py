"""OpenDocument spreadsheets (.ods): files written by pandas through odfpy, and LibreOffice-style content.xml
(repeated rows and cells, merged cells, formatted text) written here, read back as Tables."""

import datetime as dt
import tracemalloc
import zipfile

import pandas as pd
import pytest

from aegir.tables import TableError
from aegir.tables.readers import read_table_file, sheet_names
from aegir.tables.readers import ods
from aegir.tables.readers.stdin import sniff_suffix

NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')


def write_ods(path, body: str, mimetype: str = "application/vnd.oasis.opendocument.spreadsheet", prolog: str = ""):
    """An .ods file as LibreOffice lays it out: `mimetype` stored first, then content.xml holding `body`
    (the sheets) inside office:spreadsheet."""
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<office:document-content {NS}><office:body>'
           f"<office:spreadsheet>{body}</office:spreadsheet></office:body></office:document-content>")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", xml, compress_type=zipfile.ZIP_DEFLATED)
    return path


def cell(text: str = "", repeat: int = 1, attrs: str = "") -> str:
    rep = f' table:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    inner = f"<text:p>{text}</text:p>" if text else ""
    return f"<table:table-cell{rep} {attrs}>{inner}</table:table-cell>"


def row(*cells: str, repeat: int = 1) -> str:
    rep = f' table:number-rows-repeated="{repeat}"' if repeat > 1 else ""
    return f"<table:table-row{rep}>{''.join(cells)}</table:table-row>"


def sheet(name: str, *rows: str) -> str:
    return f'<table:table table:name="{name}">{"".join(rows)}</table:table>'


def test_a_workbook_written_by_pandas_reads_back(tmp_path):
    df = pd.DataFrame({"city": ["Zürich", "Genève", "A Coruña"], "population": [415367, 0, 245711.5],
                       "founded": [dt.date(1218, 1, 1), dt.date(1000, 6, 1), dt.date(1208, 3, 4)],
                       "capital": [False, False, False]})
    path = tmp_path / "cities.ods"
    with pd.ExcelWriter(path, engine="odf") as w:
        pd.DataFrame({"Report": ["Cities of Europe"]}).to_excel(w, sheet_name="Cover", index=False, header=False)
        df.to_excel(w, sheet_name="Cities", index=False)
        df.head(2).to_excel(w, sheet_name="2019", index=False)
    assert sheet_names(path) == ["Cities", "2019"] and sheet_names(path, nonempty=False) == ["Cover", "Cities", "2019"]
    t = read_table_file(path)  # the first sheet holding a table: the cover's one title row is not one
    assert t.meta["source"] == "ods" and t.meta["sheet"] == "Cities" and t.meta["sheets"] == ["Cover", "Cities", "2019"]
    assert t.header == ["city", "population", "founded", "capital"] and t.meta["has_header"]
    assert t.columns[0] == ["Zürich", "Genève", "A Coruña"]
    assert t.columns[2] == ["1218-01-01", "1000-06-01", "1208-03-04"]  # ISO, not the shown 01/01/18
    assert t.columns[3] == ["FALSE"] * 3
    # odfpy writes the shown text 415367.0, and none for 0: the stored values, as a spreadsheet shows them.
    assert t.columns[1] == ["415367", "0", "245711.5"]
    assert read_table_file(path, sheet="2019").n_rows == 2 and read_table_file(path, sheet=2).n_rows == 2
    assert read_table_file(path, sheet=0, header=False).columns == [["Cities of Europe"]]
    with pytest.raises(TableError, match=r"cities.ods: no worksheet named 'Sales'; it has 'Cover', 'Cities', '2019'"):
        read_table_file(path, sheet="Sales")


def test_libreoffice_layout_repeats_merges_and_formatted_text(tmp_path):
    body = sheet(
        "Prices",
        "<table:table-column table:number-columns-repeated=\"1024\"/>",
        "<table:table-header-rows>" + row(cell("item"), cell("share"), cell("price"), cell("note"),
                                          cell(repeat=16380)) + "</table:table-header-rows>",
        row(cell("Tea  <text:s text:c=\"3\"/>leaves"),
            cell("15%", attrs='office:value-type="percentage" office:value="0.15"'),
            cell("1.234,50 €", attrs='office:value-type="currency" office:value="1234.5"'),
            '<table:table-cell><office:annotation><text:p>a comment</text:p></office:annotation>'
            '<text:p>first<text:line-break/>second</text:p><text:p><text:span>third</text:span>'
            '<text:tab/><text:a>link</text:a></text:p></table:table-cell>', cell(repeat=16380)),
        row(cell("Coffee", attrs='table:number-columns-spanned="2"'), "<table:covered-table-cell/>",
            cell(attrs='office:value-type="float" office:value="7.5"'),  # no shown text: the stored value
            cell(attrs='office:value-type="date" office:date-value="2024-05-06T13:45:00"')),
        row(cell(repeat=1024), repeat=5),  # blank rows between
        row(cell("Milk"), cell("0%"), cell("2,0", attrs='office:value-type="float" office:value="2"'), cell("x"),
            repeat=3),  # one row written once, repeated; a German locale's shown text kept
        "<table:table-row-group>" + row(cell("Salt"), cell(), cell("1"), cell("TRUE", attrs=
                                        'office:value-type="boolean" office:boolean-value="true"')) +
        "</table:table-row-group>",
        row(cell(repeat=16384), repeat=1048560),  # LibreOffice's fill to the sheet's end
    ) + sheet("Empty", row(cell(repeat=16384), repeat=1048576))
    path = write_ods(tmp_path / "prices.ods", body)
    assert sheet_names(path) == ["Prices"]
    t = read_table_file(path)
    assert t.header == ["item", "share", "price", "note"]
    assert list(t.rows()) == [
        ["Tea     leaves", "15%", "1.234,50 €", "first\nsecond\nthird\tlink"],
        ["Coffee", "", "7.5", "2024-05-06 13:45:00"],
        ["Milk", "0%", "2,0", "x"], ["Milk", "0%", "2,0", "x"], ["Milk", "0%", "2,0", "x"],
        ["Salt", "", "1", "TRUE"],
    ]
    assert t.meta["rows_total"] == 6
    with pytest.raises(TableError, match="no worksheet holds a table"):
        read_table_file(write_ods(tmp_path / "blank.ods", sheet("S", row(cell(repeat=9), repeat=99))))


def test_repeat_counts_are_bounded(tmp_path, monkeypatch):
    wide = write_ods(tmp_path / "wide.ods", sheet("S", row(cell("a"), cell(repeat=10**9), cell("b")),
                                                  row(cell("c"), cell("d"))))
    with pytest.raises(TableError, match=r"wide.ods \[S\]: a row is wider than 16,384 cells"):
        read_table_file(wide)
    monkeypatch.setattr(ods, "MAX_ROWS", 1000)
    long = write_ods(tmp_path / "long.ods", sheet("S", row(cell("a"), cell("b")), row(cell("1"), cell("2"),
                                                                                       repeat=10**12)))
    with pytest.raises(TableError, match=r"long.ods \[S\]: more than 1,000 rows"):
        read_table_file(long)


def test_a_few_bytes_cannot_ask_for_billions_of_cells(tmp_path):
    """A row of 16,384 cells repeated a million times is ~300 bytes of XML: refused by the cells it asks for,
    without copying the row a million times on the way."""
    import time

    bomb = write_ods(tmp_path / "bomb.ods", sheet("S", row(cell("a"), cell("b")),
                                                  row(cell("x", repeat=16384), repeat=10**6)))
    assert bomb.stat().st_size < 2000
    start = time.perf_counter()
    with pytest.raises(TableError, match=r"bomb.ods \[S\]: the 100,000 rows kept are 16,384 cells wide, more than "
                                         r"50,000,000 cells in all"):
        read_table_file(bomb, max_rows=100_000, spread=True)  # what annotate reads
    assert time.perf_counter() - start < 60


def test_a_long_sheet_streams(tmp_path):
    """20,000 rows: the sample is kept and the rest counted; the parsed tree never holds the sheet (it would
    take ~19 MB here: each row is dropped from it once read, ~0.5 MB)."""
    rows = "".join(row(cell(f"id{i}"), cell(f"name {i % 97}"), cell(str(i * 3))) for i in range(20_000))
    path = write_ods(tmp_path / "long.ods", sheet("Data", row(cell("id"), cell("name"), cell("n")), rows))
    tracemalloc.start()
    t = read_table_file(path, max_rows=500, spread=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert t.n_rows == 500 and t.meta["rows_total"] == 20_000 and t.meta["row_sample"] == "spread"
    assert len(set(t.columns[0])) == 500 and t.columns[0] != [f"id{i}" for i in range(500)]
    assert peak < 5e6, peak


def test_foreign_and_hostile_files_name_the_file(tmp_path):
    text = write_ods(tmp_path / "letter.ods", sheet("S", row(cell("a"))),
                     mimetype="application/vnd.oasis.opendocument.text")
    with pytest.raises(TableError, match=r"letter.ods: not an OpenDocument spreadsheet \(its mimetype is "
                                         r"'application/vnd.oasis.opendocument.text'\)"):
        read_table_file(text)
    bomb = write_ods(tmp_path / "bomb.ods", sheet("S", row(cell("&lol;"))),
                     prolog='<!DOCTYPE x [<!ENTITY lol "lol">]>')
    with pytest.raises(TableError, match=r"bomb.ods: cannot read \(DTDForbidden"):
        read_table_file(bomb)
    broken = write_ods(tmp_path / "broken.ods", sheet("S", row(cell("a")) + "<table:table-row>"))
    with pytest.raises(TableError, match=r"broken.ods: cannot read \(ParseError"):
        read_table_file(broken)
    with zipfile.ZipFile(tmp_path / "empty.ods", "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    with pytest.raises(TableError, match=r"empty.ods: not an OpenDocument spreadsheet \(no content.xml\)"):
        read_table_file(tmp_path / "empty.ods")


def test_standard_input_sniffs_ods(tmp_path):
    path = tmp_path / "t.ods"
    pd.DataFrame({"a": [1, 2]}).to_excel(path, engine="odf", index=False)
    assert sniff_suffix(path.read_bytes()[:1 << 16]) == ".ods"
    xlsx = tmp_path / "t.xlsx"
    pd.DataFrame({"a": [1, 2]}).to_excel(xlsx, index=False)
    assert sniff_suffix(xlsx.read_bytes()[:1 << 16]) == ".xlsx"
