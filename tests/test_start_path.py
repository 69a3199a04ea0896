"""Unit tests of the start-path modules (standard library only): the fast paths'
grammar, the JSON reader, names, conda specs, quoting, the warm-start stamp, the in-use lock."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpm_boot import fastargs, fsutil, handover, log, payload, target, warmstart


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--", "python", "-m", "app"], {"cmd": ["python", "-m", "app"]}),
        (["--entrypoint", "serve"], {"entrypoint": "serve"}),
        (["--entrypoint=a:serve", "--lock", "l.json", "--", "x"],
         {"lock": "l.json", "entrypoint": "a:serve", "cmd": ["x"]}),
        (["--lock=l.json", "--", "--entrypoint"], {"lock": "l.json", "cmd": ["--entrypoint"]}),
        ([], {}),
        (["--no-index", "--find-links", "w", "--find-links=v", "--offline", "--", "x"],
         {"no_index": True, "offline": True, "find_links": ["w", "v"], "cmd": ["x"]}),
        (["--mode", "dev", "--", "x"], None),  # anything else: the full CLI
        (["--entrypoint"], None),
        (["--no-index=1"], None),
        (["python"], None),
    ],
)
def test_run_grammar(args: list[str], expected: dict[str, object] | None) -> None:
    _, tokens, cmd = fastargs.split(["run", *args])
    parsed = fastargs.parse(tokens, fastargs.RUN)
    if expected is None:
        assert parsed is None
        return
    assert parsed == {**fastargs.RUN.empty(), **{k: v for k, v in expected.items() if k != "cmd"}}
    assert (cmd or []) == expected.get("cmd", [])


@given(st.text(alphabet=st.sampled_from(list("aZ9-_.")), min_size=1, max_size=12))
def test_canonical_name_is_pep_503(name: str) -> None:
    from packaging.utils import canonicalize_name

    assert target.canonical_name(name) == re.sub(r"[-_.]+", "-", name).lower() == canonicalize_name(name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_loads_matches_json(value: object) -> None:
    text = json.dumps(value)
    assert payload.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "NaN", "[Infinity]"])
def test_loads_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        payload.loads(text)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("numpy==1.26.4", ("numpy", "1.26.4")),
        ("numpy=1.26.4", ("numpy", "1.26.4")),
        ("Lib_Foo>=1", ("lib-foo", None)),
        ("cuda-toolkit", ("cuda-toolkit", None)),
        ("x==1.*", ("x", None)),
    ],
)
def test_conda_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert target.conda_spec(spec) == expected


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=8), max_size=5))
def test_quote_round_trips_through_shlex(argv: list[str]) -> None:
    assert shlex.split(handover.quote_argv(argv)) == argv


url_text = st.lists(st.sampled_from(["a", "Z9", "/", "@", ":", "://", " ", "\t", "git+https", ".", "-"]),
                    max_size=12).map("".join)


@given(url_text)
def test_mask_credentials_is_the_regex_even_when_it_skips_it(text: str) -> None:
    assert log.mask_credentials(text) == re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


def test_mask_credentials_skips_re_for_uv_git_lines() -> None:
    line = " + plugin==0.1.0 (from git+https://git.example/org/plugin@0123abcd)"
    assert not log._may_hold_credentials(line) and log.mask_credentials(line) == line
    assert log.mask_credentials("git+https://tok@git.example/o/p@v1") == "git+https://***@git.example/o/p@v1"


@given(st.text(alphabet=st.sampled_from(list("ab =$#*;|&-\xa0\x0b'\"\\\t\r\n")), max_size=12))
def test_split_command_is_shlex_split(command: str) -> None:
    try:
        expected: list[str] | type[ValueError] = shlex.split(command)
    except ValueError:
        expected = ValueError
    try:
        got: list[str] | type[ValueError] = handover.split_command(command)
    except ValueError:
        got = ValueError
    assert got == expected


def test_file_urls() -> None:
    assert target.file_path("file:///a%20b/c") == "/a b/c"
    assert target.file_path("file://localhost/x") == "/x"
    assert target.same_path("file:///tmp/", "/tmp")


def test_stamp_round_trip_and_mismatch(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    site = venv / "lib" / "python3.11" / "site-packages"
    env = target.Environment("py", "3.11", [str(site)], venv=str(venv))
    lock = {
        "target": {"python_version": "3.11"},
        "pins": [{"name": "a", "version": "1", "hashes": ["sha256:x"]}],
        "packages": [
            {"name": "a", "manager": "uv", "requirement": "a==1", "entrypoints": {"s": "python -m 'a b'"}}
        ],
    }
    warmstart.write_stamp(env, "hpm1.AAAA", lock)
    stamp = warmstart.read_stamp(env, "hpm1.AAAA")
    assert stamp is not None and stamp["split"] == {"python -m 'a b'": ["python", "-m", "a b"]}
    assert stamp["pins"] == [{"name": "a", "version": "1"}]  # hashes are not needed to check
    assert warmstart.read_stamp(env, "hpm1.AAAB") is None
    assert warmstart.read_stamp(env, b"hpm1.AAAA") is None  # a file's bytes never match an env var's text
    assert handover.choose_command(stamp, "s", ["x"], stamp["split"]) == ["python", "-m", "a b", "x"]
    (venv / warmstart.STAMP_NAME).write_bytes(b"garbage")
    assert warmstart.read_stamp(env, "hpm1.AAAA") is None


def _open_count(path: str) -> int:
    """How many of this process's descriptors are open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the listing (the listing's own)
            count += os.readlink(f"/proc/self/fd/{fd}") == path
    return count


def test_hold_is_the_shared_lock_gc_respects(tmp_path: Path) -> None:
    """``fsutil.hold`` (the pyz's unpacked wheels and lib, ephemeral environments): held,
    gc's exclusive lock fails; a hold that waits while gc removes the thing sees it gone."""
    import fcntl

    lock = tmp_path / "thing.lock"
    fd = fsutil.hold(str(lock))
    assert fd is not None and lock.is_file()
    with open(lock) as gc:
        with pytest.raises(BlockingIOError):
            fcntl.flock(gc, fcntl.LOCK_EX | fcntl.LOCK_NB)  # in use: gc keeps it
        os.close(fd)
        fcntl.flock(gc, fcntl.LOCK_EX | fcntl.LOCK_NB)  # unused: gc takes it, and removes
        got: list[int | None] = []
        waiter = threading.Thread(target=lambda: got.append(fsutil.hold(str(lock))))
        waiter.start()
        deadline = time.monotonic() + 30
        while _open_count(str(lock)) < 2:  # gc's and the waiter's: it waits on the old file
            assert time.monotonic() < deadline
            time.sleep(0.001)
        lock.unlink()
        fcntl.flock(gc, fcntl.LOCK_UN)
        waiter.join()
    assert got == [None] and not lock.exists()
    with pytest.raises(FileNotFoundError):  # its directory went: reuse.hold's Gone
        fsutil.hold(str(tmp_path / "gone" / "thing.lock"))


def test_missing_reports_versions_commits_and_editables(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name, direct in [
        ("core-1.0", None),
        ("git_pkg-0.1", {"url": "file:///r", "vcs_info": {"vcs": "git", "commit_id": "a" * 40}}),
        ("ed-0.3", {"url": (tmp_path / "src").as_uri(), "dir_info": {"editable": True}}),
    ]:
        d = site / f"{name}.dist-info"
        d.mkdir(parents=True)
        if direct:
            (d / "direct_url.json").write_text(json.dumps(direct))
    env = target.Environment("py", "3.11", [str(site)])
    lock = {
        "pins": [
            {"name": "core", "version": "1.0"},
            {"name": "git-pkg", "url": "git+file:///r@" + "a" * 40},
            {"name": "ed", "url": str(tmp_path / "src"), "editable": True},
        ]
    }
    assert target.missing(lock, env) == []
    lock["pins"][0]["version"] = "2.0"
    lock["pins"][1]["url"] = "git+file:///r@" + "b" * 40
    lock["pins"][2]["url"] = str(tmp_path / "elsewhere")
    assert target.missing(lock, env) == [
        "core 1.0 installed, 2.0 locked",
        "git-pkg is not installed at commit bbbbbbbbbbbb",
        f"ed is not installed editable from {tmp_path / 'elsewhere'}",
    ]


def test_applicable_keeps_the_pins_whose_markers_hold() -> None:
    lock = {"pins": [{"name": "a", "version": "1"}, {"name": "w", "version": "2", "markers": "win"},
                     {"name": "l", "version": "3", "markers": "linux"}], "packages": []}
    kept = target.applicable(lock, lambda m: m == "linux")
    assert kept is not None and kept["pins"] == [{"name": "a", "version": "1"}, {"name": "l", "version": "3"}]
    assert target.applicable(lock, lambda m: None) is None  # undecided: the caller asks packaging
    assert target.applicable({"pins": [{"name": "a"}]}, lambda m: None) == {"pins": [{"name": "a"}]}


def test_run_grammar_matches_the_cli() -> None:
    """Every option the warm start reads means what argparse makes of it."""
    from hpm_boot import cli

    line = ["--lock=l.json", "--entrypoint", "a:serve", "--find-links", "w", "--find-links=v",
            "--index-url", "http://i", "--no-index", "--offline"]
    fast = fastargs.parse(line, fastargs.RUN)
    args = cli.build_parser("run").parse_args(["run", *line])
    assert fast is not None and fast == {dest: getattr(args, dest) for dest in fast}
