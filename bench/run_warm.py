"""Warm start of ``hpm run`` (the lock already installed, 50 packages) against bare Python.

Builds 50 tiny wheels (``tests/support/factory.py``), a registry of them, a lock
(``hpm lock``), installs it into a venv that also holds hpm (a .pth to this checkout and
its dependencies, like an editable install), then times side by side, interleaved,
many runs, median:

- ``venv/bin/hpm run -- python -c pass`` (the venv's console script), HPM_LOCK_B64
- ``venv/bin/python -m hpm_boot run -- python -c pass``, HPM_LOCK_B64
- the same two with HPM_LOCK_FILE
- ``venv/bin/python -c pass`` (the target alone)
- ``uv run --no-project --python venv/bin/python python -c pass``
- ``uv pip install --python venv/bin/python --no-deps -r pins.txt`` (already satisfied)

and prints the ratio hpm / python (target: at most 2.5). Writes the table into
``docs/benchmarks.md`` under ``## hpm run warm start (bench/run_warm.py)``.

Run: ``python bench/run_warm.py [--runs N] [--no-write]``. Offline; uses a private uv cache.
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

from bench._common import write_pypi_registry, write_section  # noqa: E402
from hpm_boot import payload  # noqa: E402
from tests.support.factory import Pkg, hermetic_env, make_wheelhouse, uv_bin  # noqa: E402
from tests.support.hpm_venv import hpm_in_venv  # noqa: E402

HEADING = "## hpm run warm start (bench/run_warm.py)"
N = 50


def hpm_venv(path: Path, env: dict[str, str]) -> Path:
    """A venv with hpm importable and an ``hpm`` console script, like an editable install."""
    py = hpm_in_venv(path, env=env)
    script = path / "bin" / "hpm"
    script.write_text(f"#!{py}\nimport sys\nfrom hpm_boot.__main__ import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return py


def setup(tmp: Path) -> tuple[dict[str, str], Path, Path, Path]:
    env = hermetic_env(tmp / "uv-cache")
    wh = make_wheelhouse(tmp / "wh", [Pkg(f"warm-pkg-{i:02d}", "1.0.0") for i in range(N)])
    reg = write_pypi_registry(tmp / "registry", (f"warm-pkg-{i:02d}" for i in range(N)))
    py = hpm_venv(tmp / "venv", env)
    names = [a for i in range(N) for a in ("--with", f"warm-pkg-{i:02d}")]
    lock = tmp / "lock.json"
    index = ["--no-index", "--find-links", str(wh)]
    subprocess.run([str(py), "-m", "hpm_boot", "lock", "-r", str(reg), *names, *index, "-o", str(lock)],
                   env=env, check=True, capture_output=True)
    subprocess.run([str(py), "-m", "hpm_boot", "install", "--lock", str(lock), *index], env=env, check=True,
                   capture_output=True)
    pins = tmp / "pins.txt"
    data = json.loads(lock.read_text())
    pins.write_text("".join(f"{p['name']}=={p['version']}\n" for p in data["pins"]))
    env["HPM_LOG"] = "quiet"
    return env, py, lock, pins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpm-bench-warm-") as t:
        tmp = Path(t)
        env, py, lock, pins = setup(tmp)
        data = json.loads(lock.read_text())
        b64 = payload.encode(data)
        signed = payload.encode(data, b"bench-key")
        uv = str(uv_bin())
        hpm = str(tmp / "venv" / "bin" / "hpm")
        run_py = ["run", "--", "python", "-c", "pass"]
        b64_env = {**env, "HPM_LOCK_B64": b64}
        file_env = {**env, "HPM_LOCK_FILE": str(lock)}
        signed_env = {**env, "HPM_LOCK_B64": signed, "HPM_LOCK_KEY": "bench-key"}
        python = ([str(py), "-c", "pass"], env)
        # The stamp remembers one lock input per environment: each group uses one input,
        # as a container does; the groups run one after the other.
        groups: list[dict[str, tuple[list[str], dict[str, str]]]] = [
            {
                "python -c pass": python,
                "hpm run (console script, HPM_LOCK_B64)": ([hpm, *run_py], b64_env),
                "python -m hpm_boot run (HPM_LOCK_B64)": ([str(py), "-m", "hpm_boot", *run_py], b64_env),
                "uv run --no-project python -c pass": (
                    [uv, "run", "--no-project", "--python", str(py), "python", "-c", "pass"], env),
                "uv pip install -r pins (satisfied)": (
                    [uv, "pip", "install", "--python", str(py), "--no-deps", "-r", str(pins), "--no-index",
                     "--find-links", str(tmp / "wh")], env),
            },
            {
                "python -c pass (again)": python,
                "hpm run (console script, HPM_LOCK_FILE)": ([hpm, *run_py], file_env),
                "python -m hpm_boot run (HPM_LOCK_FILE)": ([str(py), "-m", "hpm_boot", *run_py], file_env),
            },
            {
                "python -c pass (once more)": python,
                "hpm run, signed payload + HPM_LOCK_KEY (decoded and verified every start)": (
                    [hpm, *run_py], signed_env),
            },
        ]
        times: dict[str, list[float]] = {}
        for cmds in groups:
            for argv, e in cmds.values():  # warm-up: bytecode, page cache, the stamp
                subprocess.run(argv, env=e, check=True, capture_output=True)
            for name in cmds:
                times[name] = []
            for _ in range(args.runs):
                for name, (argv, e) in cmds.items():
                    started = time.perf_counter()
                    subprocess.run(argv, env=e, check=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                    times[name].append(time.perf_counter() - started)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    bases = [med["python -c pass"], med["python -c pass (again)"], med["python -c pass (once more)"]]
    base = statistics.median(bases)
    rows = [f"| {k} | {v:.1f} | {v / base:.2f}x |" for k, v in med.items()]
    header = ["| command (50 packages installed) | median ms | vs python |", "|---|---:|---:|"]
    table = "\n".join([*header, *rows])
    ratio = med["hpm run (console script, HPM_LOCK_B64)"] / base
    verdict = f"hpm run / python = {ratio:.2f}x (target <= 2.5x): {'met' if ratio <= 2.5 else 'MISSED'}"
    print(table)
    print(verdict)
    if not args.no_write:
        text = (
            f"{HEADING}\n\n"
            f"A venv with {N} tiny packages installed from a lock, and hpm itself (editable-style); every "
            f"command run {args.runs} times, interleaved within its group, median wall time of the "
            "subprocess. `hpm run` takes the hot path: the lock input matches the warm-start stamp, the "
            "dist-info directories are checked, exec (`HPM_LOG=quiet`). The signed row shows the path "
            "without the stamp: payload decoded, digest and HMAC checked, JSON parsed on every start.\n"
            f"Measured on Python {platform.python_version()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs, while other work shared the machine.\n\n"
            f"{table}\n\n{verdict}.\n"
        )
        write_section(text, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
