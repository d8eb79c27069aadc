"""Streamed CSV in the reader's convention: `;` (German, decimal comma) or `,` (English), UTF-8 with a
byte-order mark so spreadsheet programs read umlauts; written in chunks, never built in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

CHUNK_CHARACTERS = 16_384


def csv_chunks(header: list[str], rows: Iterable[list], language: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if language == "de" else ",")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield "\ufeff" + flush()
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > CHUNK_CHARACTERS:
            yield flush()
    yield flush()
