"""HTML tables: a saved web page's <table>s read as Tables, spans filled as pandas' read_html fills them."""

import pandas as pd
import pytest

from aegir.tables import TableError
from aegir.tables.readers import html_tables, read_table_file
from aegir.tables.readers.stdin import sniff_suffix

PAGE = """<!DOCTYPE html>
<html><head><title>Hotels</title></head><body>
<table id="layout"><tr><td>
  <h1>Hotels in Zürich</h1>
  <table class="data">
    <caption>Hotels and   prices</caption>
    <thead><tr><th>Name</th><th>Stars</th><th colspan="2">Contact</th></tr></thead>
    <tbody>
      <tr><td>Hotel Adler</td><td rowspan="2">4</td><td>+41 44 123</td><td>info@adler.ch</td></tr>
      <tr><td>Baur
          au Lac</td><td>+41 44 220</td><td><a href="mailto:x">info@bal.ch</a></td></tr>
      <tr><td>Dolder <b>Grand</b></td><td>5</td><td>+41 44 456</td><td>info@dolder.ch</td></tr>
    </tbody>
  </table>
</td><td><table><tr><td>ad</td></tr></table></td></tr></table>
<table id="rates"><tr><td>Season</td><td>Rate</td></tr><tr><td>Summer</td><td>240</td></tr>
<tr><td>Winter</td><td>180</td></tr></table>
<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
</body></html>"""


def test_a_saved_page_reads_table_by_table(tmp_path):
    path = tmp_path / "hotels.html"
    path.write_text(PAGE, encoding="utf-8")
    # The layout table (one row) and the nested ad (one cell) hold no table; names: id, caption, position.
    assert html_tables(path, nonempty=False) == ["layout", "Hotels and prices", "table 3", "rates", "table 5"]
    assert html_tables(path) == ["Hotels and prices", "rates", "table 5"]
    t = read_table_file(path)
    assert (t.meta["source"], t.meta["table"], t.meta["header"]) == ("html", "Hotels and prices", "given")
    assert t.header == ["Name", "Stars", "Contact", "Contact"]  # <thead>; colspan fills both places
    assert t.columns == [["Hotel Adler", "Baur au Lac", "Dolder Grand"], ["4", "4", "5"],  # rowspan fills down
                         ["+41 44 123", "+41 44 220", "+41 44 456"], ["info@adler.ch", "info@bal.ch", "info@dolder.ch"]]
    rates = read_table_file(path, table="rates")  # no markup says header: guessed from the cells, as for a CSV
    assert (rates.header, rates.columns, rates.meta["header"]) == (["Season", "Rate"], [["Summer", "Winter"],
                                                                                       ["240", "180"]], "evidence")
    assert read_table_file(path, table="table 5", header=False).columns == [["a", "c"], ["b", "d"]]
    single = tmp_path / "single.html"  # one column of data is a table; a layout table around it is not
    single.write_text("<table><tr><td><table><tr><th>City</th></tr><tr><td>Oslo</td></tr><tr><td>Rome</td></tr>"
                      "</table></td></tr><tr><td>footer</td></tr></table>")
    assert html_tables(single) == ["table 2"] and read_table_file(single).columns == [["Oslo", "Rome"]]
    with pytest.raises(TableError, match=r"hotels.html: no table named 'prices'; its tables: 'layout', 'Hotels"):
        read_table_file(path, table="prices")


def test_spans_are_filled_as_pandas_fills_them(tmp_path):
    page = """<table><tr><th>a</th><th>b</th><th>c</th></tr>
    <tr><td rowspan="3">x</td><td colspan="2">wide</td></tr>
    <tr><td>p</td><td rowspan="2">q</td></tr>
    <tr><td>r</td></tr>
    <tr><td>s</td><td>t</td><td>u</td></tr></table>"""
    path = tmp_path / "spans.html"
    path.write_text(page)
    t = read_table_file(path)
    (df,) = pd.read_html(path, flavor="lxml")
    assert t.header == list(df.columns)
    assert t.columns == [df[c].astype(str).tolist() for c in df.columns]
    assert t.columns == [["x", "x", "x", "s"], ["wide", "p", "r", "t"], ["wide", "q", "q", "u"]]
    ragged = tmp_path / "ragged.html"  # rows ending short of a span further right: blanks between
    ragged.write_text("<table><tr><td>a</td><td>b</td><td rowspan=3>c</td></tr><tr><td>d</td></tr><tr></tr>"
                      "<tr><td>x</td><td>y</td><td>z</td></tr></table>")
    assert list(read_table_file(ragged, header=False).rows()) == [["a", "b", "c"], ["d", "", "c"], ["", "", "c"],
                                                                  ["x", "y", "z"]]
    huge = tmp_path / "huge.html"  # a span count is a number in the file: capped as browsers cap it
    huge.write_text('<table><tr><td colspan="100000000">a</td></tr><tr><td>b</td><td>c</td></tr></table>')
    assert read_table_file(huge, header=False).n_cols == 1000
    spans = tmp_path / "spans_bomb.html"  # 60,000 empty rows under a 1,000 x 65,534 cell: 60M places to fill
    spans.write_text('<table><tr><td colspan="1000" rowspan="65534">x</td></tr>' + "<tr></tr>" * 60_000 + "</table>")
    with pytest.raises(TableError, match=r"spans_bomb.html \[table 1\]: its cells' spans fill more than 1,000,000"):
        read_table_file(spans, header=False)


def test_encodings_declared_or_not(tmp_path):
    body = "<table><tr><th>Stadt</th><th>Land</th></tr><tr><td>Zürich</td><td>Schweiz</td></tr>" \
           "<tr><td>Köln</td><td>Deutschland</td></tr></table>"
    for name, data in (("utf8.html", body.encode()), ("cp1252.htm", body.encode("cp1252")),
                       ("declared.html", f'<meta charset="windows-1252">{body}'.encode("cp1252")),
                       ("latin1.html", f'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
                                       f"{body}".encode("latin-1"))):
        (tmp_path / name).write_bytes(data)
        assert read_table_file(tmp_path / name).columns[0] == ["Zürich", "Köln"], name


def test_bad_pages_name_the_file(tmp_path):
    for name, data, message in (("empty.html", b"  \n", "file is empty"),
                                ("blob.html", bytes(range(256)) * 4, "looks like a binary file"),
                                ("text.html", b"<p>No tables here</p>", r"no <table> holds a table .*has no <table>"),
                                ("one.html", b"<table><tr><td>only</td><td>row</td></tr></table>",
                                 r"no <table> holds a table \(two or more rows")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TableError, match=rf"{name}: {message}"):
            read_table_file(tmp_path / name)


def test_standard_input_sniffs_html():
    assert sniff_suffix(b"\xef\xbb\xbf  <!DOCTYPE html><html>") == ".html"
    assert sniff_suffix(b"<TABLE><tr><td>1</td></tr></TABLE>") == ".html"
    assert sniff_suffix(b"<b>,x\n1,2\n") == ".csv"
