"""How fast ``hpm run`` ends when stopped while its installer runs (SIGTERM, SIGINT).

A stand-in installer (a shell script that sleeps 300 s, with a child in its process
group) takes the place of uv; hpm is started with a lock of one package, and once the
installer has started it gets the signal. Timed: signal sent -> hpm exited, median and
worst over N runs; each run also checks that no process of the installer's group is
left. This is the figure ``tests/test_run.py`` deliberately does not assert (its bound
only proves that hpm ends). Writes ``docs/benchmarks.md`` under
``## hpm stopped while installing (bench/signal_stop.py)``.

Run: ``python bench/signal_stop.py [--runs N] [--no-write]``. Offline; private uv cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import write_section  # noqa: E402
from tests.support.factory import hermetic_env, make_wheelhouse, uv_bin  # noqa: E402
from tests.support.process import group_alive  # noqa: E402

HEADING = "## hpm stopped while installing (bench/signal_stop.py)"
SLOW_UV = """#!/bin/sh
case "$1" in venv) exec {uv} "$@";; esac
echo $$ > {pidfile}
sleep 300 &
exec sleep 301
"""


def one_stop(tmp: Path, lock: Path, env: dict[str, str], signum: int, i: int) -> float:
    pidfile = tmp / f"uv-{signum}-{i}.pid"
    slow = tmp / f"slow-uv-{signum}-{i}"
    slow.write_text(SLOW_UV.format(uv=uv_bin(), pidfile=pidfile))
    slow.chmod(0o755)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpm_boot", "run", "--lock", str(lock), "--", "true"], cwd=tmp,
        env={**env, "HPM_UV": str(slow), "HPM_VENV": str(tmp / f"v-{signum}-{i}")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not pidfile.exists() or not pidfile.read_text().strip():
        if proc.poll() is not None:
            raise SystemExit(f"hpm ended before the installer started (exit {proc.returncode})")
        time.sleep(0.01)
    time.sleep(0.05)  # the installer's child has started
    started = time.perf_counter()
    proc.send_signal(signum)
    proc.wait(timeout=60)
    took = time.perf_counter() - started
    if proc.returncode != 128 + signum:
        raise SystemExit(f"hpm exited {proc.returncode}, expected {128 + signum}")
    if group_alive(int(pidfile.read_text())):
        raise SystemExit("an installer process survived hpm")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpm-bench-signal-") as name:
        tmp = Path(name)
        env = hermetic_env(tmp / "uv-cache")
        wheels = make_wheelhouse(tmp / "wheels", [("hpmbench-one", "1.0.0")])
        registry = tmp / "registry"
        registry.mkdir()
        (registry / "hpmbench-one.yaml").write_text(
            'name: hpmbench-one\nversion: 1.0.0\nsources:\n  prod: {type: pypi, version: "==1.0.0"}\n')
        lock = tmp / "lock.json"
        subprocess.run([sys.executable, "-m", "hpm_boot", "lock", "-r", str(registry),
                        "--with", "hpmbench-one", "--no-index", "--find-links", str(wheels), "-o", str(lock)],
                       env=env, cwd=tmp, check=True, capture_output=True)
        rows = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            times = [one_stop(tmp, lock, env, signum, i) for i in range(opts.runs)]
            rows.append((signal.Signals(signum).name, 128 + signum, statistics.median(times), max(times)))
    lines = [
        HEADING, "",
        f"Signal sent while the installer runs -> hpm exited, {opts.runs} runs each; no installer "
        f"process left in any run. {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs.", "",
        "| signal | exit | median | worst |", "|---|---|---|---|",
        *[f"| {name} | {code} | {med * 1000:.0f} ms | {worst * 1000:.0f} ms |"
          for name, code, med, worst in rows],
        "",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not opts.no_write:
        write_section(text, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
