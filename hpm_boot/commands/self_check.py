"""``hpm self-check``: can hpm work here? The first thing to run in a new image.

Reports the interpreter (version, executable, implementation, wheel tags), the msgspec
wheel this ``hpm.pyz`` picks and where it is or would be unpacked (then imports msgspec
to prove it, timed), every candidate cache place and its state, the installers found
(uv and its version, conda/mamba/micromamba, pip), which ``HPM_*`` variables are set
(never their values), and hpm's version and build commit.

Exit 0 when hpm can work (msgspec importable, uv found); else the code of the first
problem: 65/66/73 from msgspec (damaged wheel, no wheel for this platform, no usable
cache), 69 when uv is missing. Works from ``hpm.pyz`` and from an installed hpm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from hpm_boot import _pyz, contract
from hpm_boot.commands._output import hpm_commit
from hpm_boot.errors import HpmError

#: Variables whose presence (never value) is reported.
VARIABLES = (
    contract.VENV, contract.LOCK_B64, contract.LOCK_FILE, contract.LOCK_KEY, contract.LOCK_KEY_FILE,
    contract.CACHE, contract.UV, contract.REGISTRY,
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json`` for machine-readable output."""
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Print the report; return 0 when hpm can work here, else the first problem's code."""
    report = collect(environ)
    if args.json:
        import json

        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report)
    return int(report["exit_code"])


# -- gathering ----------------------------------------------------------------------------


def collect(environ: Mapping[str, str]) -> dict[str, Any]:
    """The whole report as a JSON-able dict (``exit_code`` and ``problems`` included)."""
    info = _pyz.self_check_info()
    build = info.pop("build")
    report: dict[str, Any] = {
        "hpm": {"version": build.get("version"), "commit": hpm_commit(build),
                "archive": info.pop("archive"), "lib": info.pop("lib"), "bytecode": _bytecode_state()},
        "interpreter": {
            "version": info.pop("python"),
            "executable": info.pop("executable"),
            "implementation": sys.implementation.name,
            "interpreter_tag": info.pop("interpreter"),
            "abi_tag": info.pop("abi"),
            "platform_tags": info.pop("platform_tags"),
        },
        "cache": {"places": [
            {"path": p, "state": _pyz.place_state(p)} for p in _pyz.cache_places()
        ]},
        "variables": {name: name in environ for name in VARIABLES},
    }  # fmt: skip
    problems: list[tuple[int, str]] = []
    report["msgspec"] = _msgspec(info, problems)
    report["yaml"] = _yaml()
    report["installers"] = _installers(environ, problems)
    report["problems"] = [message for _, message in problems]
    report["exit_code"] = problems[0][0] if problems else 0
    return report


def _bytecode_state() -> str:
    """Whether hpm's modules came from bytecode shipped in the pyz, for this interpreter."""
    if _pyz.PYZ is None:
        return "installed package (the interpreter's own __pycache__)"
    if _pyz.compiled():
        return f"compiled for {sys.implementation.cache_tag}, shipped in the pyz"
    return f"none for {sys.implementation.cache_tag}: compiled from source at every start"


def _msgspec(info: dict[str, Any], problems: list[tuple[int, str]]) -> dict[str, Any]:
    """The wheel chosen, where it lives, and the outcome of importing msgspec (timed)."""
    out: dict[str, Any] = {}
    if _pyz.PYZ is not None:
        out["wheel"] = info.get("msgspec_wheel")
        out["cached_in"] = info.get("msgspec_dir")
        if out["cached_in"] is None and out["wheel"]:
            out["would_unpack_into"] = _pyz.first_usable_place()
    already = "msgspec" in sys.modules
    start = time.perf_counter()
    try:
        import msgspec
    except HpmError as exc:
        out["import"] = {"ok": False, "exit_code": exc.exit_code, "error": exc.message,
                         "details": exc.details}  # fmt: skip
        problems.append((exc.exit_code, f"msgspec: {exc.message}"))
        return out
    except ImportError as exc:
        out["import"] = {"ok": False, "exit_code": 66, "error": str(exc)}
        problems.append((66, f"msgspec cannot be imported: {exc}; install hpm with its dependencies"))
        return out
    out["import"] = {
        "ok": True,
        "version": getattr(msgspec, "__version__", "?"),
        "location": os.path.dirname(msgspec.__file__ or ""),
        "ms": round((time.perf_counter() - start) * 1000, 1),
        "already_imported": already,
    }
    return out


def _yaml() -> dict[str, Any]:
    """Which PyYAML serves, and whether with libyaml (the pyz's wheel, else pure Python)."""
    try:
        import yaml
    except (ImportError, HpmError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "version": getattr(yaml, "__version__", "?"), "libyaml": bool(yaml.__with_libyaml__),
            "location": os.path.dirname(yaml.__file__ or "")}


def _run_version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if done.returncode == 0 and text else None


def _installers(environ: Mapping[str, str], problems: list[tuple[int, str]]) -> dict[str, Any]:
    """uv (as hpm finds it, with its version), conda-likes on PATH, pip in this interpreter."""
    from hpm_boot.uvbin import find_uv

    out: dict[str, Any] = {}
    try:
        uv = find_uv(environ)
        out["uv"] = {"path": uv, "version": _run_version([uv, "--version"])}
    except HpmError as exc:
        out["uv"] = {"path": None, "error": exc.message}
        problems.append((exc.exit_code, exc.message))
    out["conda"] = {name: shutil.which(name, path=environ.get("PATH"))
                    for name in ("conda", "mamba", "micromamba")}  # fmt: skip
    import importlib.util

    pip = importlib.util.find_spec("pip")
    out["pip"] = os.path.dirname(pip.origin) if pip and pip.origin else None
    return out


# -- printing -----------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    """The report for humans: sections of ``key  value`` lines, problems last."""
    hpm, interp, ms, inst = report["hpm"], report["interpreter"], report["msgspec"], report["installers"]
    rows: list[tuple[str, str]] = [
        ("hpm", f"{hpm['version']} (commit {hpm['commit']})"),
        ("running from", hpm["archive"] or "installed package"),
        *([("hpm modules in", hpm["lib"])] if hpm["lib"] else []),
        ("bytecode", hpm["bytecode"]),
        ("python", f"{interp['version']} {interp['implementation']} ({interp['executable']})"),
        ("tags", f"{interp['interpreter_tag']}-{interp['abi_tag']}-{interp['platform_tags'][0]}"
                 f" (+{len(interp['platform_tags']) - 1} older platform tags)"),
    ]  # fmt: skip
    if hpm["archive"]:
        rows.append(("msgspec wheel", ms.get("wheel") or "none matches this interpreter"))
        where = ms.get("cached_in") or (f"not unpacked yet; would go to {ms['would_unpack_into']}"
                                        if ms.get("would_unpack_into") else "nowhere usable")  # fmt: skip
        rows.append(("msgspec cache", where))
    result = ms["import"]
    if result["ok"]:
        how = "already imported" if result["already_imported"] else f"{result['ms']} ms"
        rows.append(("import msgspec", f"ok, {result['version']} from {result['location']} ({how})"))
    else:
        rows.append(("import msgspec", f"FAILED (exit {result['exit_code']}): {result['error']}"))
    y = report["yaml"]
    kind = "with libyaml" if y.get("libyaml") else "pure Python (slower)"
    rows.append(("import yaml", f"ok, {y['version']} {kind} from {y['location']}" if y["ok"]
                 else f"FAILED: {y['error']}"))
    for place in report["cache"]["places"]:
        rows.append(("cache place", f"{place['path']}: {place['state']}"))
    uv = inst["uv"]
    rows.append(("uv", f"{uv['path']} ({uv.get('version') or 'version unknown'})" if uv["path"]
                 else f"MISSING: {uv['error']}"))  # fmt: skip
    conda = [f"{k} {v}" for k, v in inst["conda"].items() if v]
    rows.append(("conda", ", ".join(conda) or "none on PATH"))
    rows.append(("pip", inst["pip"] or "not in this interpreter"))
    rows.append(("variables", ", ".join(f"{k} {'set' if v else 'unset'}"
                                        for k, v in report["variables"].items())))  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    if report["problems"]:
        print("\nproblems:")
        for problem in report["problems"]:
            print(f"  - {problem}")
        print(f"hpm cannot work here yet (exit {report['exit_code']})")
    else:
        print("\nok: hpm can work here")
