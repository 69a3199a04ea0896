"""Cold install overhead: hpm's own time as a share of a 20-package install.

Builds 20 tiny wheels and a lock of them, then, many times: a fresh empty venv, a
fresh uv cache, ``hpm install --lock`` with ``--no-index --find-links``. hpm's own
time is the total wall time of the hpm process minus the wall time of the installer
process, as hpm's debug log reports it (``HPM_LOG=debug HPM_LOG_FORMAT=json``: the wall
time from starting each installer process to reaping it). Venv creation (``uv venv``,
also an installer process) is counted as installer time. Prints the median share (target: under 5%) and writes
``## Cold install overhead (bench/install_cold.py)`` into ``docs/benchmarks.md``.

Run: ``python bench/install_cold.py [--runs N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_warm import write_section  # noqa: E402
from tests.support.factory import Pkg, hermetic_env, make_wheelhouse  # noqa: E402

HEADING = "## Cold install overhead (bench/install_cold.py)"
N = 20

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hpm-bench-cold-") as t:
        tmp = Path(t)
        env = hermetic_env(tmp / "uv-cache")
        wh = make_wheelhouse(tmp / "wh", [Pkg(f"cold-pkg-{i:02d}", "1.0.0") for i in range(N)])
        reg = tmp / "registry"
        reg.mkdir()
        for i in range(N):
            (reg / f"cold-pkg-{i:02d}.yaml").write_text(
                f"name: cold-pkg-{i:02d}\nversion: 1.0.0\nsources:\n"
                '  prod: {type: pypi, version: "==1.0.0"}\n'
            )
        lock = tmp / "lock.json"
        index = ["--no-index", "--find-links", str(wh)]
        names = [a for i in range(N) for a in ("--with", f"cold-pkg-{i:02d}")]
        subprocess.run([sys.executable, "-m", "hpm_boot", "lock", "-r", str(reg), *names, *index, "-o",
                        str(lock)], env=env, check=True, capture_output=True)
        for run in range(args.runs):
            run_env = {**env, "HPM_VENV": str(tmp / f"venv{run}"), "UV_CACHE_DIR": str(tmp / f"cache{run}"),
                       "HPM_LOG": "debug", "HPM_LOG_FORMAT": "json"}
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "hpm_boot", "install", "--lock", str(lock), *index],
                                  env=run_env, check=True, capture_output=True, text=True)
            total = time.perf_counter() - started
            records = [json.loads(line) for line in proc.stderr.splitlines()]
            installer = sum(r["installer_seconds"] for r in records
                            if "installer_seconds" in r and not r["msg"].startswith("installed "))
            rows.append((total, installer))
    totals = [t for t, _ in rows]
    own = [t - i for t, i in rows]
    shares = [(t - i) / t for t, i in rows]
    med_total, med_own = statistics.median(totals), statistics.median(own)
    med_share = statistics.median(shares)
    table = "\n".join([
        f"| {N}-package cold install, median of {args.runs} | value |", "|---|---:|",
        f"| total wall time of `hpm install` | {med_total * 1000:.0f} ms |",
        f"| installer processes (uv venv + uv pip install, incl. their start) | "
        f"{(med_total - med_own) * 1000:.0f} ms |",
        f"| hpm's own time (interpreter start, imports, lock check, verification) | "
        f"{med_own * 1000:.0f} ms |",
        f"| hpm's share | {med_share * 100:.1f}% |",
    ])
    met = "met" if med_share < 0.05 else "MISSED"
    verdict = f"hpm's own share {med_share * 100:.1f}% (target < 5%): {met}"
    print(table)
    print(verdict)
    if not args.no_write:
        write_section(
            f"{HEADING}\n\n"
            f"{N} tiny wheels from a local wheelhouse (`--no-index --find-links`), a fresh venv "
            "(`HPM_VENV`) and a fresh uv cache each run. The installer's time is what hpm's debug log "
            "reports (`installer_seconds`: from starting each uv process, `uv venv` included, to reaping "
            "it); "
            "hpm's own time is the rest of the `python -m hpm_boot install` wall time.\n"
            f"Measured on Python {platform.python_version()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs, while other work shared the machine.\n\n"
            f"{table}\n\n{verdict}.\n\n"
            "Where hpm's own time goes (`python -X importtime` and `cProfile` of one run): interpreter start "
            "~10 ms; `hpm_boot.lock` ~30 ms, imported only for `lock.from_dict`'s msgspec shape check, "
            "because "
            "it imports `manifest` (PyYAML) and `resolve` (packaging) at module level; `cli.build_parser` "
            "~10-18 ms (it imports every module command); `dataclasses` ~7 ms (`install.py`); the rest is "
            "regex compilation inside those imports. The install itself (checks, requirement file, "
            "verification of 20 dist-infos) is ~1-2 ms. Reaching < 5% needs a stdlib-only install path from "
            "a lock (like the `run` hot path) or lazy imports in `lock.py`/`cli.py`; not done yet.\n",
            HEADING,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
