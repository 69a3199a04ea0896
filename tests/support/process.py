"""What the tests (and bench/signal_stop.py) ask of the process table: which processes
of a group are still alive."""

from __future__ import annotations

from pathlib import Path


def group_alive(pgid: int) -> list[str]:
    """The pids of live (not zombie) processes of process group ``pgid``, from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive
