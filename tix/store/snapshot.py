"""The Parquet snapshot: current tickets and contacts, a cache rebuilt from the log at will.

    snapshot/meta.json                 {"format": 1, "seq": N, "segment": "2026-11.jsonl",
                                        "offset": BYTES, "max_ticket": T, "max_contact": C,
                                        "tickets": "tickets-B.parquet",
                                        "tickets_delta": "tickets_delta-N.parquet" | null,
                                        "contacts": "contacts-B.parquet",
                                        "contacts_delta": "contacts_delta-N.parquet" | null}
    snapshot/tickets-B.parquet         one row per ticket (`tix.model.TICKET_COLUMNS`), as of seq B
    snapshot/tickets_delta-N.parquet   rows changed since B, as of seq N (they win over the base)

Current state = base rows not in the delta, plus the delta, plus the log after `offset`
folded on top (`tix.store.Reader`). A refresh rewrites only the delta; when the delta
outgrows a quarter of the base, base and delta are compacted into a new base. `N` is the
seq of the last event folded in; `segment`/`offset` the log position right after it.
Files are written under a temporary name, fsynced and renamed; `meta.json` is replaced
last, so a reader sees the old generation or the new one, never a mix. Files of the
previous generation are kept until the next refresh, for readers still holding its meta.
"""
from __future__ import annotations

from pathlib import Path

import orjson

from tix.store.files import FILE_MODE, atomic_write, commit_temp, temp_name
from tix.store.log import Position

FORMAT = 1
# Many row groups let DuckDB scan on every core and skip groups by min/max (tickets are
# stored in number order, so creation times are nearly sorted too).
ROW_GROUP = 65536


def _arrow_type(pa, sql_type: str):
    return {
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "VARCHAR": pa.string(),
        "JSON": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "VARCHAR[]": pa.list_(pa.string()),
    }[sql_type]


def arrow_schema(columns: dict[str, str]):
    import pyarrow as pa

    return pa.schema([(name, _arrow_type(pa, t)) for name, t in columns.items()])


def rows_to_arrow(rows: list[dict], columns: dict[str, str]):
    """Folded rows (times as ISO strings) -> an Arrow table with the snapshot schema."""
    import pyarrow as pa

    arrays = []
    for name, sql_type in columns.items():
        values = [r.get(name) for r in rows]
        if sql_type == "TIMESTAMP":
            arr = pa.array(values, pa.string())
            arr = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        else:
            arr = pa.array(values, _arrow_type(pa, sql_type))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(columns))


class Snapshot:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def meta(self) -> dict | None:
        try:
            return orjson.loads((self.dir / "meta.json").read_bytes())
        except FileNotFoundError:
            return None

    def position(self, meta: dict | None) -> Position | None:
        if not meta:
            return None
        return Position(meta["segment"], meta["offset"])

    def path(self, meta: dict, kind: str) -> Path | None:
        name = meta.get(kind) if meta else None
        return self.dir / name if name else None

    def write(self, files: dict, meta: dict, con=None) -> dict:
        """Write a new generation; return its meta.

        `files` maps a kind (`tickets`, `tickets_delta`, `contacts`, `contacts_delta`) to an
        Arrow table or a DuckDB SELECT (run on `con`), or to None to drop that file. Kinds
        not named keep the file of the previous generation.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        old = self.meta() or {}
        new_meta = {k: old.get(k) for k in KINDS}
        for kind, source in files.items():
            if source is None:
                new_meta[kind] = None
                continue
            name = f"{kind}-{meta['seq']}.parquet"
            tmp = temp_name(self.dir / name)
            _write_parquet(source, tmp, con)
            commit_temp(tmp, self.dir / name, mode=FILE_MODE, sync_dir=False)
            new_meta[kind] = name
        new_meta.update(meta, format=FORMAT)
        atomic_write(self.dir / "meta.json", orjson.dumps(new_meta, option=orjson.OPT_INDENT_2))
        self._prune(keep={*_names(new_meta), *_names(old)})
        return new_meta

    def _prune(self, keep: set[str]) -> None:
        for p in self.dir.iterdir():  # only our own generations; other stages keep files here too
            if p.suffix == ".parquet" and p.name.startswith(KINDS) and p.name not in keep:
                p.unlink(missing_ok=True)


KINDS = ("tickets", "tickets_delta", "contacts", "contacts_delta")


def _names(meta: dict | None) -> list[str]:
    return [meta[k] for k in KINDS if meta and meta.get(k)]


def _write_parquet(source, path: Path, con) -> None:
    if isinstance(source, str):
        con.execute(f"COPY ({source}) TO '{_sql_path(path)}' "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP})")
    else:
        import pyarrow.parquet as pq

        pq.write_table(source, path, compression="zstd", row_group_size=ROW_GROUP)


def _sql_path(path: Path) -> str:
    # Paths are ours (the store directory), never customer input; quote defensively anyway.
    return str(path).replace("'", "''")
