"""Ephemeral reuse: a second ``hpm run --ephemeral`` on an unchanged plan vs ``uv run``.

Builds a hermetic setup (wheelhouse, a git plugin with tags, an editable local package,
an index package; private uv cache, offline), makes the environment once, then times,
interleaved, the median of many runs of:

- ``hpm run --ephemeral --no-index --find-links WH -- python -c pass`` (the fast path),
- ``uv run --project <the generated dir> --no-index --find-links WH -- python -c pass``,
- for reference: the same hpm run through the full CLI (a spelling the fast path does
  not take, an abbreviated option: registry read, resolution, git ls-remote), and ``uv run --no-sync``.

Run from the repository root: ``.venv/bin/python bench/ephemeral.py [--runs 41]``.
Target: hpm within 1.5x of uv run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.factory import (
    DEFAULT_PACKAGES,
    hermetic_env,
    make_git_repo,
    make_project,
    make_wheelhouse,
    uv_bin,
)


def hpm_command() -> list[str]:
    script = Path(sys.executable).with_name("hpm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hpm_boot"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=41)
    ns = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpm-bench-eph-"))
    try:
        wh = make_wheelhouse(tmp / "wh", DEFAULT_PACKAGES)
        repo = make_git_repo(tmp / "gitplugin", "hpmtest-gitplugin", deps=["hpmtest-core>=1.0"],
                             tags=["v0.1.0", "v0.2.0"])
        make_project(tmp / "edit", "hpmtest-edit", "0.3.0", deps=["hpmtest-dep"])
        reg = tmp / "registry"
        reg.mkdir()
        (reg / "gitplugin.yaml").write_text(
            "name: hpmtest-gitplugin\nversion: 0.1.0\nsources:\n"
            f"  prod: {{type: git, url: \"{repo.url}\", ref: v0.1.0}}\n")
        (reg / "edit.yaml").write_text(
            "name: hpmtest-edit\nversion: 0.3.0\nsources:\n  prod: {type: local, path: ../edit}\n")
        (reg / "qdrant.yaml").write_text(
            "name: hpmtest-qdrant\nversion: 0.1.0\nsources:\n  prod: {type: pypi}\n")
        (reg / "hpm-registry.yaml").write_text(
            "defaults: {with: [hpmtest-gitplugin, hpmtest-edit, hpmtest-qdrant]}\n")
        env = hermetic_env(tmp / "cache")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: with cached bytecode
        index = ["--no-index", "--find-links", str(wh)]
        pycmd = ["--", "python", "-c", "pass"]
        hpm = [*hpm_command(), "run", "--ephemeral", *index, *pycmd]
        timed(hpm, tmp, env)  # make and sync the environment
        (env_dir,) = [p for p in (tmp / ".hpm" / "ephemeral").iterdir() if not p.name.startswith(".")]
        uv = str(uv_bin())
        commands = {
            "hpm run --ephemeral (reuse)": hpm,
            "uv run --project DIR": [uv, "run", "--project", str(env_dir), *index, *pycmd],
            "hpm run --ephemeral, full CLI (no fast path)": [
                # an abbreviated option: the fast path leaves it to the full CLI
                *hpm_command(), "run", "--ephemeral", "--no-index", f"--find-link={wh}", *pycmd],
            "uv run --project DIR --no-sync": [uv, "run", "--project", str(env_dir), "--no-sync", *pycmd],
        }
        for cmd in commands.values():  # warm every path once
            timed(cmd, tmp, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(ns.runs):
            for name, cmd in commands.items():
                samples[name].append(timed(cmd, tmp, env))
        medians = {name: statistics.median(xs) * 1000 for name, xs in samples.items()}
        base = medians["uv run --project DIR"]
        print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
              f"{ns.runs} interleaved runs each, median wall time")
        print("| command | ms | vs uv run |\n|---|---:|---:|")
        for name, ms in medians.items():
            print(f"| `{name}` | {ms:.1f} | {ms / base:.2f}x |")
        ratio = medians["hpm run --ephemeral (reuse)"] / base
        print(f"\nreuse ratio {ratio:.2f}x (target <= 1.5x): {'ok' if ratio <= 1.5 else 'TOO SLOW'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
