"""Rendered HTML of ledger rows, remembered per process.

A ledger row never changes, and its HTML depends only on its columns, the language and the
display time zone; all of them make up the key, so a remembered fragment can never be stale.
A page of 50 rows then costs 50 lookups instead of 50 renderings (dates, money, escaping).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import partial
from threading import Lock

from flask import current_app
from markupsafe import Markup
from sqlalchemy import Row

from core.i18n import ENTRY_TYPE_LABELS, display_settings

LEDGER_ROWS_REMEMBERED = 20_000  # about 10 MB per process


class FragmentCache:
    """At most ``max_entries`` fragments; the least recently used one goes first."""

    def __init__(self, max_entries: int):
        self._fragments: OrderedDict[Hashable, Markup] = OrderedDict()
        self._max_entries = max_entries
        self._lock = Lock()  # gthread workers serve requests from several threads

    def get_or_render(self, key: Hashable, render: Callable[[], Markup]) -> Markup:
        with self._lock:
            fragment = self._fragments.get(key)
            if fragment is not None:
                self._fragments.move_to_end(key)
                return fragment
        fragment = render()
        with self._lock:
            self._fragments[key] = fragment
            if len(self._fragments) > self._max_entries:
                self._fragments.popitem(last=False)
        return fragment

    def __len__(self) -> int:
        return len(self._fragments)


_ledger_rows = FragmentCache(LEDGER_ROWS_REMEMBERED)


def ledger_rows(entries: list[Row]) -> Markup:
    """The table rows of ledger entries (templates/partials/ledger_row.html), as one fragment."""
    settings = display_settings()
    # The whole row is the key (a Row hashes like a tuple of its values; naming each column would
    # cost more than the lookup).
    return Markup("").join(_ledger_rows.get_or_render((entry, settings.language, settings.zone),
                                                      partial(_render_ledger_row, entry)) for entry in entries)


def _render_ledger_row(entry: Row) -> Markup:
    macro = current_app.jinja_env.get_template("partials/ledger_row.html").module.ledger_row
    return Markup(macro(entry, str(ENTRY_TYPE_LABELS.get(entry.type, entry.type))))
