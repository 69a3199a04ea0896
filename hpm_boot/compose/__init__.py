"""Composition: manifests -> plan -> lock, the pipeline of the CLI path.

``yamlpos`` reads YAML with positions; ``manifest`` validates one manifest or overlay;
``registry`` loads a registry directory (layering, overlays, dev paths); ``resolve``
turns a selection into a plan (virtuals, groups, compatibility); ``lock`` freezes a
plan (git SHAs, the closure pinned by ``uv pip compile``); ``planlock`` remembers the
pins of a plan resolved on the spot; ``ephemeral`` makes a plan into a uv project;
``k8s`` writes a lock as Kubernetes manifests. These modules may use PyYAML, packaging
and msgspec: they run only after ``hpm_boot._pyz.setup()``.
"""
