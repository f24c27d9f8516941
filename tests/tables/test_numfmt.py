"""Excel number formats: numbers written as a spreadsheet shows them (hand-checked against Excel's display)."""

import pytest

from aegir.tables.readers.numfmt import format_number


@pytest.mark.parametrize("x, fmt, shown", [
    (0.15, "0%", "15%"),
    (0.1234, "0.0%", "12.3%"),
    (1234.5, '"$"#,##0.00', "$1,234.50"),
    (1234.5, "#,##0", "1,235"),  # half away from zero, as Excel (not Python's half to even)
    (2.5, "0", "3"),
    (-1234.5, "$#,##0.00_);($#,##0.00)", "($1,234.50)"),  # the negative section, its own sign: parentheses
    (-1234.5, "#,##0;[Red](#,##0)", "(1,235)"),
    (-5, "0;[Red]0", "5"),  # red, and no minus: as Excel shows it
    (-5, "0;-0", "-5"),
    (-5, "0.0", "-5.0"),  # one section: a leading minus
    (-0.0001, "0.00;(0.00)", "(0.00)"),  # the section follows the stored value's sign
    (0, '_(* #,##0_);_(* (#,##0);_(* "-"??_);_(@_)', "-"),  # accounting: zero as a dash
    (0, '#,##0;(#,##0);"-"', "-"),
    (7, '#,##0;(#,##0);"-"', "7"),
    (-1234.5, '_-* #,##0.00\\ "€"_-;\\-* #,##0.00\\ "€"_-;_-* "-"??\\ "€"_-;_-@_-', "-1,234.50 €"),
    (0.5, "#.00", ".50"),  # no 0 placeholder before the point: no zero integer digit
    (1234567, '0.0,,"M"', "1.2M"),
    (12.3, '0.0 "kg"', "12.3 kg"),
    (1234.5, "[$€-407] #,##0.00", "€ 1,234.50"),
    (1234.5, "#,##0.00 [$€-407]", "1,234.50 €"),
    (1234.5, "_-* #,##0.00 €_-;-* #,##0.00 €_-", "1,234.50 €"),
    (0.000123, "0.00E+00", "1.23E-04"),
    (5, "0.00", "5.00"),
    (-0.001, "0.00", "0.00"),  # rounds to zero: no minus
    (42, "[Red]0.0", "42.0"),
    (7, "\\$0", "$7"),
])
def test_covered_formats(x, fmt, shown):
    assert format_number(x, fmt) == shown


@pytest.mark.parametrize("fmt", ["General", "@", "# ?/?", "[>100]0;0", "0-000-000", "", "mm/dd/yyyy",
                                 "0;[>100]0", "0;# ?/?"])
def test_formats_not_covered_are_left_to_the_plain_writer(fmt):
    assert format_number(3.5, fmt) is None


@pytest.mark.parametrize("x, fmt", [(-5, "0;;"), (0, "0;-0;;@"), (0, "#,###")])
def test_formats_that_show_nothing_are_left_to_the_plain_writer(x, fmt):
    assert format_number(x, fmt) is None
