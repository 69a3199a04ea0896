"""``hpm.pyz plan`` on 1,000 manifests against the installed hpm: the pyz's YAML speed.

Generates the 1,000-manifest registry of bench/plan_scale.py, builds two pyz files from
this tree (offline, from ``--wheels``, default HPM_WHEELS else build/wheels): the real one,
which carries PyYAML's compiled wheels (libyaml), and one built without them, which falls
back to the vendored pure-Python yaml (what every pyz did before). Each has its cache
warmed once (a cold cache would time the one-off unpacking). Then, interleaved round by
round, times ``plan --json -r DIR --mode dev --group ...`` with:

* the installed hpm (``python -m hpm_boot``, PyYAML from the venv, with libyaml);
* ``python hpm.pyz`` (libyaml from the pyz);
* ``python hpm-pure-yaml.pyz`` (the pure-Python fallback).

Median wall time; the target is the pyz within 1.3x the installed hpm. ``--write``
records the figures under ``## hpm.pyz plan, 1,000 manifests (bench/pyz_plan.py)`` in
docs/benchmarks.md.

Run: ``.venv/bin/python bench/pyz_plan.py [--rounds 9] [--write] [--wheels DIR]``.
"""

from __future__ import annotations

import argparse
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

import build_zipapp  # noqa: E402
from bench._common import shown, write_section  # noqa: E402
from bench.plan_scale import generate  # noqa: E402

HEADING = "## hpm.pyz plan, 1,000 manifests (bench/pyz_plan.py)"
MANIFESTS = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    wheels = Path(os.environ.get("HPM_WHEELS") or ROOT / "build" / "wheels")
    parser.add_argument("--wheels", type=Path, default=wheels)
    parser.add_argument("--write", action="store_true", help="record the figures in docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpm-pyz-plan-") as tmp:
        work = Path(tmp)
        pyz, pure = work / "hpm.pyz", work / "hpm-pure-yaml.pyz"
        build_zipapp.build(pyz, args.wheels, offline=True)
        compiled = build_zipapp.COMPILED
        build_zipapp.COMPILED = ("msgspec",)  # the same tree without PyYAML's wheels
        try:
            build_zipapp.build(pure, args.wheels, offline=True)
        finally:
            build_zipapp.COMPILED = compiled
        reg = work / "registry"
        groups = generate(reg, MANIFESTS)
        plan = ["plan", "--json", "-r", str(reg), "--mode", "dev"]
        plan += [a for g in groups for a in ("--group", g)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HPM_", "PYTHON"))}
        env["HPM_CACHE"] = str(work / "cache")
        cmds = {
            "installed hpm (python -m hpm_boot), libyaml": [sys.executable, "-m", "hpm_boot", *plan],
            "python hpm.pyz, libyaml from the pyz": [sys.executable, str(pyz), *plan],
            "python hpm-pure-yaml.pyz, pure-Python yaml (before)": [sys.executable, str(pure), *plan],
        }
        check = [sys.executable, "-c", "import yaml; print(yaml.__with_libyaml__)"]
        libyaml = subprocess.run(check, capture_output=True, text=True, env=env).stdout.strip()
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for cmd in cmds.values():  # warm: unpack into the cache, fill the page cache
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if done.returncode:
                raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-2000:]}")
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                started = time.perf_counter()
                subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT, check=True)
                times[name].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["installed hpm (python -m hpm_boot), libyaml"]
    lines = [HEADING, "",
             f"Python {platform.python_version()} ({shown(sys.executable)}), {platform.machine()}, "
             f"{os.cpu_count()} CPUs "
             f"shared with other work; the venv's PyYAML has libyaml: {libyaml}. The registry of "
             f"bench/plan_scale.py with {MANIFESTS} manifests (10 of its 20 groups selected); "
             f"`plan --json`, {args.rounds} interleaved rounds, medians, caches warm.", "",
             "| command | median s | min s | × installed |", "|---|---:|---:|---:|"]
    for name, values in times.items():
        lines.append(f"| {name} | {med[name]:.3f} | {min(values):.3f} | {med[name] / base:.2f} |")
    ratio = med["python hpm.pyz, libyaml from the pyz"] / base
    before = med["python hpm-pure-yaml.pyz, pure-Python yaml (before)"] / base
    lines += ["", f"Target: `hpm.pyz plan` on {MANIFESTS} manifests within 1.3× the installed hpm: "
              f"{ratio:.2f}×, {'met' if ratio <= 1.3 else 'MISSED'} "
              f"(the pure-Python fallback: {before:.2f}×).", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text, HEADING)
        print("wrote docs/benchmarks.md")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
