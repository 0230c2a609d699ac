"""Templates of auto-replies and notifications for the rules: the store's `templates/`, then the
package's examples, through the one sandboxed environment (`tix.templates`).

Compiled once per process. Customer text in a template's context is escaped only in `.html`
templates; plain-text replies (`.txt.j2`) are sent as text. A template that fails to render
(a misspelt variable, a sandbox violation) raises `TemplateFailed` with `templates/NAME:LINE`,
which fails that rule on that ticket only.
"""
from __future__ import annotations

from pathlib import Path

from tix import templates
from tix.config import suggest


class Templates:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.env = templates.environment(self.directory)

    def names(self) -> list[str]:
        return sorted(self.env.list_templates())

    def check(self, name: str) -> str | None:
        """Why template `name` cannot be used (None if it exists and compiles)."""
        problem = templates.compile_error(self.env, name)
        if problem is None:
            return None
        if problem.startswith("template "):  # not found
            return f"{problem}{suggest(name, self.names())}"
        return f"template {name!r} does not compile: {problem}"

    def check_string(self, text: str) -> str | None:
        import jinja2

        try:
            self.env.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            return f"template text does not compile: {exc.message}"
        return None

    def render(self, name: str, context: dict) -> str:
        return templates.render(self.env, name, context)

    def render_string(self, text: str, context: dict) -> str:
        return templates.render_string(self.env, text, context)
