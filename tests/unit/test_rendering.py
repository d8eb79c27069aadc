"""The renderer of emails and documents: what a worker prepares before it forks."""

from pathlib import Path

from jinja2 import FileSystemLoader

from core.i18n import LANGUAGES
from core.rendering import Renderer

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_compiles_every_email_and_document_template_once_in_every_language(monkeypatch):
    loaded = []
    get_source = FileSystemLoader.get_source
    monkeypatch.setattr(FileSystemLoader, "get_source",
                        lambda self, environment, name: loaded.append(name) or get_source(self, environment, name))
    renderer = Renderer(ROOT / "templates", ROOT / "translations", "Europe/Berlin")
    renderer.prepare()
    templates = {path.relative_to(ROOT / "templates").as_posix()
                 for folder in ("emails", "documents") for path in (ROOT / "templates" / folder).rglob("*.*")}
    assert set(loaded) == templates and len(loaded) == len(templates) * len(LANGUAGES)
    loaded.clear()
    renderer.prepare()  # a work horse inherits the compiled templates: nothing is read again
    assert loaded == []
