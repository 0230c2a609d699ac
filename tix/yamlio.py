"""YAML loading that remembers line numbers, so every config error can say `file:line`.

`load(path)` returns plain Python data in which every mapping is a `LineDict`
(a dict with `.line` for the mapping itself and `.lines[key]` for each key) and every
sequence a `LineList` (with `.line` and `.lines[i]`). A syntax error becomes a
`ConfigError` naming the file and line.

What a text parses to is kept in the user's cache directory (tix/yaml), under the SHA-256 of
the text: every command reads tix.yaml, and importing the YAML library and parsing cost
more than the rest of a `tix list` that is not the query (about 0.03 s). An edited file has
another digest, so it is parsed again; a cache entry that cannot be read or decoded is
parsed again too, and a cache that cannot be written is no cache. Texts holding what the
cache does not encode (`!!set`, `!!omap`) are simply not cached.
"""
from __future__ import annotations

import hashlib
import marshal
import os
from datetime import date, datetime
from pathlib import Path

from tix.errors import ConfigError, Problem

CACHE_FORMAT = b"tix-yaml-1\n"  # part of each entry's key: a new encoding makes new keys


class LineDict(dict):
    line: int = 0
    lines: dict

    def line_of(self, key) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    line: int = 0
    lines: list


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


_LOADER = None


def _loader():
    """The line-keeping SafeLoader class (libyaml's, much faster, where it is available)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _LOADER = type("_Loader", (base,), {})
        _LOADER.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
        _LOADER.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
    return _LOADER


def loads(text: str, filename: str = "<string>"):
    """Parse YAML text; a syntax error raises ConfigError with `filename:line`."""
    key = hashlib.sha256(CACHE_FORMAT + text.encode("utf-8", "surrogatepass")).hexdigest()
    found = _cached(key)
    if found is not _MISS:
        return found
    data = _parse(text, filename)
    _keep(key, data)
    return data


def _parse(text: str, filename: str):
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # a SafeLoader subclass
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


# -- the parse cache ----------------------------------------------------------------------------
_MISS = object()


class _Uncached(Exception):
    """A value the cache's encoding does not hold."""


def _cache_path(key: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tix", "yaml", key)


def _cached(key: str):
    """The entry's data, or _MISS. An entry is the SHA-256 of its marshalled data, then the
    data: a damaged one (even one that would decode to something) is never used."""
    try:
        with open(_cache_path(key), "rb") as f:
            blob = f.read()
        if len(blob) < 32 or hashlib.sha256(blob[32:]).digest() != blob[:32]:
            return _MISS
        return _decode(marshal.loads(blob[32:]))
    except (OSError, ValueError, EOFError, TypeError, KeyError, IndexError):
        return _MISS


def _keep(key: str, data) -> None:
    try:
        blob = marshal.dumps(_encode(data))
    except _Uncached:
        return
    blob = hashlib.sha256(blob).digest() + blob
    from tix.store.files import atomic_write

    path = _cache_path(key)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic_write(path, blob, mode=0o600, sync_dir=False)
    except OSError:  # StoreWriteError is one too
        pass


# Encoded: a LineDict is ("m", line, keys, key lines, values), a LineList ("s", line, lines,
# items), a date ("d", iso) and a datetime ("t", iso); str, int, float, bool, None and bytes
# are themselves. A tuple in the data itself, a set or a plain dict is not encoded.
def _encode(v):
    if v is None or type(v) in (str, int, float, bool, bytes):
        return v
    if type(v) is LineDict:
        keys = list(v)
        return ("m", v.line, [_encode(k) for k in keys], [v.lines.get(k, v.line) for k in keys],
                [_encode(v[k]) for k in keys])
    if type(v) is LineList:
        return ("s", v.line, list(v.lines), [_encode(x) for x in v])
    if type(v) is datetime:
        return ("t", v.isoformat())
    if type(v) is date:
        return ("d", v.isoformat())
    raise _Uncached(type(v).__name__)


def _decode(v):
    if type(v) is not tuple:
        return v
    tag = v[0]
    if tag == "m":
        out = LineDict()
        out.line = v[1]
        out.lines = {}
        for k, line, x in zip(v[2], v[3], v[4], strict=True):
            k = _decode(k)
            out[k] = _decode(x)
            out.lines[k] = line
        return out
    if tag == "s":
        out = LineList(_decode(x) for x in v[3])
        out.line = v[1]
        out.lines = list(v[2])
        return out
    if tag == "t":
        return datetime.fromisoformat(v[1])
    if tag == "d":
        return date.fromisoformat(v[1])
    raise ValueError(f"unknown tag {tag!r}")
