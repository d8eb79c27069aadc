"""Rendered HTML fragments, remembered per process.

A fragment's key holds everything its HTML depends on, so a remembered fragment is never stale:
a ledger row (it never changes) with the language and display time zone. A page of 50 ledger
rows then costs 50 lookups instead of 50 renderings (dates, money, escaping). The web glue
remembers the menu's links, the filter selects' options and the sessions' signed CSRF tokens in
the same kind of cache (app.web).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock

from flask import current_app
from markupsafe import Markup

from core.i18n import ENTRY_TYPE_LABELS, display_settings
from core.schema import ReadRow

LEDGER_ROWS_REMEMBERED = 20_000  # about 10 MB per process


class FragmentCache:
    """At most ``max_entries`` fragments; the one remembered longest ago goes first. Lookups take
    no lock and change no order (a dict read is atomic in CPython), so a page of hits costs only
    its lookups; only remembering new fragments locks."""

    def __init__(self, max_entries: int):
        self._fragments: OrderedDict[Hashable, Markup] = OrderedDict()
        self._max_entries = max_entries
        self._lock = Lock()  # gthread workers serve requests from several threads

    def get_or_render(self, key: Hashable, render: Callable[[], Markup]) -> Markup:
        return self.get_or_render_many([key], lambda _key: render())[0]

    def get_or_render_many(self, keys: list[Hashable], render: Callable[[Hashable], Markup]) -> list[Markup]:
        """The fragments of ``keys``, in order; ``render(key)`` makes those not remembered."""
        fragments = [self._fragments.get(key) for key in keys]
        if None not in fragments:
            return fragments
        missing = {key: render(key) for key, fragment in zip(keys, fragments) if fragment is None}
        with self._lock:
            self._fragments.update(missing)
            while len(self._fragments) > self._max_entries:
                self._fragments.popitem(last=False)
        return [fragment if fragment is not None else missing[key] for key, fragment in zip(keys, fragments)]

    def __len__(self) -> int:
        return len(self._fragments)


_ledger_rows = FragmentCache(LEDGER_ROWS_REMEMBERED)


def ledger_rows(entries: list[ReadRow]) -> Markup:
    """The table rows of ledger entries (templates/partials/ledger_row.html), as one fragment."""
    settings = display_settings()
    # The row's values as a plain tuple are the key: reading them column by column, or comparing
    # Row objects, would cost more than the lookup. The fragments are Markup already: no escaping.
    entry_of = {(tuple(entry), settings.language, settings.zone): entry for entry in entries}
    fragments = _ledger_rows.get_or_render_many(list(entry_of), lambda key: _render_ledger_row(entry_of[key]))
    return Markup("".join(fragments))


def _render_ledger_row(entry: ReadRow) -> Markup:
    macro = current_app.jinja_env.get_template("partials/ledger_row.html").module.ledger_row
    return Markup(macro(entry, str(ENTRY_TYPE_LABELS.get(entry.type, entry.type))))
