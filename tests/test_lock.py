"""Unit tests of hpm_boot.compose.lock: git refs to SHAs, parsing uv's output, the lock schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpm_boot import install, payload
from hpm_boot.compose import lock as lockmod
from hpm_boot.errors import DataError, HpmError, InstallerFailedError, InstallerMissingError, UsageError
from tests.support import requirements
from tests.support.factory import GitRepo, git, git_tag, make_git_repo


def raises(code: int, fn: Any, *args: Any, **kwargs: Any) -> HpmError:
    with pytest.raises(HpmError) as info:
        fn(*args, **kwargs)
    assert info.value.exit_code == code, info.value.message
    return info.value


# --------------------------------------------------------------------------- git


def test_lightweight_tag_branch_and_sha(git_plugin: GitRepo) -> None:
    url = git_plugin.url
    assert lockmod.resolve_git_ref(url, "v0.1.0", "p") == git_plugin.tags["v0.1.0"]
    assert lockmod.resolve_git_ref(url, "v0.2.0", "p") == git_plugin.tags["v0.2.0"]
    assert lockmod.resolve_git_ref(url, "main", "p") == git(git_plugin.path, "rev-parse", "main")
    assert lockmod.resolve_git_ref(url, "refs/heads/main", "p") == git_plugin.tags["v0.2.0"]
    # a plain path works as well as a file:// URL
    assert lockmod.resolve_git_ref(str(git_plugin.path), "v0.1.0", "p") == git_plugin.tags["v0.1.0"]


def test_full_sha_is_taken_without_asking(tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert lockmod.resolve_git_ref((tmp_path / "no-repo").as_uri(), sha, "p") == sha


def test_annotated_tag_gives_the_commit_not_the_tag_object(tmp_path: Path) -> None:
    repo = make_git_repo(tmp_path / "ann", "hpmtest-gitann", tags=["v1.0.0"], annotated=True)
    tag_object = git(repo.path, "rev-parse", "v1.0.0")
    commit = repo.tags["v1.0.0"]
    assert tag_object != commit and len(commit) == 40
    assert lockmod.resolve_git_ref(repo.url, "v1.0.0", "p") == commit


def test_tag_wins_over_branch_of_the_same_name(git_plugin: GitRepo) -> None:
    git(git_plugin.path, "branch", "release", git_plugin.tags["v0.2.0"])
    git_tag(git_plugin.path, "release", ref=git_plugin.tags["v0.1.0"])
    assert lockmod.resolve_git_ref(git_plugin.url, "release", "p") == git_plugin.tags["v0.1.0"]


def test_tag_in_a_subfolder_does_not_match_by_suffix(git_plugin: GitRepo) -> None:
    git_tag(git_plugin.path, "other/v9.0.0", ref=git_plugin.tags["v0.1.0"])
    err = raises(66, lockmod.resolve_git_ref, git_plugin.url, "v9.0.0", "hpmtest-gitplugin")
    assert "hpmtest-gitplugin: git ref 'v9.0.0' not found" in err.message


def test_missing_ref_repo_and_short_sha(git_plugin: GitRepo, tmp_path: Path) -> None:
    err = raises(66, lockmod.resolve_git_ref, git_plugin.url, "v9.9.9", "hpmtest-gitplugin")
    assert err.message == f"hpmtest-gitplugin: git ref 'v9.9.9' not found in {git_plugin.url}"
    assert "tag, branch or full commit SHA" in (err.details or "")
    err = raises(66, lockmod.resolve_git_ref, git_plugin.url, git_plugin.tags["v0.1.0"][:10], "p")
    assert "40 hex digits" in (err.details or "")
    err = raises(66, lockmod.resolve_git_ref, (tmp_path / "nope").as_uri(), "v1", "p")
    assert err.message.startswith("p: cannot read git repository") and "'v1'" in err.message


def test_git_missing(git_plugin: GitRepo) -> None:
    raises(69, lockmod.resolve_git_ref, git_plugin.url, "v0.1.0", "p", {"PATH": "/nonexistent"})


# --------------------------------------------------------------------------- uv output


COMPILED = """\
-e /src/edit-dir
hpmtest-core==2.0.0 \\
    --hash=sha256:bbbb \\
    --hash=sha256:aaaa
hpmtest-gitann @ git+file:///r/gitann@a98f9e39787c4bc82195cc3ab3220e397fa3bc0b
hpmtest-win==1.0 ; sys_platform == 'win32' \\
    --hash=sha256:cccc
Hpmtest_Dep==1.0.0    # via something
"""


def test_parse_compiled() -> None:
    pins = requirements.parse_compiled(COMPILED, {"/src/edit-dir/": "hpmtest-edit"})
    assert [msgspec.to_builtins(p) for p in pins] == [
        {"name": "hpmtest-core", "version": "2.0.0", "hashes": ["sha256:aaaa", "sha256:bbbb"]},
        {"name": "hpmtest-dep", "version": "1.0.0"},
        {"name": "hpmtest-edit", "url": "/src/edit-dir", "editable": True},
        {"name": "hpmtest-gitann", "url": "git+file:///r/gitann@a98f9e39787c4bc82195cc3ab3220e397fa3bc0b"},
        {"name": "hpmtest-win", "version": "1.0", "hashes": ["sha256:cccc"],
         "markers": "sys_platform == 'win32'"},
    ]
    # without the map, the directory's name is the best guess
    assert requirements.parse_compiled("-e /src/edit-dir\n")[0].name == "edit-dir"


def test_parse_compiled_refuses_what_it_does_not_know() -> None:
    err = raises(74, requirements.parse_compiled, "--index-url https://u:pw@h/simple\n")
    assert "pw" not in err.message


_name = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5}){0,2}", fullmatch=True)
_hash = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)
_pin = st.one_of(
    st.builds(lockmod.Pin, name=_name,
              version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True),
              hashes=st.lists(_hash, max_size=3, unique=True).map(sorted),
              markers=st.sampled_from([None, "python_version >= '3.11'", "sys_platform == 'linux'"])),
    st.builds(lockmod.Pin, name=_name,
              url=st.from_regex(r"git\+file:///r/[a-z]{1,6}@[0-9a-f]{40}", fullmatch=True)),
)


@given(st.lists(_pin, max_size=8, unique_by=lambda p: p.name))
def test_install_lines_parse_back_to_the_same_pins(pins: list[lockmod.Pin]) -> None:
    """What the installer writes from pins (install.pin_line) parses back to the pins."""
    text = "\n".join(install.pin_line(msgspec.to_builtins(p)) for p in pins)
    assert requirements.parse_compiled(text) == sorted(pins, key=lambda p: p.name)


def test_compile_pins_errors(tmp_path: Path) -> None:
    target = lockmod.Target(python_version="3.11")
    raises(69, requirements.compile_pins, ["x"], target, str(tmp_path / "no-uv"))
    fake = tmp_path / "fake-uv"
    fake.write_text("#!/bin/sh\necho 'Resolved 1 package' >&2\n"
                    "echo 'error: Failed to fetch https://u:topsecret@idx.example/simple/x' >&2\nexit 1\n")
    fake.chmod(0o755)
    err = raises(74, requirements.compile_pins, ["x"], target, str(fake))
    assert err.message == "uv pip compile failed (exit 1): Failed to fetch https://***@idx.example/simple/x"
    assert "topsecret" not in (err.details or "") and "Resolved 1 package" in (err.details or "")
    assert requirements.compile_pins([], target, str(tmp_path / "no-uv")) == []


def test_compile_pins_passes_the_target(tmp_path: Path) -> None:
    argv_file = tmp_path / "argv"
    fake = tmp_path / "fake-uv"
    fake.write_text(f'#!/bin/sh\necho "$@" > {argv_file}\ncat > /dev/null\necho "x==1.0"\n')
    fake.chmod(0o755)
    target = lockmod.Target(python_version="3.12", python_platform="aarch64-manylinux_2_28")
    pins = requirements.compile_pins(["x"], target, str(fake), ["--no-index"])
    assert pins == [lockmod.Pin(name="x", version="1.0")]
    argv = argv_file.read_text().split()
    assert argv[:3] == ["pip", "compile", "-"] and "--generate-hashes" in argv
    assert argv[argv.index("--python-version") + 1] == "3.12"
    assert argv[argv.index("--python-platform") + 1] == "aarch64-manylinux_2_28"
    assert "--no-index" in argv


# --------------------------------------------------------------------------- schema


def a_lock() -> dict[str, Any]:
    return {
        "version": 2, "hpm": "0.1.0", "mode": "prod",
        "targets": [{"python_version": "3.12", "python_platform": "x86_64-manylinux_2_28"},
                    {"python_version": "3.12", "python_platform": "aarch64-manylinux_2_28"}],
        "plan_digest": "sha256:" + "2" * 64,
        "packages": [
            {"name": "app", "version": "1.0", "manager": "uv", "requirement": "app==1.0", "source": "pypi",
             "source_mode": "prod", "entrypoints": {"serve": "app --port 1"}, "index": "https://i/simple"},
            {"name": "plug", "version": "0.1", "manager": "pip", "source": "git", "source_mode": "prod",
             "requirement": "plug @ git+https://h/plug@" + "a" * 40, "commit": "a" * 40, "ref": "v0.1"},
            {"name": "cuda", "version": "11.8", "manager": "conda", "requirement": "cuda==11.8",
             "source": "pypi", "source_mode": "prod", "channels": ["nvidia"]},
            {"name": "edit", "version": "0.3", "manager": "uv", "requirement": "-e /src/edit",
             "source": "local", "source_mode": "dev", "path": "/src/edit", "editable": True, "extras": ["x"]},
        ],
        "pins": [{"name": "app", "version": "1.0",
                  "files": [{"name": "app-1.0-py3-none-any.whl", "hash": "sha256:" + "3" * 64, "size": 10}]},
                 {"name": "arm", "version": "2.0", "targets": [1],
                  "files": [{"name": "arm-2.0-cp312-cp312-manylinux_2_28_aarch64.whl",
                             "hash": "sha256:" + "4" * 64}]},
                 {"name": "edit", "url": "/src/edit", "editable": True},
                 {"name": "plug", "url": "git+https://h/plug@" + "a" * 40}],
    }


def test_round_trip_every_field() -> None:
    data = a_lock()
    lock = lockmod.from_dict(data, "t")
    assert lockmod.to_dict(lock) == data
    assert lockmod.from_dict(msgspec.json.decode(lockmod.to_json(lock)), "t") == lock
    assert lockmod.to_json(lock).endswith(b"}\n")
    assert payload.decode(payload.encode(lockmod.to_dict(lock))) == data


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("pins"), "Object missing required field `pins`"),
    (lambda d: d.__setitem__("version", True), "lock format version True"),
    (lambda d: d.__setitem__("version", "1"), "lock format version '1'"),
    (lambda d: d["packages"][0].__setitem__("editable", "yes"),
     "Expected `bool`, got `str` - at `$.packages[0].editable`"),
    (lambda d: d["pins"][0].__setitem__("sha", "x"), "unknown field `sha` - at `$.pins[0]`"),
    (lambda d: d.__setitem__("targets", "3.11"), "Expected `array`, got `str` - at `$.targets`"),
    (lambda d: d.__setitem__("version", 1), "lock format version 1; this hpm reads lock format version 2"),
    (lambda d: d["pins"][0]["files"][0].pop("hash"), "missing required field `hash`"),
])
def test_from_dict_says_what_it_expected_and_found(change: Any, words: str) -> None:
    data = copy.deepcopy(a_lock())
    change(data)
    err = raises(65, lockmod.from_dict, data, "HPM_LOCK_FILE=x")
    assert err.message.startswith("HPM_LOCK_FILE=x: ")
    assert words in err.message


def test_from_dict_non_objects_and_plans() -> None:
    assert "found an array" in raises(65, lockmod.from_dict, [], "s").message
    assert "found null" in raises(65, lockmod.from_dict, None, "s").message
    err = raises(65, lockmod.from_dict, {"format": 1, "packages": []}, "s")
    assert "'version' field, found keys: format, packages" in err.message
    assert "hpm plan --json" in (err.details or "")


def test_default_target() -> None:
    here = lockmod.default_target("3.12", None)
    assert here.python_version == "3.12" and here.python_platform  # the host's, explicit
    assert lockmod.default_target(None, "windows").python_platform == "windows"
    for bad in ("2.7", "3", "py3.12", "3.12; x"):
        with pytest.raises(UsageError):
            lockmod.default_target(bad, None)
    err = raises(2, lockmod.default_targets, "3.12", ["x86_64-manylinux_2_28", "sparc-solaris"])
    assert "'sparc-solaris'" in err.message and "x86_64-manylinux_2_28" in (err.details or "")
    assert len(lockmod.default_targets("3.12", ["linux", "linux", "aarch64-manylinux_2_28"])) == 2


PYLOCK = """lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.12"

[[packages]]
name = "Hpmtest_A"
version = "1.0.0"
sdist = { url = "https://files.example/a-1.0.0.tar.gz", size = 9, hashes = { sha256 = "@A" } }
wheels = [
    { url = "https://f/a-1.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", size = 5, hashes = { sha256 = "@B" } },
    { url = "https://f.example/a-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl", hashes = { sha256 = "@C" } },
]

[[packages]]
name = "hpmtest-sdist"
version = "2.0"
marker = "platform_machine == 'x86_64'"
sdist = { url = "https://files.example/hpmtest_sdist-2.0.tar.gz", hashes = { sha256 = "@D" } }

[[packages]]
name = "hpmtest-git"
version = "0.1.0"
vcs = { type = "git", url = "https://h/g", requested-revision = "v0.1.0", commit-id = "@E" }

[[packages]]
name = "hpmtest-mono"
version = "0.4.0"
vcs = { type = "git", url = "https://u:pw@h/mono/", commit-id = "@E", subdirectory = "pkgs/sub" }

[[packages]]
name = "hpmtest-edit"
directory = { path = "/src/edit-dir", editable = true }

[[packages]]
name = "hpmtest-guess"
directory = { path = "/src/guess", editable = true }

[[packages]]
name = "hpmtest-loc"
directory = { path = "/src/a b/loc" }

[[packages]]
name = "hpmtest-urlw"
version = "0.5.0"
archive = { path = "/files/urlw-0.5.0-py3-none-any.whl", hashes = { sha256 = "@B" } }

[[packages]]
name = "hpmtest-urls"
version = "0.6.0"
archive = { url = "https://h/urls-0.6.0.tar.gz", hashes = { sha256 = "@C" } }
"""
for _c in "ABCDE":
    PYLOCK = PYLOCK.replace("@" + _c, _c.lower() * (40 if _c == "E" else 64))


B, C = "b" * 64, "c" * 64


def test_pylock_pins_as_requirements_txt_names_them() -> None:
    """Index pins keep their files in uv's order (the sdist only without a wheel); direct
    references are URLs as uv's requirements.txt writes them, with no version and no marker."""
    asked = ["hpmtest-urlw @ file:///files/urlw-0.5.0-py3-none-any.whl#sha256=" + "b" * 64,
             "hpmtest-git[x] @ git+https://h/g@v0.1.0", "-e /src/edit-dir/[x]", "hpmtest-a==1.0.0"]
    pins = lockmod.pylock_pins(lockmod.parse_pylock(PYLOCK), asked, {"/src/edit-dir/": "hpmtest-edit-asked"})
    assert [msgspec.to_builtins(p) for p in pins] == [
        {"name": "hpmtest-a", "version": "1.0.0", "files": [
            {"name": "a-1.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", "hash": f"sha256:{B}", "size": 5},
            {"name": "a-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl", "hash": f"sha256:{C}"}]},
        # named as asked, at the path as asked
        {"name": "hpmtest-edit-asked", "url": "/src/edit-dir/", "editable": True},
        # a tag asked for: the commit, as requirements.txt writes it
        {"name": "hpmtest-git", "url": "git+https://h/g@" + "e" * 40},
        {"name": "hpmtest-guess", "url": "/src/guess", "editable": True},
        {"name": "hpmtest-loc", "url": "file:///src/a%20b/loc"},
        {"name": "hpmtest-mono", "url": "git+https://u:pw@h/mono/@" + "e" * 40 + "#subdirectory=pkgs/sub"},
        {"name": "hpmtest-sdist", "version": "2.0",
         "files": [{"name": "hpmtest_sdist-2.0.tar.gz", "hash": "sha256:" + "d" * 64}]},
        {"name": "hpmtest-urls", "url": "https://h/urls-0.6.0.tar.gz", "hashes": ["sha256:" + "c" * 64]},
        # the fragment pylock.toml moved to hashes is back, as asked
        {"name": "hpmtest-urlw", "url": asked[0].partition(" @ ")[2], "hashes": ["sha256:" + "b" * 64]},
    ]


def test_pylock_pins_refuses_what_it_does_not_know() -> None:
    assert raises(74, lockmod.parse_pylock, "x = [").message.startswith("uv pip compile wrote")
    err = raises(74, lockmod.pylock_pins, {"packages": [{"name": "x"}]})
    assert err.message == "pylock.toml: x has neither a version nor a direct reference"


def test_merge_targets_says_which_pins_apply_where() -> None:
    f = [lockmod.File(f"f{i}.whl", f"sha256:{i}") for i in range(3)]
    both_x86 = lockmod.Pin("both", "1", files=[f[0]])
    both_arm = lockmod.Pin("both", "1", files=[f[1]])
    only_arm = lockmod.Pin("armonly", "1", files=[f[2]])
    git = lockmod.Pin("g", url="git+https://h/g@" + "a" * 40)
    merged = lockmod.merge_targets([[both_x86, git], [both_arm, only_arm, git]])
    assert merged == [lockmod.Pin("armonly", "1", files=[f[2]], targets=[1]),
                      lockmod.Pin("both", "1", files=[f[0], f[1]]), git]


def test_errors_are_hpm_errors() -> None:
    for cls in (DataError, InstallerFailedError, InstallerMissingError):
        assert issubclass(cls, HpmError)


def test_best_first_follows_packaging_tags_order() -> None:
    names = ["a-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "a-1.tar.gz",
             "a-1-py3-none-any.whl", "a-1-cp312-cp312-manylinux_2_28_x86_64.whl",
             "a-1-cp312-abi3-manylinux_2_28_x86_64.whl", "not-a-wheel-name.whl"]
    files = [lockmod.File(n, "sha256:" + "0" * 64) for n in names]
    rank = lockmod.tag_rank(lockmod.Target("3.12", "x86_64-manylinux_2_28"))
    assert [f.name for f in lockmod.best_first(files, rank)] == [
        "a-1-cp312-cp312-manylinux_2_28_x86_64.whl",
        "a-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "a-1-cp312-abi3-manylinux_2_28_x86_64.whl", "a-1-py3-none-any.whl", "not-a-wheel-name.whl",
        "a-1.tar.gz"]
    musl = lockmod.target_tags(lockmod.Target("3.12", "aarch64-unknown-linux-musl"))
    assert str(musl[0]) == "cp312-cp312-musllinux_1_2_aarch64"
    assert str(lockmod.target_tags(lockmod.Target("3.12", "aarch64-apple-darwin"))[0]) == (
        "cp312-cp312-macosx_13_0_arm64")
