"""Jinja2 templates of auto-replies and notifications, from the store's `templates/`.

Loaded lazily (rules without templates never import Jinja2), compiled once per run.
Customer text in a template's context is escaped only in `.html` templates; plain-text
replies (`.txt.j2`) are sent as text.
"""
from __future__ import annotations

from pathlib import Path

from tix.config import suggest


class Templates:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._env = None
        self._strings: dict = {}

    @property
    def env(self):
        if self._env is None:
            import jinja2

            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(self.directory)),
                autoescape=jinja2.select_autoescape(["html", "htm", "html.j2"], default_for_string=False),
                keep_trailing_newline=True,
                undefined=jinja2.ChainableUndefined,
            )
        return self._env

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(str(p.relative_to(self.directory)) for p in self.directory.rglob("*") if p.is_file())

    def check(self, name: str) -> str | None:
        """Why template `name` cannot be used (None if it exists and compiles)."""
        import jinja2

        path = self.directory / name
        if not path.is_file():
            return f"template {name!r} not found in templates/{suggest(name, self.names())}"
        try:
            self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            return f"template {name!r} does not compile: templates/{name}:{exc.lineno}: {exc.message}"
        return None

    def check_string(self, text: str) -> str | None:
        import jinja2

        try:
            self.env.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            return f"template text does not compile: {exc.message}"
        return None

    def render(self, name: str, context: dict) -> str:
        return self.env.get_template(name).render(**context)

    def render_string(self, text: str, context: dict) -> str:
        tmpl = self._strings.get(text)
        if tmpl is None:
            tmpl = self._strings[text] = self.env.from_string(text)
        return tmpl.render(**context)
