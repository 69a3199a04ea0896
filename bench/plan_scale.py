"""How ``hpm plan`` scales with the size of the registry.

Generates registries of 100, 1,000 and 5,000 manifests into a temporary directory:
50 virtuals (every 2nd package provides one), 20 feature groups, ``requires``
between packages (each package requires up to three earlier non-providers, with
version specifiers), a ``.dev.yaml`` overlay for every 4th package and a ``.local.yaml`` for
every 25th, and an ``hpm-registry.yaml`` choosing the provider of every virtual, with
registry-wide ``constraints`` (one per 10 manifests) and ``overrides`` (one per 50).
It then times ``python -m hpm_boot plan -r DIR --mode dev --group ...`` (a subprocess,
the way a user runs it; half of the groups selected, so a good share of the registry
ends up in the plan), best of several runs, prints the three times and the ratios,
and checks: 1,000 manifests in under 1 s, 1000/100 <= 10, 5000/1000 <= 5.
The figures go into ``docs/benchmarks.md`` under ``## hpm plan scaling
(bench/plan_scale.py)``.

Run: ``python bench/plan_scale.py [--no-write] [--runs N]``. Exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import write_section  # noqa: E402

HEADING = "## hpm plan scaling (bench/plan_scale.py)"
SIZES = (100, 1000, 5000)
VIRTUALS = 50
GROUPS = 20


def generate(root: Path, n: int, seed: int = 1) -> list[str]:
    """Write a registry of ``n`` manifests into ``root``; return the groups to select."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    checkouts = root.parent / "checkouts"
    checkouts.mkdir(exist_ok=True)
    providers: dict[str, list[int]] = {}
    for i in range(n):
        name = f"plugin-{i:05d}"
        lines = [f"name: {name}", f"version: 1.{i % 7}.{i % 13}", f"description: Generated plugin number {i}"]
        if i % 2 == 0:
            virtual = f"iface-{(i // 2) % VIRTUALS:02d}"
            providers.setdefault(virtual, []).append(i)
            lines.append(f"provides: [{virtual}]")
        # Providers are reached through their virtual only (two selected providers of
        # one virtual would be an error): groups and requires name odd packages.
        if i % 3 == 0 and i % 2:
            lines.append(f"groups: [feature-{rng.randrange(GROUPS):02d}]")
        deps = sorted({rng.randrange(i // 2) * 2 + 1 for _ in range(3)}) if i > 2 else []
        if deps:
            lines.append("requires:")
            lines += [f'  plugin-{d:05d}: ">=1.0,<2"' for d in deps]
        lines += [
            "sources:",
            f'  prod: {{type: pypi, package: gen-{name}, version: "==1.{i % 7}.{i % 13}"}}',
            "install_args:",
            "  extras: [fast]",
            "entrypoints:",
            f'  serve: "python -m plugin_{i} serve --port {8000 + i % 1000}"',
        ]
        (root / f"{name}.yaml").write_text("\n".join(lines) + "\n")
        if i % 4 == 0:
            path = checkouts / name
            if i % 8 == 0:
                path.mkdir(exist_ok=True)
            (root / f"{name}.dev.yaml").write_text(
                f"sources:\n  dev: {{type: local, path: ../checkouts/{name}, editable: true}}\n"
                "install_args:\n  extras: [fast, debug]\n"
            )
        if i % 25 == 0:
            (root / f"{name}.local.yaml").write_text("description: tuned locally\n")
    defaults = {v: f"plugin-{ps[-1]:05d}" for v, ps in sorted(providers.items())}
    groups = {f"feature-{g:02d}": [f"iface-{(g * 2) % VIRTUALS:02d}"] for g in range(GROUPS)}
    (root / "hpm-registry.yaml").write_text(
        json.dumps(
            {
                "groups": groups,
                "defaults": {"with": ["plugin-00001"], "providers": defaults},
                "constraints": [f"third-party-{k:05d}>=1,<{2 + k % 3}" for k in range(n // 10)],
                "overrides": [f"shared-lib-{k:05d}=={1 + k % 4}.0" for k in range(n // 50)],
            }
        )
        + "\n"
    )
    return [f"feature-{g:02d}" for g in range(0, GROUPS, 2)]


def time_plan(registry: Path, groups: list[str], runs: int) -> tuple[float, int]:
    """Best wall time of ``hpm plan --json`` over ``runs`` runs, and the plan's size."""
    cmd = [sys.executable, "-m", "hpm_boot", "plan", "--json", "-r", str(registry), "--mode", "dev"]
    for g in groups:
        cmd += ["--group", g]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HPM_REGISTRY", None)
    best, size = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"hpm plan failed ({proc.returncode}):\n{proc.stderr.decode()[:2000]}")
        best = min(best, elapsed)
        size = len(json.loads(proc.stdout)["packages"])
    return best, size


def startup(runs: int) -> float:
    """Best time of ``python -m hpm_boot --version``: the fixed cost in every figure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hpm_boot", "--version"], capture_output=True, env=env, check=True
        )
        best = min(best, time.perf_counter() - start)
    return best


def write_doc(table: str) -> None:
    """Add or replace this script's section of docs/benchmarks.md, leaving the others."""
    import yaml

    env = (
        f"Python {platform.python_version()}, PyYAML {yaml.__version__} "
        f"({'libyaml CSafeLoader' if yaml.__with_libyaml__ else 'pure-Python loader'}), "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    section = (
        f"{HEADING}\n\n"
        "Generated registries: every 2nd package provides one of 50 virtuals, every 3rd "
        "of the others joins one of 20 groups, each requires up to three earlier non-providers with a "
        "specifier, every 4th has a `.dev.yaml` overlay (half of those checked out), every "
        "25th a `.local.yaml`; `hpm-registry.yaml` chooses each virtual's provider and holds "
        "registry-wide `constraints` (one per 10 manifests) and `overrides` (one per 50). Timed: "
        "`python -m hpm_boot plan --json -r DIR --mode dev --group …` (10 of the 20 groups) "
        "as a subprocess, best of several runs, so each figure includes the interpreter "
        "start (`startup` row).\n"
        f"Measured on {env}.\n\n{table}\n"
    )
    write_section(section, HEADING)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--runs", type=int, default=5, help="runs per size (best is kept)")
    args = parser.parse_args()
    times: dict[int, float] = {}
    planned: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="hpm-plan-scale-") as tmp:
        base = startup(args.runs)
        for n in SIZES:
            reg = Path(tmp) / f"r{n}" / "registry"
            groups = generate(reg, n)
            times[n], planned[n] = time_plan(reg, groups, args.runs)
            print(
                f"{n:>5} manifests: {times[n]:.3f} s  ({planned[n]} packages in the plan, "
                f"{(times[n] - base) / n * 1e3:.3f} ms per manifest above startup)"
            )
    r1, r2 = times[1000] / times[100], times[5000] / times[1000]
    print(f"startup ({sys.executable} -m hpm_boot --version): {base:.3f} s")
    print(f"ratio 1000/100: {r1:.2f} (limit 10)   ratio 5000/1000: {r2:.2f} (limit 5)")
    checks = {
        "1,000 manifests under 1 s": times[1000] < 1.0,
        "ratio 1000/100 <= 10": r1 <= 10,
        "ratio 5000/1000 <= 5": r2 <= 5,
    }
    for what, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    rows = [
        "| manifests | packages in plan | `hpm plan` (best) | ms per manifest above startup |",
        "|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {n:,} | {planned[n]:,} | {times[n]:.3f} s | {(times[n] - base) / n * 1e3:.3f} |" for n in SIZES
    ]
    rows += [
        f"| startup | | {base:.3f} s | |",
        "",
        f"Ratios: 1000/100 = {r1:.2f} (limit 10), 5000/1000 = {r2:.2f} (limit 5). "
        f"1,000 manifests under 1 s: {'yes' if checks['1,000 manifests under 1 s'] else 'NO'}.",
    ]
    if not args.no_write:
        write_doc("\n".join(rows))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
