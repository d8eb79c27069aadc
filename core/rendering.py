"""Documents and emails rendered in a given language, without a web request.

One Jinja environment per language, made on first use and never changed afterwards: the language's
catalogue installed for Jinja's i18n extension (``_``, ``gettext``, ``ngettext``, new-style: variables
are escaped in HTML), and filters and helpers that format for that language and the display time
zone. The web pages use Flask-Babel instead (app/locale.py); both read the same catalogues."""

from __future__ import annotations

from pathlib import Path
from threading import Lock
from zoneinfo import ZoneInfo

from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.i18n import (
    DEFAULT_LANGUAGE, LANGUAGES, format_local_date, format_local_datetime, format_minutes, format_number,
    format_percent_basis_points, payment_method_message,
)
from core.money import UNITS_PER_CENT, format_money


class Renderer:
    """Templates under ``templates`` translated from the catalogues under ``translations``; dates in
    the time zone ``zone`` (e.g. "Europe/Berlin")."""

    def __init__(self, templates: Path, translations: Path, zone: str):
        self._templates, self._translations, self._zone = Path(templates), Path(translations), ZoneInfo(zone)
        self._languages: dict[str, tuple[Environment, Translations]] = {}
        self._lock = Lock()

    def render(self, template: str, language: str, /, **context) -> str:
        environment, _catalogue = self._language(language)
        return environment.get_template(template).render({"language": language, **context})

    def prepare(self) -> None:
        """Compile every email and document template in every language now, with the locale data they
        format with: a worker does it once before it forks, and each work horse inherits it instead of
        doing it again for its one job."""
        for language in LANGUAGES:
            environment, _catalogue = self._language(language)
            for name in environment.list_templates(filter_func=lambda name: name.startswith(("emails/", "documents/"))):
                environment.get_template(name)
            format_money(0, language)

    def gettext(self, language: str, message: str, **variables) -> str:
        """``message`` translated into ``language``, its ``%(name)s`` placeholders filled in."""
        _environment, catalogue = self._language(language)
        text = catalogue.gettext(message)
        return text % variables if variables else text

    def _language(self, language: str) -> tuple[Environment, Translations]:
        language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        with self._lock:
            if language not in self._languages:
                self._languages[language] = self._prepare(language)
            return self._languages[language]

    def _prepare(self, language: str) -> tuple[Environment, Translations]:
        environment = Environment(loader=FileSystemLoader(self._templates), autoescape=select_autoescape(["html"]),
                                  extensions=["jinja2.ext.i18n"])
        catalogue = Translations.load(str(self._translations), [language])
        environment.install_gettext_translations(catalogue, newstyle=True)
        zone = self._zone
        environment.filters.update({
            "money": lambda units: "" if units is None else format_money(units, language),
            "money_cents": lambda cents: "" if cents is None else format_money(cents * UNITS_PER_CENT, language),
            "number": lambda value: format_number(value, language),
            "percent_bp": lambda value: format_percent_basis_points(value, language),
            "date": lambda value, style="medium": format_local_date(value, language, zone, style),
            "datetime": lambda value, style="medium": format_local_datetime(value, language, zone, style),
        })
        environment.globals.update({
            "minutes_of": lambda seconds: format_minutes(seconds, language),
            "payment_method_label": lambda method: catalogue.gettext(payment_method_message(method)),
        })
        return environment, catalogue
