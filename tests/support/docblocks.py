"""The runnable shell blocks of README.md and docs/*.md, and how the suite runs them.

A block is runnable when the line before its opening fence is a ``doctest`` comment
(docs/architecture.md, "Docs that run"); GitHub renders the comment as nothing::

    <!-- doctest: skip="python -m pytest" expect="app-core 1.2.0" -->
    ```sh
    H=".venv/bin/hpm -r examples/registry"
    $H plan --group rag          # exit 78: vector-db has two providers
    ```

Each line of the block is one command (a line ending in ``\\`` continues it; ``$ ``
prompts of ``console`` blocks are dropped). A command must exit 0, or the code its
trailing comment names (``# exit 78``, ``# exit 78: why``). The options of the comment,
as shell words:

- ``expect=TEXT``: the block's output (stdout and stderr) contains TEXT; repeatable.
- ``skip=TEXT``: a command containing TEXT is not run (the test suite itself).
- ``given=TEXT``: a command starting with TEXT runs without that prefix: TEXT is what
  the suite has done already (its own venv stands in for ``.venv``).

Every hpm command that fails prints exactly one ``hpm: error:`` line, which is also
all its termination log (``HPM_TERMINATION_LOG``, set per command) holds; none prints a
traceback. All commands of a block run in one bash process (variables carry over),
in a temporary copy of the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"^<!--\s*doctest(?::(?P<opts>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+)\s*(?P<lang>sh|bash|console|shell)\s*$")
ANY_FENCE = re.compile(r"^\s*(`{3,})")
EXIT = re.compile(r"#\s*exit (?P<code>\d+)\b")


@dataclass
class Command:
    text: str
    line: int
    exit_code: int = 0


@dataclass
class Block:
    file: Path
    line: int  # of the opening fence
    commands: list[Command]
    expect: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(path: Path) -> Iterator[Block]:
    """The runnable blocks of ``path``; a ``doctest`` mark not followed by a fence is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        mark = MARK.match(lines[i])
        other = ANY_FENCE.match(lines[i])
        if other:  # an unmarked block: what it shows (even a mark) is not run
            closing = other.group(1)
            i = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == closing), len(lines)) + 1
            continue
        if not mark:
            i += 1
            continue
        opts = shlex.split(mark.group("opts") or "")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise ValueError(f"{path}:{i + 1}: a doctest mark must be followed by a ```sh (or console) fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == fence.group("fence")), None)
        if end is None:
            raise ValueError(f"{path}:{i + 2}: the block is not closed")
        yield _block(path, i + 2, lines[i + 2 : end], opts, fence.group("lang") == "console")
        i = end + 1


def _block(path: Path, fence_line: int, body: list[str], opts: list[str], console: bool) -> Block:
    options: dict[str, list[str]] = {"expect": [], "skip": [], "given": []}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in options:
            raise ValueError(f"{path}:{fence_line - 1}: unknown doctest option {opt!r}")
        options[key].append(value)
    commands: list[Command] = []
    pending: list[str] = []
    used: set[str] = set()
    start = 0
    for n, raw in enumerate(body, start=fence_line + 1):
        text = raw.rstrip()
        if console and not pending:
            if not text.startswith("$ "):
                continue  # output shown in a console block
            text = text[2:]
        if not pending:
            start = n
        if text.endswith("\\"):
            pending.append(text[:-1])
            continue
        full = " ".join([*pending, text]).strip()
        pending = []
        if not full or full.startswith("#"):
            continue
        skipped = [s for s in options["skip"] if s in full]
        if skipped:
            used.update(skipped)
            continue
        for given in options["given"]:
            if full.startswith(given):
                full = full.removeprefix(given)
                used.add(given)
        found = EXIT.search(full)
        commands.append(Command(full, start, int(found.group("code")) if found else 0))
    stale = [t for t in options["skip"] + options["given"] if t not in used]
    if stale:  # the block changed under its mark
        raise ValueError(f"{path}:{fence_line - 1}: doctest skip/given text in no command: {stale}")
    return Block(path, fence_line, commands, options["expect"])


@dataclass
class Result:
    command: Command
    code: int
    out: str
    err: str
    termination_log: str | None = None


def copy_repository(dest: Path, root: Path = ROOT) -> Path:
    """The repository's files (tracked, and new ones not ignored) copied to ``dest``; outside
    a git checkout (a source archive), the tree without what .gitignore names."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, text=True)
    if listed.returncode != 0:
        ignored = shutil.ignore_patterns(".git", ".venv", ".hpm", "build", "dist", "ctx", "__pycache__",
                                         ".*_cache", ".hypothesis", "remotes", "checkouts")
        shutil.copytree(root, dest, ignore=ignored, symlinks=True)
        return dest
    for name in filter(None, listed.stdout.split("\0")):
        source = root / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def run_block(block: Block, cwd: Path, env: Mapping[str, str], timeout: float = 600) -> list[Result]:
    """Run the block's commands in one bash, each with its output captured on its own."""
    work = cwd / ".doctest"
    work.mkdir(exist_ok=True)
    script = ["set -u"]
    for i, command in enumerate(block.commands):
        script.append(f"export HPM_TERMINATION_LOG={work}/{i}.tlog")
        script.append(f"{{ {command.text}\n}} >{work}/{i}.out 2>{work}/{i}.err </dev/null; "
                      f"echo $? >{work}/{i}.rc")
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=dict(env), timeout=timeout, check=False)
    results = []
    for i, command in enumerate(block.commands):
        rc = work / f"{i}.rc"
        code = int(rc.read_text()) if rc.exists() else -1
        tlog = work / f"{i}.tlog"
        results.append(Result(command, code, (work / f"{i}.out").read_text(errors="replace"),
                              (work / f"{i}.err").read_text(errors="replace"),
                              tlog.read_text(errors="replace") if tlog.exists() else None))
    shutil.rmtree(work)
    return results


def problems(block: Block, results: list[Result]) -> list[str]:
    """What does not hold, one message per problem (empty: the block is right)."""
    found = []
    for r in results:
        where = f"{block.file.relative_to(ROOT)}:{r.command.line}: {r.command.text}"
        output = f"\n--- stdout\n{r.out}--- stderr\n{r.err}"
        if r.code != r.command.exit_code:
            found.append(f"{where}: exit {r.code}, the doc says {r.command.exit_code}{output}")
        if "Traceback (most recent call last)" in r.err:
            found.append(f"{where}: a traceback{output}")
        errors = [line for line in r.err.splitlines() if line.startswith("hpm: error:")]
        if r.command.exit_code and "hpm" in r.command.text and len(errors) != 1:
            found.append(f"{where}: {len(errors)} `hpm: error:` lines, expected exactly one{output}")
        elif r.command.exit_code and "hpm" in r.command.text and "HPM_TERMINATION_LOG" not in r.command.text:
            # the termination log holds the error line alone (as "hpm: <cause>")
            wanted = errors[0].replace("hpm: error: ", "hpm: ", 1) + "\n"
            if r.termination_log != wanted:
                found.append(f"{where}: the termination log holds {r.termination_log!r}, not {wanted!r}")
    everything = "".join(r.out + r.err for r in results)
    found += [f"{block.id}: the output does not contain {text!r}" for text in block.expect
              if text not in everything]
    return found


def provide_hpm(repo: Path, home: Path, python: str) -> None:
    """``hpm`` on PATH and ``.venv/bin/{hpm,python}`` in the copy: this suite's interpreter
    stands in for the venv the README's first command makes (``given=`` in its mark)."""
    for bin_dir in (home / "bin", repo / ".venv" / "bin"):
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "hpm").write_text(f'#!/bin/sh\nexec {shlex.quote(python)} -m hpm_boot "$@"\n')
        (bin_dir / "hpm").chmod(0o755)
    (repo / ".venv" / "bin" / "python").symlink_to(python)


def doc_env(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """The environment of a block: ``base`` (hermetic uv), a private HOME, a git identity."""
    env = {k: v for k, v in base.items() if not k.startswith("HPM_") and k != "RUN_MODE"}
    env.update(HOME=str(home), GIT_AUTHOR_NAME="doc reader", GIT_AUTHOR_EMAIL="reader@hpm.invalid",
               GIT_COMMITTER_NAME="doc reader", GIT_COMMITTER_EMAIL="reader@hpm.invalid")
    env["PATH"] = os.pathsep.join([str(home / "bin"), env.get("PATH", os.defpath)])
    return env
