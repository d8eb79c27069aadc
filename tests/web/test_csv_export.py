"""The one CSV writer: cells a spreadsheet would run as formulas are written as text."""

import pytest

from app.csv_export import Number, csv_chunks, safe_cell


@pytest.mark.parametrize("text", ["=1+1", "+49301234567", "-2", "@A1", "\tcmd", "\rcmd"])
def test_text_that_starts_like_a_formula_is_written_as_text(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [Number("-4,4800"), Number("+1"), 42, -7])
def test_numbers_stay_numbers(value):
    assert safe_cell(value) == value


def test_plain_text_and_empty_cells_are_unchanged():
    assert (safe_cell("Aufladung"), safe_cell(""), safe_cell(None)) == ("Aufladung", "", "")


def test_the_header_and_every_row_go_through_the_rule():
    text = "".join(csv_chunks(["=Kopf", "Betrag"], [["@x", Number("-1,00")]], "de"))
    assert text == "\ufeff'=Kopf;Betrag\r\n'@x;-1,00\r\n"
