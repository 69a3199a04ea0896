"""``hpm smoke``: the CI image smoke test.

Makes sure the lock (or the plan) is installed, exactly as ``hpm install`` does, then
for every package of the lock: imports its top-level modules in a child process of the
target interpreter (a crash there cannot take the report down) and runs its manifest's
``smoke`` entrypoint when it has one. Prints a pass/fail table, writes a JUnit XML
report with ``--junit FILE`` (one <testcase> per check; GitHub and GitLab display it).

Exit codes: 0 every check passed; 1 a check failed; hpm's own codes (65, 66, 74, ...)
when it could not get as far as testing (the report then holds one failed ``install``
case saying why). See docs/ci.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpm_boot.log import Log
    from hpm_boot.target import Environment

#: Run in the target interpreter: import the modules given as arguments, one by one.
#: The current directory is dropped from sys.path so that a checkout in the working
#: directory cannot stand in for the installed package.
IMPORT_CODE = (
    "import importlib, sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "for name in sys.argv[1:]:\n"
    "    m = importlib.import_module(name)\n"
    "    print(name, '->', getattr(m, '__file__', None) or 'namespace package')\n"
)
SKIP_DIRS = frozenset({"tests", "test", "docs", "doc", "examples", "build", "dist", "bin", "scripts"})
SKIP_MODULES = frozenset({"setup", "conftest", "noxfile", "fabfile", "manage"})


@dataclass
class Check:
    """One test case of the report."""

    package: str
    name: str  # "import" | "smoke" | "install"
    status: str = "pass"  # pass | fail | error | skip
    seconds: float = 0.0
    message: str = ""
    detail: str = ""
    command: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hpm_boot.commands._options import add_installer_options

    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report here")
    parser.add_argument("--lock", metavar="FILE",
                        help="a lock file (JSON or payload); else HPM_LOCK_FILE, HPM_LOCK_B64, "
                        "or the registry")
    parser.add_argument("--python", metavar="PYTHON",
                        help="the interpreter to install into and test (default: hpm's; HPM_VENV wins)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="limit for each import check and smoke entrypoint (default 300)")
    parser.add_argument("--suite-name", default="hpm smoke", metavar="NAME",
                        help="the <testsuite> name in the report (default: hpm smoke)")
    add_installer_options(parser)


# ---------------------------------------------------------------- what to import


def _record_paths(dist_info: str) -> list[str]:
    try:
        with open(os.path.join(dist_info, "RECORD"), encoding="utf-8") as f:
            return [line.split(",", 1)[0] for line in f if line.strip()]
    except OSError:
        return []


def _module_name(first: str, rest: bool) -> str | None:
    """The importable name of a RECORD entry's first path component, or None."""
    if first.endswith((".dist-info", ".data", ".egg-info")) or first in ("..", "__pycache__"):
        return None
    if rest:  # a directory: a package (or a namespace package)
        return first if first.isidentifier() else None
    for suffix in (".py", ".pyc"):
        if first.endswith(suffix):
            stem = first[: -len(suffix)]
            return stem if stem.isidentifier() else None
    if first.endswith((".so", ".pyd")):
        stem = first.split(".", 1)[0]
        return stem if stem.isidentifier() else None
    return None


def _editable_roots(site_dir: str, paths: Sequence[str]) -> list[str]:
    """Source directories named by the ``.pth`` files of an editable install."""
    roots = []
    for rel in paths:
        if not rel.endswith(".pth") or "/" in rel:
            continue
        try:
            with open(os.path.join(site_dir, rel), encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except OSError:
            continue
        roots += [line for line in lines
                  if line and not line.startswith(("#", "import ")) and os.path.isdir(line)]
    return roots


def _modules_in(root: str, dist_name: str) -> list[str]:
    """Top-level modules of a source tree (an editable checkout)."""
    guess = dist_name.replace("-", "_").replace(".", "_")
    for base in (os.path.join(root, "src"), root):
        if os.path.isfile(os.path.join(base, guess, "__init__.py")) or os.path.isfile(
                os.path.join(base, f"{guess}.py")):
            return [guess]
    found = []
    for base in (os.path.join(root, "src"), root):
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for n in names:
            if n in SKIP_DIRS or n.startswith((".", "_")):
                continue
            if os.path.isfile(os.path.join(base, n, "__init__.py")) and n.isidentifier():
                found.append(n)
        if found:
            break
    return found


def top_level_modules(dist_info: str, dist_name: str) -> list[str]:
    """The importable top-level names a distribution installed.

    ``top_level.txt`` when the wheel has one; else the first path components in RECORD;
    for an editable install (a ``.pth`` pointing at a checkout), the packages of that
    checkout. Private helpers (``_x``, ``__editable__...``) and scripts are left out.
    """
    try:
        with open(os.path.join(dist_info, "top_level.txt"), encoding="utf-8") as f:
            names = sorted({n.strip().replace("/", ".") for n in f if n.strip()})
        names = [n for n in names if not n.startswith("_") and n not in SKIP_MODULES]
        if names:
            return names
    except OSError:
        pass
    paths = _record_paths(dist_info)
    names = set()
    for rel in paths:
        first, sep, _ = rel.replace("\\", "/").partition("/")
        name = _module_name(first, bool(sep))
        if name and not name.startswith("_") and name not in SKIP_MODULES:
            names.add(name)
    if names:
        return sorted(names)
    site_dir = os.path.dirname(dist_info)
    found: list[str] = []
    for root in _editable_roots(site_dir, paths):
        found += [m for m in _modules_in(root, dist_name) if m not in found]
    return found


# ---------------------------------------------------------------- running checks


def _child_env(environment: Environment, environ: Mapping[str, str]) -> dict[str, str]:
    from hpm_boot.handover import child_environ

    environ = child_environ(environment, environ)
    environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return environ


def _run(check: Check, argv: list[str], environ: Mapping[str, str], timeout: float, cwd: str | None) -> None:
    check.command = argv
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=dict(environ), cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        check.seconds = time.perf_counter() - started
        check.status, check.message = "fail", f"timed out after {timeout:g} s"
        check.stdout = _text(exc.stdout)
        check.stderr = _text(exc.stderr)
        return
    except OSError as exc:
        check.seconds = time.perf_counter() - started
        check.status, check.message = "fail", f"cannot run {argv[0]}: {exc.strerror}"
        return
    check.seconds = time.perf_counter() - started
    check.stdout, check.stderr = proc.stdout, proc.stderr
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else ""
        if proc.returncode < 0:
            import signal

            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = str(-proc.returncode)
            check.message = f"killed by {sig}" + (f": {last}" if last else "")
        else:
            check.message = f"exit {proc.returncode}" + (f": {last}" if last else "")
        check.status = "fail"


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def import_check(package: str, modules: list[str], environment: Environment, environ: Mapping[str, str],
                 timeout: float) -> Check:
    check = Check(package, "import")
    if not modules:
        check.status, check.message = "skip", "no top-level modules found (top_level.txt, RECORD)"
        return check
    argv = [environment.python, "-c", IMPORT_CODE, *modules]
    _run(check, argv, environ, timeout, cwd="/" if os.name != "nt" else None)
    if check.status == "pass":
        check.message = "import " + ", ".join(modules)
    return check


def smoke_check(package: str, command: str, environment: Environment, environ: Mapping[str, str],
                timeout: float) -> Check:
    check = Check(package, "smoke")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        check.status, check.message = "fail", f"entrypoint smoke: {exc}"
        return check
    if not argv:
        check.status, check.message = "fail", "entrypoint smoke is empty"
        return check
    from hpm_boot.handover import target_argv

    argv = target_argv(argv, environment)  # as `hpm run` does
    _run(check, argv, environ, timeout, cwd=None)
    if check.status == "pass":
        check.message = command
    return check


def dist_name(pkg: Mapping[str, Any], pins: Sequence[Mapping[str, Any]]) -> str:
    """The distribution a locked package installs (a manifest may name another, e.g.
    ``sources.prod.package``): from its requirement, or its editable pin."""
    import re

    from packaging.utils import canonicalize_name

    if pkg.get("distribution"):
        return str(pkg["distribution"])
    req = pkg.get("requirement", "")
    if req.startswith("-e "):
        path = os.path.normpath(str(pkg.get("path") or req[3:].strip()).removeprefix("file://"))
        for pin in pins:
            url = str(pin.get("url") or "").removeprefix("file://")
            if pin.get("editable") and os.path.normpath(url) == path:
                return str(pin["name"])
        return str(pkg["name"])
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not match:
        return str(pkg["name"])
    return canonicalize_name(match.group(1))


def run_checks(lock: Mapping[str, Any], environment: Environment, environ: Mapping[str, str],
               timeout: float) -> list[Check]:
    from hpm_boot.target import installed

    have = installed(environment.site_dirs)
    environ = _child_env(environment, environ)
    checks: list[Check] = []
    for pkg in lock.get("packages", []):
        name = pkg["name"]
        if pkg.get("manager") == "conda":
            checks.append(Check(name, "import", "skip", message="conda package: not imported"))
        else:
            dist = dist_name(pkg, lock.get("pins", []))
            got = have.get(dist)
            if got is None:
                checks.append(Check(name, "import", "fail", message=f"{dist} is not installed in "
                                    f"{', '.join(environment.site_dirs) or environment.python}"))
            else:
                modules = top_level_modules(got[1], dist)
                checks.append(import_check(name, modules, environment, environ, timeout))
        command = pkg.get("entrypoints", {}).get("smoke")
        if command:
            checks.append(smoke_check(name, command, environment, environ, timeout))
    return checks


# ---------------------------------------------------------------- reporting


def _versions(lock: Mapping[str, Any] | None) -> dict[str, str]:
    return {p["name"]: p.get("version", "") for p in (lock or {}).get("packages", [])}


def print_report(checks: Sequence[Check], lock: Mapping[str, Any] | None, out: Any = None) -> None:
    from hpm_boot.commands._output import print_table

    out = out or sys.stdout
    versions = _versions(lock)
    by_pkg: dict[str, dict[str, Check]] = {}
    for c in checks:
        by_pkg.setdefault(c.package, {})[c.name] = c
    rows = [("PACKAGE", "VERSION", "IMPORT", "SMOKE", "RESULT", "TIME")]
    for pkg, cs in by_pkg.items():
        result = "FAIL" if any(c.status in ("fail", "error") for c in cs.values()) else "ok"
        cells = []
        for kind in ("import", "smoke"):
            c = cs.get(kind)
            cells.append("-" if c is None else {"pass": "ok", "skip": "skipped"}.get(c.status, "FAIL"))
        if "install" in cs:
            cells[0] = "FAIL (install)"
        seconds = sum(c.seconds for c in cs.values())
        rows.append((pkg, versions.get(pkg, ""), *cells, result, f"{seconds:.2f}s"))
    print_table(rows, out)
    for c in checks:
        if c.status in ("fail", "error"):
            print(f"\n{c.package} {c.name}: {c.message}", file=out)
            tail = "\n".join((c.stderr or c.detail).strip().splitlines()[-15:])
            if tail:
                print("  " + tail.replace("\n", "\n  "), file=out)
    failed = sum(1 for c in checks if c.status in ("fail", "error"))
    skipped = sum(1 for c in checks if c.status == "skip")
    print(f"\nsmoke: {len(checks) - failed - skipped} passed, {failed} failed, {skipped} skipped "
          f"({len(by_pkg)} packages)", file=out)


def junit_xml(checks: Sequence[Check], suite: str, lock: Mapping[str, Any] | None, source: str,
              seconds: float) -> bytes:
    """The report in the JUnit XML format CI systems read (testsuites/testsuite/testcase)."""
    import socket
    import xml.etree.ElementTree as ET
    from datetime import datetime, timezone

    failures = sum(1 for c in checks if c.status == "fail")
    errors = sum(1 for c in checks if c.status == "error")
    skipped = sum(1 for c in checks if c.status == "skip")
    counts = {"tests": str(len(checks)), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": suite, **counts})
    ts = ET.SubElement(root, "testsuite", {
        "name": suite, **counts,
        "timestamp": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", ""),
        "hostname": socket.gethostname(),
    })
    props = ET.SubElement(ts, "properties")
    versions = _versions(lock)
    for key, value in (("lock", source), ("mode", (lock or {}).get("mode", "")),
                       ("python", sys.version.split()[0])):
        ET.SubElement(props, "property", {"name": key, "value": str(value)})
    for c in checks:
        label = c.package + (f" {versions[c.package]}" if versions.get(c.package) else "")
        case = ET.SubElement(ts, "testcase", {
            "classname": f"hpm.smoke.{c.package}", "name": f"{c.name} ({label})",
            "time": f"{c.seconds:.3f}",
        })
        if c.status in ("fail", "error"):
            tag = "failure" if c.status == "fail" else "error"
            el = ET.SubElement(case, tag, {"message": c.message, "type": f"smoke.{c.name}"})
            el.text = "\n".join(x for x in (
                ("$ " + shlex.join(c.command)) if c.command else "", c.detail, c.stderr.strip()) if x)
        elif c.status == "skip":
            ET.SubElement(case, "skipped", {"message": c.message})
        if c.stdout.strip():
            ET.SubElement(case, "system-out").text = c.stdout
        if c.stderr.strip() and c.status == "pass":
            ET.SubElement(case, "system-err").text = c.stderr
    ET.indent(root) if hasattr(ET, "indent") else None
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _write_report(path: str, data: bytes, log: Log) -> None:
    from hpm_boot.errors import NotWritableError
    from hpm_boot.fsutil import write_atomic

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_atomic(path, data)
    except OSError as exc:
        raise NotWritableError(f"cannot write the JUnit report {path}: {exc.strerror}",
                               "give --junit a path on a writable volume") from None
    log.info(f"wrote JUnit report {path}")


# ---------------------------------------------------------------- command


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from hpm_boot.commands.install import install_selection
    from hpm_boot.errors import HpmError
    from hpm_boot.log import Log

    started = time.perf_counter()
    try:
        data, environment, log = install_selection(args, environ)
    except HpmError as exc:
        log = Log(environ)
        code = log.error(exc)
        check = Check("hpm", "install", "error", time.perf_counter() - started, exc.message,
                      exc.details or "")
        print_report([check], None)
        if args.junit:
            _write_report(args.junit, junit_xml([check], args.suite_name, None, "", check.seconds), log)
        return code
    from hpm_boot import contract

    source = args.lock or (contract.LOCK_B64 if contract.LOCK_B64 in environ
                           else environ.get(contract.LOCK_FILE) or "registry")
    checks = run_checks(data, environment, environ, args.timeout)
    print_report(checks, data)
    if args.junit:
        _write_report(args.junit, junit_xml(checks, args.suite_name, data, source,
                                            time.perf_counter() - started), log)
    return 1 if any(c.status in ("fail", "error") for c in checks) else 0
