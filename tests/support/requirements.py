"""uv's requirements.txt output, compiled and read back into hpm's ``Pin``s.

hpm locks from uv's pylock.toml (``lock.lock_target``). The tests still need the
requirements format: to read the installer's requirement lines (``install.pin_line``)
back, and to compile a closure with every hash uv lists for each pin, as lock format 1
carried them (what bench/payload_size.py compares the lock with).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from hpm_boot.compose.lock import Pin, Target, compile_cmd, dist_name, run_compile
from hpm_boot.errors import InstallerFailedError
from hpm_boot.log import mask_credentials


def parse_compiled(text: str, editable_names: Mapping[str, str] | None = None) -> list[Pin]:
    """Parse ``uv pip compile`` output (requirements.txt with hashes) into pins.

    uv writes an editable requirement as ``-e PATH``, without the project's name;
    ``editable_names`` maps such paths to the names they were asked for (else the
    directory name is the best guess).
    """
    names = {os.path.normpath(k): v for k, v in (editable_names or {}).items()}
    pins: list[Pin] = []
    for raw in _logical_lines(text):
        parts = raw.split(" --hash=")
        line, hashes = parts[0].strip(), sorted(h.strip() for h in parts[1:])
        if not line:
            continue
        editable = line.startswith("-e ")
        if editable:
            url = line[3:].strip()
            name = names.get(os.path.normpath(url.removeprefix("file://"))) or _name_from_path(url)
            pins.append(Pin(name=name, url=url, editable=True, hashes=hashes))
            continue
        line, _, markers = line.partition(" ; ")
        if " @ " in line:
            name, _, url = line.partition(" @ ")
            pins.append(Pin(name=dist_name(name), url=url.strip(), hashes=hashes, markers=markers or None))
        elif "==" in line:
            name, _, version = line.partition("==")
            pins.append(Pin(name=dist_name(name), version=version.strip(), hashes=hashes,
                            markers=markers or None))
        else:
            raise InstallerFailedError(f"unexpected line in uv pip compile output: {mask_credentials(raw)}",
                                       "this uv writes a format hpm does not read; report it")
    return sorted(pins, key=lambda pin: (pin.name, pin.markers or ""))


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        # a comment starts at "#" after whitespace (as pip reads it): "#subdirectory=" and
        # "#sha256=" fragments of URLs are not comments
        stripped = re.split(r"\s#", line, maxsplit=1)[0]
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += " " + stripped.strip().rstrip("\\").strip()
        if not line.rstrip().endswith("\\"):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _name_from_path(url: str) -> str:
    return dist_name(Path(url.removeprefix("file://").rstrip("/")).name)


def compile_pins(
    requirements: Sequence[str],
    target: Target,
    uv: str,
    extra_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    editable_names: Mapping[str, str] | None = None,
) -> list[Pin]:
    """The pinned closure of ``requirements`` for ``target``, by ``uv pip compile`` in
    requirements format, with every hash uv lists for each pin.

    uv missing: InstallerMissingError (69); uv failing: InstallerFailedError (74) whose
    message is uv's first error line and whose details are uv's whole stderr (hpm's own
    ``lock.run_compile``).
    """
    if not requirements:
        return []
    cmd = compile_cmd(uv, target.python_version, target.python_platform, extra_args, "--generate-hashes",
                      "--no-annotate")
    return parse_compiled(run_compile(cmd, requirements, environ, target), editable_names)
