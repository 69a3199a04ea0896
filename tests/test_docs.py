"""Docs that cannot drift: what README.md and docs/*.md say is what hpm does.

- Every shell block marked ``<!-- doctest -->`` runs, in a temporary copy of the
  repository, against the bundled example registry, offline (uv with a private cache,
  the example's own local sources and git "remotes"), and must give the exit codes and
  output it is annotated with (tests/support/docblocks.py has the syntax).
- The options each doc lists exist in the parser, and every option of the parser is
  in some doc; the environment variables of ``hpm_boot.contract`` are the ones
  docs/running.md lists and ``hpm --help`` names.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

from hpm_boot import contract
from hpm_boot.cli import EPILOG, build_parser
from hpm_boot.commands import COMMANDS
from tests.support import docblocks
from tests.support.docblocks import ROOT

BLOCKS = [b for path in docblocks.doc_files() for b in docblocks.blocks(path)]


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_doc_block_runs_as_annotated(block: docblocks.Block, tmp_path: Path, uv_env: dict[str, str]) -> None:
    repo = docblocks.copy_repository(tmp_path / "repo")
    home = tmp_path / "home"
    docblocks.provide_hpm(repo, home, sys.executable)
    results = docblocks.run_block(block, repo, docblocks.doc_env(uv_env, home))
    assert len(results) == len(block.commands) and block.commands
    found = docblocks.problems(block, results)
    assert not found, "\n\n".join(found)


def test_the_readme_and_the_dev_loop_are_run() -> None:
    ids = {b.id.split(":")[0] for b in BLOCKS}
    runnable = {"README.md", "docs/dev-loop.md", "docs/examples.md", "docs/ci.md", "docs/containers.md"}
    assert runnable <= ids, ids
    quick = next(b for b in BLOCKS if b.file.name == "README.md")
    first = "HPM_VENV=.hpm/example-env .venv/bin/hpm -r examples/registry run"
    assert quick.commands[0].text.startswith(first)


def test_the_harness_sees_a_wrong_annotation(tmp_path: Path, uv_env: dict[str, str]) -> None:
    """A doc that stops matching the behaviour fails: a wrong exit code, a missing output."""
    doc = tmp_path / "README.md"
    doc.write_text('<!-- doctest: expect="no such words" -->\n```sh\n'
                   "hpm -r examples/registry plan --group rag   # exit 0\n```\n")
    (block,) = docblocks.blocks(doc)
    block.file = ROOT / "README.md"  # ids are relative to the repository
    home = tmp_path / "home"
    docblocks.provide_hpm(tmp_path, home, sys.executable)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    results = docblocks.run_block(block, tmp_path, docblocks.doc_env(uv_env, home))
    found = docblocks.problems(block, results)
    assert len(found) == 2, found
    assert "exit 78, the doc says 0" in found[0] and "does not contain 'no such words'" in found[1]


def test_marks_are_well_formed(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("<!-- doctest -->\ntext\n")
    with pytest.raises(ValueError, match="must be followed by"):
        list(docblocks.blocks(doc))
    doc.write_text('<!-- doctest: colour="red" -->\n```sh\ntrue\n```\n')
    with pytest.raises(ValueError, match="unknown doctest option"):
        list(docblocks.blocks(doc))
    doc.write_text('<!-- doctest: given="pip install x && " -->\n```sh\ntrue\n```\n')
    with pytest.raises(ValueError, match="in no command"):
        list(docblocks.blocks(doc))
    doc.write_text("````\n<!-- doctest -->\n```sh\nshown, not run\n```\n````\n"
                   "<!-- doctest -->\n```console\n$ a \\\n  b   # exit 3\nout\n$ c\n```\n")
    (block,) = docblocks.blocks(doc)
    assert [(c.text, c.exit_code) for c in block.commands] == [("a    b   # exit 3", 3), ("c", 0)]


# --------------------------------------------------------------------------- flags


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in docblocks.doc_files())


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}
    for sub in _subparsers(parser).values():
        found |= _options(sub)
    return found


def all_options() -> dict[str, set[str]]:
    """Every command's options (``dev`` with its subcommands'), by command."""
    out = {"": _options(build_parser(None))}
    for name in COMMANDS:
        out[name] = _options(_subparsers(build_parser(name))[name])
    return out


def test_every_option_of_every_command_is_documented() -> None:
    text = _docs_text()
    missing = {f"hpm {cmd} {opt}".replace("  ", " ") for cmd, opts in all_options().items()
               for opt in opts if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text)}
    assert not missing, f"in --help but in no doc (README.md, docs/*.md): {sorted(missing)}"


HPM_WORD = re.compile(r"(?:^|[\s`(\"'/])(?:hpm|hpm\.pyz|\$H|\$HPM)(?=\s)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def hpm_segments(text: str) -> list[str]:
    """The parts of code lines and inline code that are an hpm command line: from the word
    ``hpm`` (``hpm.pyz``, ``$H``) to the end of that command (``|``, ``&&``, ``;``, ``#``, a
    closing backtick)."""
    spans = re.findall(r"`([^`\n]+)`", text)
    in_code, lines = False, []
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif in_code:
            lines.append(line)
    out = []
    for piece in [*spans, *lines]:
        for m in HPM_WORD.finditer(piece):
            rest = re.split(r"\||&&|;|\s#|`|\)", piece[m.end():])[0]
            out.append(rest)
    return out


def test_every_option_a_doc_gives_hpm_exists() -> None:
    """Options on an hpm command line in a doc exist (``hpm docker run`` passes the options
    it does not know to the engine, so its lines are not checked)."""
    known = set().union(*all_options().values()) | {"--help"}
    unknown = set()
    for path in docblocks.doc_files():
        for segment in hpm_segments(path.read_text(encoding="utf-8")):
            if re.match(r"\s*(?:\[[^]]*\]\s*)?docker\s+run\b", segment) or "docker run" in segment:
                continue
            unknown |= {f"{path.relative_to(ROOT)}: {o}" for o in OPTION.findall(segment)} - {
                f"{path.relative_to(ROOT)}: {o}" for o in known}
    assert not unknown, f"given to hpm in a doc, but no hpm command has it: {sorted(unknown)}"


# --------------------------------------------------------------------------- variables


def contract_variables() -> set[str]:
    return {v for k, v in vars(contract).items() if k.isupper() and isinstance(v, str)
            and re.fullmatch(r"(HPM_|RUN_MODE)[A-Z0-9_]*", v)}


def test_every_variable_is_in_running_md_and_in_help() -> None:
    variables = contract_variables()
    assert {"HPM_IMAGE", "HPM_UV", "HPM_READY_FILE", "RUN_MODE"} <= variables
    running = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    table = running[running.index("## Environment variables"):]
    table = table[: table.index("\n## ")]
    first_cells = re.findall(r"^\| ([^|]*)\|", table, re.MULTILINE)
    listed = {v for cell in first_cells for v in re.findall(r"`((?:HPM_|RUN_MODE)[A-Z0-9_]*)`", cell)}
    assert listed == variables, ("docs/running.md, Environment variables", sorted(listed ^ variables))
    named = set(re.findall(r"\b(?:HPM_[A-Z0-9_]+|RUN_MODE)\b", EPILOG))
    assert named == variables, ("hpm --help", sorted(named ^ variables))


def test_no_doc_names_a_variable_hpm_does_not_read() -> None:
    variables = contract_variables()
    # the test suite's own, and the builder's (build_zipapp.py reads HPM_WHEELS, hpm does not)
    allowed = {"HPM_TEST_ENGINE", "HPM_TEST_BASE", "HPM_TEST_UV", "HPM_WHEELS"}
    for path in [*docblocks.doc_files(), ROOT / "hpm_boot" / "cli" / "__init__.py"]:
        named = set(re.findall(r"\bHPM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
        assert named <= variables | allowed, (path.name, sorted(named - variables - allowed))
