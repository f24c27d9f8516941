"""Excel workbooks: real .xlsx files written by openpyxl, read back as Tables."""

import datetime as dt

import openpyxl
import pytest

from aegir.tables import TableError
from aegir.tables.readers import read_excel, read_table_file, sheet_names
from aegir.tables.readers.excel import cell_text


def _book(path, n=30):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Hotels"
    ws.append(["Hotel report"])  # a title above the table: the preamble the header guess skips
    ws.append([])
    ws.append(["hotel", "city", "opened", "rating", "rooms", "pool"])
    for i in range(n):
        ws.append([f"Hotel {i}", ["Berlin", "Oslo"][i % 2], dt.datetime(2000 + i % 20, 1, 5), 3.5 + i / 10, 100 + i,
                   i % 2 == 0])
    wb.create_sheet("Empty")
    wb.create_sheet("Codes").append(["code", "country"])
    for code, country in (("NO", "Norway"), ("DE", "Germany")):
        wb["Codes"].append([code, country])
    wb.save(path)
    return path


def test_cells_become_the_text_a_csv_export_would_hold():
    assert [cell_text(v) for v in (None, True, False, 3.0, 4.8, 0.15, 12, 1e20, "x")] == \
        ["", "TRUE", "FALSE", "3", "4.8", "0.15", "12", "1e+20", "x"]
    assert cell_text(dt.datetime(2024, 3, 1)) == "2024-03-01"
    assert cell_text(dt.datetime(2024, 3, 1, 9, 30)) == "2024-03-01 09:30:00"
    assert cell_text(dt.date(2024, 3, 1)) == "2024-03-01" and cell_text(dt.time(9, 30)) == "09:30:00"


def test_numbers_read_through_their_number_format(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["share", "price", "weight", "count", "ratio"])
    for share, price in ((0.15, 1234.5), (0.0825, 99)):
        ws.append([share, price, 12.25, 7, 0.5])
        for col, fmt in (("A", "0.0%"), ("B", '"$"#,##0.00'), ("C", '0.0 "kg"'), ("E", "# ?/?")):
            ws[f"{col}{ws.max_row}"].number_format = fmt
    wb.save(tmp_path / "f.xlsx")
    t = read_excel(tmp_path / "f.xlsx", header=True)
    assert t.columns[0] == ["15.0%", "8.3%"] and t.columns[1] == ["$1,234.50", "$99.00"]
    assert t.columns[2] == ["12.3 kg", "12.3 kg"]  # 12.25 -> 12.3, half away from zero as Excel shows it
    assert t.columns[3] == ["7", "7"] and t.columns[4] == ["0.5", "0.5"]  # General, and a fraction: plainly


def test_first_worksheet_with_cells_read_like_a_csv(tmp_path):
    t = read_excel(_book(tmp_path / "h.xlsx"))
    assert t.header == ["hotel", "city", "opened", "rating", "rooms", "pool"]
    assert [c[0] for c in t.columns] == ["Hotel 0", "Berlin", "2000-01-05", "3.5", "100", "TRUE"]
    assert t.columns[3][2] == "3.7" and t.n_rows == 30
    m = t.meta
    assert (m["source"], m["sheet"], m["sheets"], m["preamble_rows"], m["header"], m["rows_total"]) == \
        ("excel", "Hotels", ["Hotels", "Empty", "Codes"], 1, "evidence", 30)


def test_rows_are_sampled_and_counted_like_a_csv(tmp_path):
    p = _book(tmp_path / "h.xlsx", n=500)
    first = read_table_file(p, max_rows=10)
    assert first.columns[0] == [f"Hotel {i}" for i in range(10)] and first.meta["row_sample"] == "first"
    spread = read_table_file(p, max_rows=10, spread=True)
    assert spread.n_rows == 10 and spread.meta["rows_total"] == 500 and spread.meta["row_sample"] == "spread"
    idx = [int(v.split()[1]) for v in spread.columns[0]]
    assert idx == sorted(idx) and idx[-1] > 250  # in file order, drawn from the whole sheet
    assert read_table_file(p, max_rows=10, spread=True).columns == spread.columns  # seeded


def test_worksheets_by_name_or_position_and_clear_errors(tmp_path):
    p = _book(tmp_path / "h.xlsx")
    assert sheet_names(p) == ["Hotels", "Codes"] and sheet_names(p, nonempty=False) == ["Hotels", "Empty", "Codes"]
    codes = read_table_file(p, sheet="Codes")
    assert codes.header == ["code", "country"] and codes.columns[1] == ["Norway", "Germany"]
    assert read_excel(p, sheet=2).header == ["code", "country"]
    with pytest.raises(TableError, match=r"h.xlsx: no worksheet named 'Nope'; it has 'Hotels', 'Empty', 'Codes'"):
        read_excel(p, sheet="Nope")
    with pytest.raises(TableError, match=r"no worksheet 7; it has 3"):
        read_excel(p, sheet=7)
    with pytest.raises(TableError, match=r"h.xlsx \[Empty\]: file is empty"):
        read_excel(p, sheet="Empty")
    with pytest.raises(TableError, match=r"not a workbook \(.xlsx, .xlsm, .xls, .ods\)"):
        read_table_file(tmp_path / "x.csv", sheet="Codes")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0 legacy")
    with pytest.raises(TableError, match=r"old.xls: cannot read as an Excel 97-2003 workbook"):
        read_table_file(tmp_path / "old.xls")
    (tmp_path / "fake.xlsx").write_text("a,b\n1,2\n")
    with pytest.raises(TableError, match=r"fake.xlsx: cannot read as an Excel workbook \(BadZipFile"):
        read_table_file(tmp_path / "fake.xlsx")
    wb = openpyxl.Workbook()
    wb.save(tmp_path / "blank.xlsx")
    with pytest.raises(TableError, match="no worksheet holds a table"):
        read_excel(tmp_path / "blank.xlsx")


def test_a_cover_sheet_with_a_title_is_passed_over(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "Cover"
    wb.active.append(["Quarterly hotel report"])
    data = wb.create_sheet("Data")
    for row in (["hotel", "rooms"], ["Adlon", 385], ["Savoy", 267]):
        data.append(row)
    wb.save(tmp_path / "r.xlsx")
    assert sheet_names(tmp_path / "r.xlsx") == ["Data"]
    assert read_excel(tmp_path / "r.xlsx").meta["sheet"] == "Data"
    assert read_excel(tmp_path / "r.xlsx", sheet="Cover").header == ["Quarterly hotel report"]  # named: read as asked


def test_a_sheet_named_like_a_number_is_found_by_name(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "2019"
    wb.active.append(["id", "amount"])
    wb.active.append([1, 2.5])
    wb.save(tmp_path / "y.xlsx")
    assert read_excel(tmp_path / "y.xlsx", sheet=2019).meta["sheet"] == "2019"


def test_legacy_xls_workbooks_read_like_xlsx(tmp_path):
    """The same cells and number formats written as .xls (xlwt) and .xlsx (openpyxl) read the same."""
    import xlwt

    rows = [["item", "share", "price", "since", "ok", "n"],
            ["Tea", (0.153, "0.0%"), (1234.5, '"$"#,##0.00'), (dt.date(2024, 5, 6), "yyyy-mm-dd"), True, 3.0],
            ["Milk", (0.05, "0.0%"), (-20.0, "#,##0.00;(#,##0.00)"), (dt.datetime(2023, 1, 2, 10, 30), "yyyy-mm-dd hh:mm"),
             False, 4.5]]
    xls, xl = xlwt.Workbook(), openpyxl.Workbook()
    cover, ws_x = xls.add_sheet("Cover"), xls.add_sheet("Data")
    cover.write(0, 0, "Report")
    xl.active.title = "Cover"
    xl.active["A1"] = "Report"
    ws = xl.create_sheet("Data")
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            value, fmt = v if isinstance(v, tuple) else (v, None)
            if fmt:
                ws_x.write(r, c, value, xlwt.easyxf(num_format_str=fmt))
            else:
                ws_x.write(r, c, value)
            cell = ws.cell(r + 1, c + 1, value)
            if fmt:
                cell.number_format = fmt
    xls.save(tmp_path / "book.xls")
    xl.save(tmp_path / "book.xlsx")
    a, b = read_table_file(tmp_path / "book.xls"), read_table_file(tmp_path / "book.xlsx")
    assert (a.meta["source"], a.meta["sheet"], a.meta["sheets"]) == ("xls", "Data", ["Cover", "Data"])
    assert (a.header, a.columns) == (b.header, b.columns)
    assert a.columns[1:3] == [["15.3%", "5.0%"], ["$1,234.50", "(20.00)"]]
    assert a.columns[3:] == [["2024-05-06", "2023-01-02 10:30:00"], ["TRUE", "FALSE"], ["3", "4.5"]]
    assert sheet_names(tmp_path / "book.xls") == ["Data"]
    assert read_table_file(tmp_path / "book.xls", sheet="Cover", header=False).columns == [["Report"]]
