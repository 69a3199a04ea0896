"""Warm start of ``hpm.pyz run`` against a bare interpreter, an installed hpm, shiv and pex.

Builds 50 tiny wheels (tests/support/factory.py), a registry of 50 PyPI-style manifests,
locks it with the installed hpm (``--find-links``, no index), installs the lock into a
venv with ``hpm.pyz install`` (``HPM_VENV``), then times, interleaved round by round:

* ``python -c pass`` (the bar) and the venv's ``python -c pass`` (the exec'd target alone);
* ``python hpm.pyz run -- python -c pass`` (lock installed, digest unchanged: the hot path),
  with the shipped bytecode and with a pyz built without it, and the same target named by
  ``HPM_ENTRYPOINT`` (a manifest entrypoint ``serve: python -c pass``);
* the installed hpm (``python -m hpm_boot run -- ...``);
* a shiv-built and a pex-built launcher of PyYAML, packaging and msgspec whose entry point
  returns at once (shiv and pex come from PyPI into a throwaway venv, for this bench only).

Wall time is the median; CPU time (user+sys of the child, from ``wait4``) is the median
too and is steadier on a busy machine. Writes the figures under
``## hpm.pyz warm start (bench/pyz_warm.py)`` in docs/benchmarks.md.

Run: ``.venv/bin/python bench/pyz_warm.py [--python PYTHON] [--rounds 40] [--no-write] [--no-tools]``.
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
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import build_zipapp  # noqa: E402
from bench._common import shown, write_section  # noqa: E402
from tests.support.factory import Pkg, hermetic_env, make_wheelhouse, uv_bin  # noqa: E402

HEADING = "## hpm.pyz warm start (bench/pyz_warm.py)"
FLOOR = "a zipapp that only execs the target (the floor)"
INSTALL_ROW = "python hpm.pyz install (installed: all of a warm run but the exec)"
ENTRY_ROW = "HPM_ENTRYPOINT=serve python hpm.pyz run (serve: python -c pass)"
PACKAGES = 50
HELLO = Pkg("hpmbench-hello", "1.0.0", modules={"hpmbench_hello/__init__.py": "def main():\n    return 0\n"})


def sh(cmd: list[str], env: dict[str, str] | None = None, **kw: object) -> str:
    """Run ``cmd``; its stdout, or SystemExit with its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)  # type: ignore[call-overload]
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}")
    return done.stdout


def measure(cmds: dict[str, list[str]], envs: dict[str, dict[str, str]], rounds: int) -> dict[str, tuple]:
    """name -> (median wall ms, median CPU ms); the commands take turns, round after round."""
    wall: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, env=envs[name], stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((usage.ru_utime + usage.ru_stime) * 1000)
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(f"{name} failed: {cmd}")
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in cmds}


def instructions(cmds: dict[str, list[str]], env: dict[str, str]) -> dict[str, int] | None:
    """name -> instructions executed (valgrind's callgrind: the same count every run, however
    busy the machine), or None without valgrind. Counted up to exit or exec."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    out = {}
    for name, cmd in cmds.items():
        done = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                              env=env, capture_output=True, text=True)
        counts = [line.split()[-1] for line in done.stderr.splitlines() if "Collected" in line]
        if done.returncode or not counts:
            raise SystemExit(f"valgrind {name} failed:\n{done.stderr[-2000:]}")
        out[name] = int(counts[-1])
    return out


def setup_tools(tmp: Path, python: str, wheels: Path, wh: Path, env: dict[str, str]) -> dict[str, Path]:
    """shiv and pex (from PyPI, into a throwaway venv) and their launchers of the three deps."""
    tools = tmp / "tools"
    uv = str(uv_bin())
    net = {k: v for k, v in env.items() if k != "UV_OFFLINE"}
    sh([uv, "venv", "-q", "--seed", "--python", python, str(tools)], env=net)
    sh([uv, "pip", "install", "-q", "--python", str(tools / "bin" / "python"), "shiv", "pex"], env=net)
    reqs = [f"PyYAML=={build_zipapp.PINS['PyYAML']}", f"packaging=={build_zipapp.PINS['packaging']}",
            f"msgspec=={build_zipapp.PINS['msgspec']}", "hpmbench-hello"]  # fmt: skip
    links = ["--find-links", str(wh), "--find-links", str(wheels)]
    out = {"shiv": tmp / "hello.shiv", "pex": tmp / "hello.pex"}
    sh([str(tools / "bin" / "shiv"), "-q", "-o", str(out["shiv"]), "-e", "hpmbench_hello:main",
        "-p", "/usr/bin/env python3", *links, *reqs], env=net)  # fmt: skip
    sh([str(tools / "bin" / "pex"), *reqs, *links, "-e", "hpmbench_hello:main", "--python", python,
        "-o", str(out["pex"])], env=net)  # fmt: skip
    return out


def other_pythons(tmp: Path, pyz: Path, floor: Path, reg: Path, links: list[str], env: dict[str, str],
                  skip: str, rounds: int) -> list[str]:
    """Table rows for every other CPython 3.10-3.13 under ~/.pyenv: its bare start, the
    floor zipapp and the warm ``hpm.pyz run``, each with the lock installed for it."""
    rows = []
    for version in ("3.10", "3.11", "3.12", "3.13"):
        python = build_zipapp.find_python(version)
        if python is None or version == skip:
            continue
        lock = sh([sys.executable, "-m", "hpm_boot", "lock", "--format", "b64", "--python-version", version,
                   "-r", str(reg), *links], env=env).strip()  # fmt: skip
        run_env = {**env, "HPM_VENV": str(tmp / f"venv-{version}"), "HPM_LOCK_B64": lock, "HPM_LOG": "quiet"}
        sh([python, str(pyz), "install", *links], env=run_env)
        cmds = {"bare": [python, "-c", "pass"], "floor": [python, str(floor)],
                "pyz": [python, str(pyz), "run", "--", "python", "-c", "pass"]}  # fmt: skip
        got = measure(cmds, dict.fromkeys(cmds, run_env), rounds)
        bare = got["bare"][0]
        full = sh([python, "-c", "import platform; print(platform.python_version())"]).strip()
        rows.append(f"| {full} | {bare:.1f} | {got['floor'][0] / bare:.2f} | {got['pyz'][0] / bare:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs hpm.pyz (default: this one, so that the installed "
                        "hpm of this venv can be compared)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=40)
    wheels = Path(os.environ.get("HPM_WHEELS") or ROOT / "build" / "wheels")
    parser.add_argument("--wheels", type=Path, default=wheels)
    parser.add_argument("--no-tools", action="store_true", help="skip shiv and pex (no PyPI)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args(argv)
    python = args.python
    version = sh([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
    full_version = sh([python, "-c", "import platform; print(platform.python_version())"]).strip()
    tmp = Path(tempfile.mkdtemp(prefix="hpm-bench-pyz-"))
    try:
        env = hermetic_env(tmp / "uv-cache")
        env = {k: v for k, v in env.items() if not k.startswith(("HPM_", "PYTHON"))}
        env["HPM_CACHE"] = str(tmp / "hpm-cache")
        print(f"building in {tmp}", file=sys.stderr)
        pyz, plain = tmp / "hpm.pyz", tmp / "hpm-nobytecode.pyz"
        info = build_zipapp.build(pyz, args.wheels, offline=True)
        plain_info = build_zipapp.build(plain, args.wheels, offline=True, bytecode=[])
        wh = make_wheelhouse(
            tmp / "wh", [Pkg(f"hpmbench-p{i:02d}", "1.0.0") for i in range(PACKAGES)] + [HELLO]
        )
        reg = tmp / "registry"
        reg.mkdir()
        names = [f"hpmbench-p{i:02d}" for i in range(PACKAGES)]
        for name in names:
            source = f"{{type: pypi, package: {name}, version: '==1.0.0'}}"
            entry = "entrypoints: {serve: 'python -c pass'}\n" if name == names[0] else ""
            text = f"name: {name}\nversion: 1.0.0\nsources:\n  prod: {source}\n{entry}"
            (reg / f"{name}.yaml").write_text(text)
        (reg / "hpm-registry.yaml").write_text(f"defaults:\n  with: [{', '.join(names)}]\n")
        links = ["--find-links", str(wh), "--no-index"]
        lock = sh([sys.executable, "-m", "hpm_boot", "lock", "--format", "b64", "--python-version", version,
                   "-r", str(reg), *links], env=env).strip()  # fmt: skip
        venv = tmp / "venv"
        run_env = {**env, "HPM_VENV": str(venv), "HPM_LOCK_B64": lock, "HPM_LOG": "quiet"}
        sh([python, str(pyz), "install", *links], env={**run_env, "HPM_LOG": "info"})
        cmd = [python, str(pyz), "run", "--", "python", "-c", "pass"]
        check = subprocess.run(cmd, env={**run_env, "HPM_LOG": "info"}, capture_output=True, text=True)
        assert "already installed" in check.stderr, check.stderr
        target = ["python", "-c", "pass"]
        floor = tmp / "floor.pyz"  # the least any zipapp can do: start, then exec the target
        with zipfile.ZipFile(floor, "w") as zf:
            zf.writestr("__main__.py", "import os\npython = os.environ['HPM_VENV'] + '/bin/python'\n"
                        "os.execv(python, [python, '-c', 'pass'])\n")
        cmds = {
            "python -c pass": [python, "-c", "pass"],
            "venv python -c pass (the exec'd target)": [str(venv / "bin" / "python"), "-c", "pass"],
            "python hpm.pyz --version": [python, str(pyz), "--version"],
            FLOOR: [python, str(floor)],
            "python hpm.pyz run -- python -c pass": [python, str(pyz), "run", "--", *target],
            "same, pyz without bytecode": [python, str(plain), "run", "--", *target],
        }
        envs = dict.fromkeys(cmds, run_env)
        cmds[ENTRY_ROW] = [python, str(pyz), "run"]  # the manifest's `serve`: python -c pass
        envs[ENTRY_ROW] = {**run_env, "HPM_ENTRYPOINT": "serve"}
        installed = shutil.which("hpm", path=str(Path(sys.executable).parent))
        if installed and version == f"{sys.version_info[0]}.{sys.version_info[1]}":
            cmds["installed hpm run -- python -c pass"] = [installed, "run", "--", *target]
            envs["installed hpm run -- python -c pass"] = run_env
        sizes = {
            "hpm.pyz (all platforms, bytecode)": info["size"],
            "hpm.pyz without bytecode": plain_info["size"],
        }
        if not args.no_tools:
            launchers = setup_tools(tmp, python, args.wheels, wh, env)
            tool_env = {**env, "SHIV_ROOT": str(tmp / "shiv-root"), "PEX_ROOT": str(tmp / "pex-root")}
            for tool, path in launchers.items():
                sh([python, str(path)], env=tool_env)  # warm its cache
                name = f"{tool} launcher (PyYAML, packaging, msgspec), warm"
                cmds[name], envs[name] = [python, str(path)], tool_env
                sizes[f"{tool} launcher ({platform.machine()} cp{version.replace('.', '')} only)"] = (
                    path.stat().st_size
                )
        results = measure(cmds, envs, args.rounds)
        exits = tmp / "exits.pyz"  # a zipapp that exits at once: what running any zipapp costs
        with zipfile.ZipFile(exits, "w") as zf:
            zf.writestr("__main__.py", "import os\nos._exit(0)\n")
        counted = instructions({
            "python -c pass": [python, "-c", "pass"],
            "the venv's python -c pass (the exec'd target)": [str(venv / "bin" / "python"), "-c", "pass"],
            "a zipapp that exits at once": [python, str(exits)],
            INSTALL_ROW: [python, str(pyz), "install"],
        }, run_env)
        others = other_pythons(tmp, pyz, floor, reg, links, env, version, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_wall, base_cpu = results["python -c pass"]
    lines = [
        HEADING,
        "",
        f"Python {full_version} ({shown(python)}), {platform.machine()}, {os.cpu_count()} CPUs shared "
        f"with other work; {args.rounds} interleaved rounds, medians. The lock has {PACKAGES} packages, "
        "installed in a venv (`HPM_VENV`) and unchanged, so `run` takes the hot path and execs the target. "
        "CPU is user+sys of the child (steadier than wall time on a busy machine).",
        "",
        "| command | wall ms | × bare | CPU ms | × bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (wall, cpu) in results.items():
        lines.append(f"| `{name}` | {wall:.1f} | {wall / base_wall:.2f} | {cpu:.1f} | {cpu / base_cpu:.2f} |")
    ratio = results["python hpm.pyz run -- python -c pass"][0] / base_wall
    floor_ratio = results[FLOOR][0] / base_wall
    own = results["python hpm.pyz run -- python -c pass"][0] - results[FLOOR][0]
    verdict = (
        f"{'met' if ratio <= 2.5 else 'MISSED'}. Two interpreter starts make 2× already, and a zipapp "
        f"that does nothing but exec the target costs {floor_ratio:.2f}×: hpm.pyz's own part is "
        f"{ratio - floor_ratio:.2f}× ({own:.1f} ms); docs/pyz.md (Start-up cost) says where it goes."
    )
    lines += ["", f"Target: the warm `hpm.pyz run` within 2.5× of `python -c pass`: {ratio:.2f}×, {verdict}"]
    target_wall = results["venv python -c pass (the exec'd target)"][0]
    lines += ["", f"Against the exec'd target itself (the venv's `python -c pass`): `hpm.pyz run` "
              f"{results['python hpm.pyz run -- python -c pass'][0] / target_wall:.2f}×, the floor "
              f"{results[FLOOR][0] / target_wall:.2f}×."]
    if counted:
        bare_count = counted["python -c pass"]
        lines += ["", "Instructions executed (valgrind --tool=callgrind; the same every run), up to exit "
                  "or exec:", "", "| command | instructions | × bare |", "|---|---:|---:|"]
        lines += [f"| {name} | {n:,} | {n / bare_count:.2f} |" for name, n in counted.items()]
        pyz_n = counted[INSTALL_ROW]
        zip_n = counted["a zipapp that exits at once"]
        target_n = counted["the venv's python -c pass (the exec'd target)"]
        lines += ["", f"A warm `hpm.pyz run` is the install row plus the target's start: "
                  f"{(pyz_n + target_n) / target_n:.2f}× the target in instructions, of which running any "
                  f"zipapp takes {(zip_n + target_n) / target_n:.2f}× and hpm's own code "
                  f"{(pyz_n - zip_n) / target_n:.2f}× ({(pyz_n - zip_n) / 1e6:.1f} M instructions)."]
    if others:
        lines += ["", "The other interpreters here (pyenv builds), the same lock installed for each, wall "
                  "time, medians:", "",
                  "| Python | `python -c pass` ms | floor × bare | `hpm.pyz run` × bare |",
                  "|---|---:|---:|---:|", *others]  # fmt: skip
    lines += ["", "| file | bytes |", "|---|---:|"]
    lines += [f"| {name} | {size:,} |" for name, size in sizes.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
