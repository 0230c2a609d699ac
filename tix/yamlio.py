"""YAML loading that remembers line numbers, so every config error can say `file:line`.

`load(path)` returns plain Python data in which every mapping is a `LineDict`
(a dict with `.line` for the mapping itself and `.lines[key]` for each key) and every
sequence a `LineList` (with `.line` and `.lines[i]`). A syntax error becomes a
`ConfigError` naming the file and line.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from tix.errors import ConfigError, Problem

try:  # libyaml is much faster where it is available
    _Base = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader


class LineDict(dict):
    line: int = 0
    lines: dict

    def line_of(self, key) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    line: int = 0
    lines: list


class _Loader(_Base):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader, node):
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def loads(text: str, filename: str = "<string>"):
    """Parse YAML text; a syntax error raises ConfigError with `filename:line`."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([Problem(filename, line, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(filename, None, f"YAML error: {exc}")]) from None


def load(path: Path):
    """Parse a YAML file (see `loads`)."""
    return loads(Path(path).read_text(encoding="utf-8"), str(path))
