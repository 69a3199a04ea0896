"""``hpm smoke`` on the host, hermetic: a wheelhouse, a registry, a fresh venv per test.

The container side (the same command inside a built image) is in tests/container.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hpm_boot.cli import main
from hpm_boot.commands import smoke
from tests.support.factory import DEFAULT_PACKAGES, Pkg, make_project, make_wheelhouse

EXTRA = (
    Pkg("hpmtest-broken", "1.0.0",
        modules={"hpmtest_broken/__init__.py": "raise RuntimeError('boom at import')\n"}),
    Pkg("hpmtest-crash", "1.0.0", modules={"hpmtest_crash/__init__.py": "import os\nos.abort()\n"}),
    Pkg("hpmtest-multi", "1.0.0", modules={
        "alpha/__init__.py": "A = 1\n", "beta.py": "B = 2\n", "_private.py": "raise SystemExit(9)\n"}),
)

MANIFESTS = {
    "hpmtest-app": 'entrypoints: {smoke: "python -m hpmtest_app smoke-ok"}',
    "hpmtest-multi": "",
    "hpmtest-broken": "",
    "hpmtest-crash": "",
    "hpmtest-failsmoke": "entrypoints: {smoke: \"python -c 'import sys; print(42); sys.exit(3)'\"}",
    "hpmtest-slowsmoke": "entrypoints: {smoke: \"python -c 'import time; time.sleep(30)'\"}",
}
DISTS = {"hpmtest-failsmoke": "hpmtest-dep", "hpmtest-slowsmoke": "hpmtest-core"}
VERSIONS = {"hpmtest-app": "1.0.0", "hpmtest-dep": "1.0.0", "hpmtest-core": "2.0.0"}


@pytest.fixture(scope="module")
def smoke_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_wheelhouse(tmp_path_factory.mktemp("smoke-wh"), [*DEFAULT_PACKAGES, *EXTRA])


@pytest.fixture(scope="module")
def smoke_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reg = tmp_path_factory.mktemp("smoke-registry")
    for name, extra in MANIFESTS.items():
        dist = DISTS.get(name, name)
        version = VERSIONS.get(dist, "1.0.0")
        (reg / f"{name}.yaml").write_text(
            f"name: {name}\nversion: {version}\n"
            f'sources:\n  prod: {{type: pypi, package: {dist}, version: "=={version}"}}\n{extra}\n'
        )
    return reg


def run_smoke(capsys, registry: Path, wheelhouse: Path, venv: Path, *args: str) -> tuple[int, str, str]:
    argv = ["smoke", "--registry", str(registry), "--python", str(venv),
            "--no-index", "--find-links", str(wheelhouse), *args]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def parse_junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def test_all_pass_writes_table_and_junit(capsys, smoke_registry, smoke_wheelhouse, venv, tmp_path):
    report = tmp_path / "reports" / "smoke.xml"
    code, out, err = run_smoke(capsys, smoke_registry, smoke_wheelhouse, venv,
                               "--with", "hpmtest-app,hpmtest-multi", "--junit", str(report))
    assert code == 0, out + err
    assert "PACKAGE" in out and "hpmtest-app" in out and "hpmtest-multi" in out
    assert "smoke: 3 passed, 0 failed, 0 skipped (2 packages)" in out
    suite = parse_junit(report)
    assert suite.get("tests") == "3" and suite.get("failures") == "0" and suite.get("errors") == "0"
    cases = {(c.get("classname"), c.get("name").split()[0]): c for c in suite.findall("testcase")}
    assert set(cases) == {("hpm.smoke.hpmtest-app", "import"), ("hpm.smoke.hpmtest-app", "smoke"),
                          ("hpm.smoke.hpmtest-multi", "import")}
    for case in cases.values():
        assert float(case.get("time")) >= 0
        assert case.find("failure") is None
    # the smoke entrypoint really ran, with its arguments, in the target interpreter
    assert "hpmtest-app smoke-ok" in cases[("hpm.smoke.hpmtest-app", "smoke")].findtext("system-out")
    # top-level modules from RECORD: the public ones, not _private (which would exit 9)
    imported = cases[("hpm.smoke.hpmtest-multi", "import")].findtext("system-out")
    assert "alpha ->" in imported and "beta ->" in imported and "_private" not in imported


def test_failures_are_reported_per_package_exit_1(capsys, smoke_registry, smoke_wheelhouse, venv, tmp_path):
    report = tmp_path / "smoke.xml"
    code, out, err = run_smoke(
        capsys, smoke_registry, smoke_wheelhouse, venv, "--junit", str(report),
        "--with", "hpmtest-app,hpmtest-broken,hpmtest-crash,hpmtest-failsmoke")
    assert code == 1, out + err
    table = out.split("\n\n")[0].splitlines()
    lines = {line.split()[0]: line for line in table if line.startswith("hpmtest-")}
    assert lines["hpmtest-app"].split()[-2] == "ok"
    for bad in ("hpmtest-broken", "hpmtest-crash", "hpmtest-failsmoke"):
        assert lines[bad].split()[-2] == "FAIL", out
    assert "RuntimeError: boom at import" in out
    assert "killed by SIGABRT" in out  # the child crashed; the report did not
    suite = parse_junit(report)
    assert suite.get("tests") == "6" and suite.get("failures") == "3"
    failures = {c.get("classname"): c.find("failure") for c in suite.findall("testcase")
                if c.find("failure") is not None}
    assert set(failures) == {"hpm.smoke.hpmtest-broken", "hpm.smoke.hpmtest-crash",
                             "hpm.smoke.hpmtest-failsmoke"}
    assert failures["hpm.smoke.hpmtest-failsmoke"].get("message") == "exit 3"
    assert "RuntimeError: boom at import" in failures["hpm.smoke.hpmtest-broken"].get("message")
    assert failures["hpm.smoke.hpmtest-broken"].get("type") == "smoke.import"


def test_timeout(capsys, smoke_registry, smoke_wheelhouse, venv):
    code, out, _ = run_smoke(capsys, smoke_registry, smoke_wheelhouse, venv,
                             "--with", "hpmtest-slowsmoke", "--timeout", "1")
    assert code == 1
    assert "timed out after 1 s" in out


def test_install_failure_is_an_error_case(capsys, smoke_registry, tmp_path, venv):
    report = tmp_path / "smoke.xml"
    empty = tmp_path / "empty-wh"
    empty.mkdir()
    code, out, err = run_smoke(capsys, smoke_registry, empty, venv, "--with", "hpmtest-app",
                               "--junit", str(report))
    assert code == 74, out + err  # uv pip compile failed: the contract's code, not 1
    assert "\nhpm: error: uv pip compile failed" in err
    suite = parse_junit(report)
    assert suite.get("errors") == "1"
    (case,) = suite.findall("testcase")
    assert case.get("classname") == "hpm.smoke.hpm" and case.find("error") is not None


def test_lock_from_env_and_editable_dev_checkout(capsys, tmp_path, smoke_wheelhouse, venv, monkeypatch):
    checkout = make_project(tmp_path / "checkout", "hpmtest-devsmoke", "0.1.0",
                            modules={"hpmtest_devsmoke/__init__.py": "VALUE = 1\n"})
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "hpmtest-devsmoke.yaml").write_text(
        "name: hpmtest-devsmoke\nversion: 0.1.0\n"
        f"sources:\n  prod: {{type: local, path: {checkout}, editable: false}}\n"
        f"  dev: {{type: local, path: {checkout}, editable: true}}\n"
        "entrypoints: {smoke: \"python -c 'import hpmtest_devsmoke as m; assert m.VALUE == 1'\"}\n")
    code = main(["lock", "--registry", str(reg), "--with", "hpmtest-devsmoke", "--mode", "dev",
                 "--no-index", "--find-links", str(smoke_wheelhouse), "-o", str(tmp_path / "lock.json")])
    assert code == 0
    capsys.readouterr()
    monkeypatch.setenv("HPM_LOCK_FILE", str(tmp_path / "lock.json"))
    monkeypatch.chdir(tmp_path)  # a registry must not be needed
    code = main(["smoke", "--python", str(venv), "--no-index", "--find-links", str(smoke_wheelhouse)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "smoke: 2 passed" in out
    # an edit of the checkout is what the next smoke run sees (editable install)
    (checkout / "hpmtest_devsmoke" / "__init__.py").write_text("VALUE = 2\n")
    code = main(["smoke", "--python", str(venv), "--no-index", "--find-links", str(smoke_wheelhouse)])
    out, _ = capsys.readouterr()
    assert code == 1 and "AssertionError" in out


def test_top_level_modules_sources(tmp_path):
    dist = tmp_path / "site" / "x-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "RECORD").write_text(
        "x/__init__.py,sha256=a,1\nx/sub.py,,\ny.py,,\n_hidden.py,,\nx-1.0.dist-info/METADATA,,\n"
        "../../bin/x,,\nz.cpython-311-x86_64-linux-gnu.so,,\n__editable___x_finder.py,,\nsetup.py,,\n")
    assert smoke.top_level_modules(str(dist), "x") == ["x", "y", "z"]
    (dist / "top_level.txt").write_text("x\n_x\n")
    assert smoke.top_level_modules(str(dist), "x") == ["x"]


def test_relative_hpm_venv(capsys, smoke_registry, smoke_wheelhouse, tmp_path, monkeypatch):
    """HPM_VENV=relative/path: the import checks run from / and still find the venv's python."""
    monkeypatch.chdir(tmp_path)
    code = main(["smoke", "--registry", str(smoke_registry), "--with", "hpmtest-app", "--no-index",
                 "--find-links", str(smoke_wheelhouse)], {**os.environ, "HPM_VENV": "rel/venv"})
    out = capsys.readouterr().out
    assert code == 0, out
    assert "smoke: 2 passed, 0 failed" in out
