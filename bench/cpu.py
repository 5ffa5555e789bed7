"""Read how much CPU time a process and its children have used, from /proc.

CPU time per request does not depend on how busy the rest of the machine
was, unlike requests per second; a report taken on a shared machine can still
be read through it.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields follow the last ')'.
    return text[text.rindex(")") + 2 :].split()


def tree_cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds of `pid` and all its descendants.

    Children that already exited and were reaped count through their parent's
    cumulative fields. Returns 0.0 when /proc is not available.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        # After the name: state, ppid, ... utime is field 14 and stime 15 of
        # the full line, so 11 and 12 here; cutime and cstime follow.
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15]) / _TICKS

    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += times.get(current, 0.0)
        pending += [child for child, parent in parents.items() if parent == current]
    return total
