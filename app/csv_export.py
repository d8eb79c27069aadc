"""Streamed CSV in the reader's convention: `;` (German, decimal comma) or `,` (English), UTF-8 with a
byte-order mark so spreadsheet programs read umlauts; written in chunks, never built in memory.

A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a
formula, so every text cell that does is written with a leading `'` (OWASP's rule for CSV injection):
a description or a phone number (`+49…`) stays text. Numbers the exporter marks as :class:`Number`
(amounts, counts, shares) are written as they are, so `-4,4800` stays a number."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

CHUNK_CHARACTERS = 16_384
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Number(str):
    """A number already formatted for the reader (e.g. ``-4,4800``): the cell is written as it is."""


def safe_cell(value) -> object:
    """``value`` as a CSV cell a spreadsheet shows and never runs."""
    if isinstance(value, Number) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_chunks(header: list[str], rows: Iterable[list], language: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if language == "de" else ",")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([safe_cell(heading) for heading in header])
    yield "\ufeff" + flush()
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
        if buffer.tell() > CHUNK_CHARACTERS:
            yield flush()
    yield flush()
