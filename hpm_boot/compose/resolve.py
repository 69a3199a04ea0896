"""Registry + selection + mode -> Plan.

The resolver pulls in what was asked for (``--with``, groups, registry defaults),
follows ``requires`` transitively, chooses one provider for every virtual in the
fixed order of docs/manifest.md ("provider rules"), then checks versions and ``conflicts``. Every package in
the plan carries the reason it is there, so ``hpm why`` can print the chain. The
plan is deterministic: the same inputs give the same plan, byte for byte.
"""

from __future__ import annotations

import difflib
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from packaging.utils import canonicalize_name

from hpm_boot import contract
from hpm_boot.compose.manifest import LocalSource, Mode, Source, specifier
from hpm_boot.compose.registry import Entry, Registry
from hpm_boot.errors import NotFoundError, ResolutionError, UsageError

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Selection:
    """What the user asked for; each field remembers where it came from for messages."""

    with_: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    providers: tuple[tuple[str, str, str], ...] = ()  # (virtual, package, origin)
    mode: Mode = "prod"
    use_defaults: bool = True


class Reason(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why a package is in the plan; ``parent`` links to the package that pulled it in."""

    kind: str  # requested | default | group | requires | provider
    detail: str
    parent: str | None = None


class Provider(msgspec.Struct, frozen=True):
    virtual: str
    package: str
    rule: str  # explicit | selected | dev-checkout | only-provider
    detail: str
    candidates: list[str]


class PlannedPackage(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    version: str
    source_mode: Mode
    source: Source
    manifest: str
    reason: Reason
    manager: str = "uv"
    extras: list[str] = msgspec.field(default_factory=list)
    channels: list[str] = msgspec.field(default_factory=list)  # conda only
    entrypoints: dict[str, str] = msgspec.field(default_factory=dict)
    provides: list[str] = msgspec.field(default_factory=list)
    path: str | None = None  # absolute path of a local source


class RegistryRequirement(msgspec.Struct, frozen=True):
    """A ``constraints``/``overrides`` entry of ``hpm-registry.yaml`` and where it was written."""

    requirement: str
    where: str  # FILE:LINE


class Plan(msgspec.Struct, frozen=True):
    format: int
    mode: Mode
    registry: list[str]
    requested: list[str]
    groups: list[str]
    packages: list[PlannedPackage]
    providers: list[Provider]
    warnings: list[str]
    constraints: list[RegistryRequirement] = msgspec.field(default_factory=list)
    overrides: list[RegistryRequirement] = msgspec.field(default_factory=list)

    def package(self, name: str) -> PlannedPackage | None:
        key = canonicalize_name(name)
        return next((p for p in self.packages if p.name == key), None)


def to_json(plan: Plan) -> bytes:
    return msgspec.json.format(msgspec.json.encode(plan, order="sorted"), indent=2) + b"\n"


def unknown_name_error(name: str, known: Iterable[str], message: str) -> NotFoundError:
    """NotFoundError (66): ``message``, then the names of ``known`` close to ``name``
    ("did you mean ...?"), or where to look when none is close."""
    close = difflib.get_close_matches(canonicalize_name(name), sorted(known), n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "`hpm list` shows what there is"
    return NotFoundError(f"{message}; {hint}")


@dataclass
class _State:
    registry: Registry
    selection: Selection
    virtuals: dict[str, list[str]]
    groups: dict[str, list[str]]
    chosen: dict[str, Reason] = field(default_factory=dict)  # package -> why
    pending: dict[str, Reason] = field(default_factory=dict)  # virtual -> first request
    providers: dict[str, Provider] = field(default_factory=dict)
    constraints: list[tuple[str, str, str, str]] = field(default_factory=list)  # name, spec, by, where
    queue: deque[tuple[str, Reason]] = field(default_factory=deque)

    def unknown(self, name: str, what: str) -> NotFoundError:
        return unknown_name_error(name, set(self.registry.entries) | set(self.virtuals),
                                  f"{what} {name!r} is not a package or virtual of the registry")

    def request(self, name: str, reason: Reason) -> None:
        key = canonicalize_name(name)
        if key in self.registry.entries:
            self.add(key, reason)
        elif key in self.virtuals:
            if key in self.providers:
                return
            self.pending.setdefault(key, reason)
        else:
            raise self.unknown(name, reason.detail)

    def add(self, name: str, reason: Reason) -> None:
        """Queue package ``name``; ``drain`` takes it in with what it requires."""
        self.queue.append((name, reason))

    def drain(self) -> None:
        """Take in the queued packages breadth first, so each keeps its shortest reason."""
        while self.queue:
            name, reason = self.queue.popleft()
            if name in self.chosen:
                continue
            self.chosen[name] = reason
            entry = self.registry.entries[name]
            for dep, spec in sorted(entry.manifest.requires.items()):
                key = canonicalize_name(dep)
                self.constraints.append((key, spec, name, entry.where("requires", dep)))
                self.request(dep, Reason("requires", f"required by {name} ({spec})", name))


def explicit_providers(registry: Registry, selection: Selection) -> dict[str, tuple[str, str]]:
    """virtual -> (package, origin): registry defaults, overridden by the selection."""
    out: dict[str, tuple[str, str]] = {}
    if selection.use_defaults:
        for virtual, package in registry.config.defaults.providers.items():
            out[canonicalize_name(virtual)] = (canonicalize_name(package), "defaults.providers")
    for virtual, package, origin in selection.providers:
        out[canonicalize_name(virtual)] = (canonicalize_name(package), origin)
    return out


def resolve(registry: Registry, selection: Selection) -> Plan:
    """The plan for ``selection``; raises NotFoundError (66) or ResolutionError (78)."""
    virtuals = registry.virtuals()
    groups = registry.groups()
    state = _State(registry, selection, virtuals, groups)
    explicit = explicit_providers(registry, selection)
    for virtual, (package, origin) in explicit.items():
        if virtual not in virtuals:
            if virtual in registry.entries:
                raise UsageError(
                    f"{origin} {virtual}={package}: {virtual} is a package, not a "
                    "virtual; select it with --with instead"
                )
            if origin != contract.PROVIDERS:
                raise state.unknown(virtual, f"{origin}: virtual")
            continue
        if package not in virtuals[virtual]:
            if package not in registry.entries:
                raise state.unknown(package, f"{origin}: provider")
            raise ResolutionError(
                f"{origin}: {package} does not provide {virtual}",
                f"providers of {virtual}: {', '.join(virtuals[virtual])}",
            )

    defaults = registry.config.defaults if selection.use_defaults else None
    group_names = list(selection.groups) + (list(defaults.groups) if defaults else [])
    for group in group_names:
        if canonicalize_name(group) not in groups:
            known = ", ".join(groups) or "none are defined"
            raise NotFoundError(f"unknown group {group!r}", f"groups of this registry: {known}")
    for name in selection.with_:
        state.request(name, Reason("requested", f"--with {name}"))
    if defaults:
        for name in defaults.with_:
            state.request(name, Reason("default", "defaults.with in hpm-registry.yaml"))
    for group in group_names:
        for member in groups[canonicalize_name(group)]:
            state.request(member, Reason("group", f"group {canonicalize_name(group)}"))
    state.drain()

    while state.pending:
        _choose_providers(state, explicit)

    _check_constraints(state)
    return _plan(state, group_names)


def _choose_providers(state: _State, explicit: dict[str, tuple[str, str]]) -> None:
    """Settle all that rules 1 and 2 settle, then one virtual by rule 3 or 4."""
    mode = state.selection.mode
    progress = True
    while progress:
        progress = False
        for virtual in sorted(state.pending):
            candidates = state.virtuals[virtual]
            if virtual in explicit:
                package, origin = explicit[virtual]
                _settle(state, virtual, (package, "explicit", f"chosen by {origin}"))
                progress = True
                continue
            selected = [c for c in candidates if c in state.chosen]
            if len(selected) > 1:
                raise _ambiguous(state, virtual, selected, "more than one provider is selected")
            if selected:
                _settle(state, virtual, (selected[0], "selected", "the only selected provider"))
                progress = True
    if not state.pending:
        return
    for virtual in sorted(state.pending):
        choice = _fallback_choice(state, virtual, mode)
        if choice is not None:
            _settle(state, virtual, choice)
            return
    # Nothing settles: report the first (in name order) still without a provider.
    virtual = min(state.pending)
    raise _ambiguous(state, virtual, state.virtuals[virtual], "no rule chose one")


def _fallback_choice(state: _State, virtual: str, mode: Mode) -> tuple[str, str, str] | None:
    """Rules 3 and 4: the only provider with a dev checkout (dev mode), the only provider."""
    candidates = state.virtuals[virtual]
    if mode == "dev":
        present = [c for c in candidates if _has_checkout(state.registry.entries[c])]
        if len(present) == 1:
            return present[0], "dev-checkout", "the only provider with a dev checkout on disk"
    if len(candidates) == 1:
        return candidates[0], "only-provider", "the only provider"
    return None


def _has_checkout(entry: Entry) -> bool:
    path = entry.dev_checkout()
    return path is not None and path.is_dir()


def _settle(state: _State, virtual: str, choice: tuple[str, str, str]) -> None:
    package, rule, detail = choice
    state.providers[virtual] = Provider(virtual, package, rule, detail, state.virtuals[virtual])
    reason = state.pending.pop(virtual)
    state.add(
        package, Reason("provider", f"provides {virtual} ({detail}), for {reason.detail}", reason.parent)
    )
    state.drain()


def _ambiguous(
    state: _State, virtual: str, candidates: list[str], why: str, reason: Reason | None = None
) -> ResolutionError:
    reason = reason or state.pending[virtual]
    lines = [
        f"  {c} {state.registry.entries[c].manifest.version}  ({state.registry.entries[c].file})"
        + (f"  selected: {state.chosen[c].detail}" if c in state.chosen else "")
        for c in candidates
    ]
    return ResolutionError(
        f"{virtual} needs exactly one provider and {why} ({', '.join(candidates)}); "
        f"choose with --provide {virtual}=PACKAGE",
        "\n".join(
            [
                f"{virtual} is needed: {_chain(state, reason)}",
                "candidates:",
                *lines,
                "ways to choose:",
                f"  --provide {virtual}={candidates[0]}",
                f"  HPM_PROVIDERS={virtual}={candidates[0]}",
                f"  hpm-registry.yaml: defaults: {{providers: {{{virtual}: {candidates[0]}}}}}",
            ]
        ),
    )


def _chain(state: _State, reason: Reason) -> str:
    parts = [reason.detail]
    seen: set[str] = set()
    parent = reason.parent
    while parent is not None and parent not in seen:
        seen.add(parent)
        why = state.chosen[parent]
        parts.append(f"{parent} is in: {why.detail}")
        parent = why.parent
    return "; ".join(parts)


def why_chain(plan: Plan, name: str, show_path: Callable[[str], str] = str) -> list[str]:
    """Lines from ``name`` back to what was asked for; ``show_path`` shows a manifest's path."""
    key = canonicalize_name(name)
    provider = next((p for p in plan.providers if p.virtual == key), None)
    lines: list[str] = []
    if provider is not None:
        lines.append(
            f"{key} is a virtual; provider {provider.package}: {provider.detail} "
            f"(candidates: {', '.join(provider.candidates)})"
        )
        key = provider.package
    seen: set[str] = set()
    current: str | None = key
    while current is not None and current not in seen:
        seen.add(current)
        pkg = plan.package(current)
        if pkg is None:
            break
        lines.append(f"{pkg.name} {pkg.version}: {pkg.reason.detail}  [{show_path(pkg.manifest)}]")
        current = pkg.reason.parent
    return lines


def _check_constraints(state: _State) -> None:
    registry = state.registry

    def resolved(name: str) -> str | None:
        if name in state.chosen:
            return name
        provider = state.providers.get(name)
        return provider.package if provider else None

    for virtual, provider in state.providers.items():
        selected = [c for c in provider.candidates if c in state.chosen]
        if len(selected) > 1:
            reason = state.chosen[provider.package]
            raise _ambiguous(state, virtual, selected, "more than one provider is selected", reason)
    for name, spec, by, where in state.constraints:
        target = resolved(name)
        if target is None:
            continue
        version = registry.entries[target].manifest.version
        if not specifier(spec).contains(version, prereleases=True):
            entry = registry.entries[target]
            raise ResolutionError(
                f"{by} requires {name} {spec}, but the plan has {target} {version}",
                "\n".join(
                    [
                        f"constraint: {name} {spec}  [{where}]",
                        f"  {by} is in: {_chain(state, state.chosen[by])}",
                        f"found: {target} {version}  [{entry.where('version')}]",
                        f"  {target} is in: {_chain(state, state.chosen[target])}",
                    ]
                ),
            )
    for name in sorted(state.chosen):
        entry = registry.entries[name]
        for other, spec in sorted(entry.manifest.conflicts.items()):
            target = resolved(canonicalize_name(other))
            if target is None or target == name:
                continue
            version = registry.entries[target].manifest.version
            if specifier(spec).contains(version, prereleases=True):
                raise ResolutionError(
                    f"{name} conflicts with {other} {spec}, and both are selected ({target} {version})",
                    "\n".join(
                        [
                            f"conflict: {other} {spec}  [{entry.where('conflicts', other)}]",
                            f"  {name} is in: {_chain(state, state.chosen[name])}",
                            f"  {target} is in: {_chain(state, state.chosen[target])}",
                            "remove one of them from the selection (--with, --group, defaults)",
                        ]
                    ),
                )


def _plan(state: _State, groups: Iterable[str]) -> Plan:
    registry, mode = state.registry, state.selection.mode
    packages: list[PlannedPackage] = []
    warnings: list[str] = []
    for name in sorted(state.chosen):
        entry = registry.entries[name]
        m = entry.manifest
        source, source_mode = entry.source(mode)
        path = entry.local_path(source)
        if path is not None and not path.exists() and source_mode == "dev":
            warnings.append(
                f"{name}: dev checkout {path} does not exist; using the prod source (hpm dev checkout {name})"
            )
            source, source_mode = m.sources.prod, "prod"
            path = entry.local_path(source)
        if isinstance(source, LocalSource) and path is not None:
            source = LocalSource(str(path), source.editable, source.package)
        packages.append(
            PlannedPackage(
                name=name,
                version=m.version,
                source_mode=source_mode,
                source=source,
                manifest=os.path.abspath(entry.file),
                reason=state.chosen[name],
                manager=m.install_args.manager,
                extras=sorted(m.install_args.extras),
                channels=list(m.install_args.channels),
                entrypoints=dict(sorted(m.entrypoints.items())),
                provides=sorted(canonicalize_name(v) for v in m.provides),
                path=str(path) if path is not None else None,
            )
        )
    return Plan(
        format=PLAN_FORMAT,
        mode=mode,
        registry=[str(Path(d).resolve()) for d in registry.dirs],
        requested=sorted(canonicalize_name(n) for n in state.selection.with_),
        groups=sorted({canonicalize_name(g) for g in groups}),
        packages=packages,
        providers=[state.providers[v] for v in sorted(state.providers)],
        warnings=warnings,
        constraints=_registry_requirements(registry, "constraints"),
        overrides=_registry_requirements(registry, "overrides"),
    )


def _registry_requirements(registry: Registry, key: str) -> list[RegistryRequirement]:
    fallback = str(registry.config_files[-1]) if registry.config_files else "hpm-registry.yaml"
    return [RegistryRequirement(text, str(registry.config_positions.find((key, i)) or fallback))
            for i, text in enumerate(getattr(registry.config, key))]
