"""The one duration grammar of tix: filters (`age>1h30m`), SLA targets and warnings.

A duration is one or more parts `NUMBER UNIT`, largest first or not, without a sign:
`90s`, `30m`, `1h30m`, `1.5h`, `2d4h`, `1w`. Units: s (second), m (minute), h (hour),
d (day: 24 hours), w (week: 7 days). Case and spaces between the parts do not matter
(`1H 30m`). A bare number has no unit and is refused: `8` could mean hours or days.

    parse_duration("1h30m")   -> 5400.0   (seconds)
    format_duration(5400)     -> "1h30m"  (parse_duration reads it back)

Whether a duration means business time (SLA targets, on the policy's calendar) or wall
time (filters) is the caller's business, not the grammar's.
"""
from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
EXAMPLES = "30m, 4h, 3d, 2w"


def parse_duration(text) -> float:
    """`1h30m`, `90m`, `1.5h`, `2d4h` -> seconds (float, >= 0).

    Raises ValueError with a one-line message naming what is accepted; the same message
    for a filter (`tix list 'age>soon'`) and a config value (an SLA target).
    """
    s = str(text).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    if s and not isinstance(text, bool):
        for m in _PART.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * UNITS[m.group(2)]
            pos = m.end()
    if not s or isinstance(text, bool) or pos != len(s):
        raise ValueError(f"not a duration: {text!r} (use e.g. {EXAMPLES})")
    return total


def format_duration(seconds: float) -> str:
    """3720 -> `1h02m`, 90 -> `1m30s`, 45 -> `45s`; negative values get a minus sign.

    Hours are not folded into days (an SLA reads `50h00m` more easily than `2d2h`).
    """
    sign = "-" if seconds < 0 else ""
    s = int(round(abs(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m:02d}m"
    if m:
        return f"{sign}{m}m{sec:02d}s" if sec else f"{sign}{m}m"
    return f"{sign}{sec}s"
