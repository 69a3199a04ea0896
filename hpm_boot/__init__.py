"""hpm: an environment hypervisor for plugin-based Python applications.

The tree says when code runs (docs/architecture.md has the map):

- **The start path: the modules directly in this package.** They run before anything
  else: the warm start of a container (``warmstart``: lock installed, exec), a cold
  install from a lock (``install``), a reused ephemeral environment (``reuse``), and
  the dispatch in ``__main__``. They import the standard library and each other only;
  inside ``hpm.pyz`` they are served from the file itself before ``_pyz.setup()`` has
  made anything else importable. ``WARM_START`` names the ones a warm start imports
  (the pyz reads them first); the others are read on first import.
- **The CLI path: the subpackages.** ``compose`` turns manifests into a plan, a lock
  and an ephemeral project (registry -> resolve -> lock); ``commands`` holds one module
  per command; ``cli`` is the parser and ``main``. They may use PyYAML, packaging and
  msgspec, and run only after ``_pyz.setup()``.

Tests hold both rules: no start-path module imports outside them, and no import cycles.
"""

__version__ = "0.1.0"

#: the start-path modules a warm ``hpm run`` imports, in no particular order
WARM_START = ("__init__", "__main__", "contract", "fastargs", "handover", "log", "target", "warmstart")
