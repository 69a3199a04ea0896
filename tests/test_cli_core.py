"""The core commands as a user runs them: ``python -m hpm_boot validate|list|plan|why``.

Subprocess runs prove the exit codes and that bad input never shows a traceback; the
bundled example registry must validate and plan, its incompatibility must exit 78.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry_cli import run, write

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples/registry"


def hpm(
    *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m hpm_boot ARGV`` with a clean hpm environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HPM_") and k not in ("RUN_MODE", "PYTHONPATH")
    }
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "hpm_boot", *argv],
        cwd=cwd or ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("hpm: error: "), proc.stderr


# ---------------------------------------------------------------- the example registry


def test_example_registry_validates_and_plans() -> None:
    proc = hpm("validate", "-r", str(EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: 6 packages, 3 virtuals, 3 groups")
    assert "milvus-adapter: dev checkout" in proc.stderr  # not checked out, on purpose
    proc = hpm("plan", "-r", str(EXAMPLES), "--group", "vision", "--group", "rag", "--mode", "dev")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "plan: 4 packages, mode dev"
    assert "vector-db -> qdrant-adapter  (dev-checkout:" in proc.stdout
    proc = hpm("plan", "--json", "-r", str(EXAMPLES), "--group", "rag", "-p", "vector-db=milvus-adapter")
    assert proc.returncode == 0
    plan = json.loads(proc.stdout)
    assert [p["name"] for p in plan["packages"]] == ["app-core", "milvus-adapter", "reranker-bge"]


def test_example_incompatibility_exits_78() -> None:
    proc = hpm("plan", "-r", str(EXAMPLES), "--group", "vision-legacy")
    assert proc.returncode == 78
    no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert lines[0] == "hpm: error: vlm-adapter-llava requires app-core <1.0, but the plan has app-core 1.2.0"
    assert any(
        line.startswith("constraint: app-core <1.0  [") and "vlm-adapter-llava.yaml:" in line
        for line in lines
    )
    proc = hpm("plan", "-r", str(EXAMPLES), "--group", "vision", "--with", "vlm-adapter-llava")
    assert proc.returncode == 78


def test_example_ambiguous_provider_exits_78() -> None:
    proc = hpm("plan", "-r", str(EXAMPLES), "--group", "rag")
    assert proc.returncode == 78
    no_traceback(proc)
    assert "--provide vector-db=" in proc.stderr
    assert "HPM_PROVIDERS=vector-db=" in proc.stderr
    assert "defaults: {providers: {vector-db:" in proc.stderr


def test_list(capsys) -> None:
    rc, out, _ = run(capsys, "list", "-r", str(EXAMPLES))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PACKAGE", "VERSION", "PROVIDES", "GROUPS", "DESCRIPTION"]
    assert any(line.startswith("qdrant-adapter ") and "vector-db" in line for line in lines)
    assert "  vector-db: milvus-adapter, qdrant-adapter" in lines
    assert "  rag: reranker, vector-db" in lines
    rc, out, _ = run(capsys, "list", "--json", "-r", str(EXAMPLES))
    data = json.loads(out)
    assert data["virtuals"]["vlm-adapter"] == ["vlm-adapter-llava", "vlm-adapter-qwen"]
    assert data["groups"]["vision"] == ["vlm-adapter-qwen"]
    assert data["packages"]["app-core"]["version"] == "1.2.0"


def test_plan_table_and_why(capsys) -> None:
    rc, out, _ = run(capsys, "plan", "-r", str(EXAMPLES), "--group", "vision")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "plan: 2 packages, mode prod"
    assert lines[1].split() == ["PACKAGE", "VERSION", "DISTRIBUTION", "SOURCE", "WHY"]
    assert lines[2].startswith("app-core") and lines[2].endswith("defaults.with in hpm-registry.yaml")
    assert lines[3].startswith("vlm-adapter-qwen") and lines[3].endswith("group vision")
    rc, out, _ = run(capsys, "why", "-r", str(EXAMPLES), "--group", "rag", "--mode", "dev", "vector-db")
    assert rc == 0
    assert out.splitlines()[0].startswith(
        "vector-db is a virtual; provider qdrant-adapter: the only provider with a dev checkout on disk"
    )


def test_why_shows_manifest_paths_as_plan_does(monkeypatch, capsys) -> None:
    """Below the working directory both show relative paths; elsewhere absolute."""
    monkeypatch.chdir(EXAMPLES.parent.parent)
    rc, out, _ = run(capsys, "why", "-r", str(EXAMPLES), "--group", "rag", "-p", "vector-db=qdrant-adapter",
                     "reranker")
    assert rc == 0 and out.splitlines()[1].endswith("[examples/registry/reranker-bge.yaml]"), out
    rc, out, _ = run(capsys, "plan", "-r", str(EXAMPLES), "--group", "rag", "-p", "vector-db=qdrant-adapter")
    assert rc == 0 and "local examples/packages/reranker-bge" in out, out
    monkeypatch.chdir("/")
    rc, out, _ = run(capsys, "why", "-r", str(EXAMPLES), "--group", "rag", "-p", "vector-db=qdrant-adapter",
                     "reranker")
    assert rc == 0 and out.splitlines()[1].endswith(f"[{EXAMPLES}/reranker-bge.yaml]"), out


def test_plan_json_is_byte_identical_across_processes(tmp_path: Path) -> None:
    argv = ("plan", "--json", "-r", str(EXAMPLES), "--group", "rag,vision", "--mode", "dev")
    first, second = hpm(*argv), hpm(*argv, cwd=tmp_path)
    assert first.returncode == 0 and first.stdout == second.stdout
    assert first.stdout.endswith("}\n")


# ---------------------------------------------------------------- bad input, as a process


@pytest.mark.parametrize(
    ("files", "argv", "code", "first"),
    [
        ({"registry/a.yaml": "name: [\n"}, ["validate"], 65, "hpm: error: 1 problem(s) in registry"),
        ({"registry/a.yaml": "- 1\n"}, ["plan"], 65, "hpm: error: registry/a.yaml: expected a mapping"),
        (
            {"registry/a.yaml": "name: a\nversion: 1\nsources: {prod: {type: pypi}}\n"},
            ["plan", "--with", "b"],
            66,
            "hpm: error: --with b 'b' is not a package or virtual",
        ),
        (
            {"registry/a.yaml": "name: a\nversion: 1\nsources: {prod: {type: pypi}}\n"},
            ["plan", "--group", "g"],
            66,
            "hpm: error: unknown group 'g'",
        ),
        ({}, ["plan"], 66, "hpm: error: registry directory registry does not exist"),
        ({}, ["list", "-r", "elsewhere"], 66, "hpm: error: registry directory elsewhere does not exist"),
        (
            {"registry/a.yaml": "name: a\nversion: 1\nsources: {prod: {type: pypi}}\n"},
            ["plan", "--mode", "staging"],
            2,
            "hpm: error: argument --mode: invalid choice: 'staging'",
        ),
        (
            {"registry/a.yaml": "name: a\nversion: 1\nsources: {prod: {type: pypi}}\n"},
            ["plan", "--provide", "x"],
            2,
            "hpm: error: --provide 'x': expected VIRTUAL=PACKAGE",
        ),
    ],
)
def test_bad_input_exit_codes_without_traceback(
    tmp_path: Path, files: dict[str, str], argv: list[str], code: int, first: str
) -> None:
    write(tmp_path, files)
    proc = hpm(*argv, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith(first), proc.stderr


def test_bad_run_mode_variable(tmp_path: Path) -> None:
    write(tmp_path, {"registry/a.yaml": "name: a\nversion: 1\nsources: {prod: {type: pypi}}\n"})
    proc = hpm("plan", cwd=tmp_path, env={"RUN_MODE": "staging"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "hpm: error: RUN_MODE='staging': expected dev or prod"


def test_hostile_files_are_refused_by_the_process(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    reg.mkdir()
    with (reg / "big.yaml").open("w") as f:
        f.write("name: big\ndescription: |\n")
        f.write(("  " + "x" * 1000 + "\n") * 10_500)  # about 10 MB
    (reg / "bomb.yaml").write_text(
        "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9))
    )
    proc = hpm("validate", cwd=tmp_path, timeout=30)
    assert proc.returncode == 65
    assert "Traceback" not in proc.stderr
    assert "registry/big.yaml: " in proc.stderr and "refusing to parse it" in proc.stderr
    assert "registry/bomb.yaml: more than" in proc.stderr and "alias bomb" in proc.stderr
    proc = hpm("plan", cwd=tmp_path, timeout=30)
    assert proc.returncode == 65 and "(and 1 more; run `hpm validate` for all)" in proc.stderr


def test_credentials_in_urls_are_not_printed(tmp_path: Path, capsys) -> None:
    write(
        tmp_path,
        {
            "a.yaml": """
        name: a
        version: 1.0.0
        sources:
          prod: {type: git, url: "https://user:s3cret@git.example.invalid/a.git", ref: v1}
        """
        },
    )
    rc, out, err = run(capsys, "plan", "-r", str(tmp_path), "--with", "a")
    assert rc == 0
    assert "s3cret" not in out + err and "https://***@git.example.invalid/a.git@v1" in out


DATASETTE = Path(__file__).resolve().parent.parent / "examples" / "datasette" / "registry"


def test_the_datasette_example_validates_and_plans(capsys) -> None:
    """The real-world example registry (its lock needs PyPI: bench/datasette_container.py)."""
    rc, out, err = run(capsys, "validate", "-r", str(DATASETTE))
    assert rc == 0, err
    rc, out, err = run(capsys, "plan", "--json", "-r", str(DATASETTE), "--group", "json")
    assert rc == 0, err
    plan = json.loads(out)
    assert [p["name"] for p in plan["packages"]] == ["datasette", "json-html", "json-pretty", "map-cluster"]
    assert [p["source"].get("package") for p in plan["packages"]] == [
        None, "datasette-json-html", "datasette-pretty-json", "datasette-cluster-map"]
    assert [c["requirement"] for c in plan["constraints"]] == ["setuptools<81"]
    assert plan["providers"][0]["candidates"] == ["map-cluster", "map-geojson"]


def test_a_bad_command_line_is_an_error_like_any_other(tmp_path: Path) -> None:
    """One `hpm: error:` line and the usage after it; as a JSON record with
    HPM_LOG_FORMAT=json; the termination log holds the line (a bad ENTRYPOINT in a pod)."""
    bad = hpm("lock", "--format", "nope")
    assert bad.returncode == 2
    assert bad.stderr.startswith("hpm: error: argument --format: invalid choice: 'nope'")
    assert bad.stderr.splitlines()[1].startswith("usage: hpm lock")
    tlog = tmp_path / "termination-log"
    bad = hpm("plan", "--bogus", env={"HPM_LOG_FORMAT": "json", "HPM_TERMINATION_LOG": str(tlog)})
    (record,) = [json.loads(line) for line in bad.stderr.splitlines()]
    assert bad.returncode == 2 and record["exit_code"] == 2, bad.stderr
    assert record["msg"] == "unrecognized arguments: --bogus" and record["details"].startswith("usage: hpm")
    assert tlog.read_text() == "hpm: unrecognized arguments: --bogus\n"
