"""What ``hpm.pyz`` runs at every start: read the start-path modules from the pyz (one
read, one CRC check), serve them to the import system, run ``hpm_boot.__main__.main``.

build_zipapp.py ships this file as the top-level module ``_hpm_start``, compiled per
interpreter (``<cache tag>/_hpm_start.pyc``, stored) with its source as the fallback; the
generated ``__main__.py`` calls ``start``. Standard library only, and no
``from __future__`` import (it would cost an import at every start).
"""

import sys

#: build_zipapp.HASH_KEY
HASH_KEY = 0x68706D


def read(pyz: str, region: tuple) -> bytes:
    """The bytes of a raw ``region`` of the pyz, ``(check, ((offset, length), ...))``;
    ValueError when they fail their check. The check is the SipHash of ``_imp.source_hash``
    (builtin) where the build computed it with this interpreter, which the start-path
    modules' regions are; else a CRC-32 (``zlib`` is a shared library on many builds, and
    loading it costs ~0.3 ms)."""
    parts = []
    with open(pyz, "rb") as f:
        for at, size in region[1]:
            f.seek(at)
            parts.append(f.read(size))
    data = b"".join(parts)
    if isinstance(region[0], bytes):
        from _imp import source_hash

        good = source_hash(HASH_KEY, data) == region[0]
    else:
        from zlib import crc32

        good = crc32(data) == region[0]
    if not good:
        raise ValueError(f"bytes {region[1][0][0]}..{sum(region[1][-1])} fail their check")
    return data


class HotModules:
    """``sys.meta_path`` finder and loader of the start-path modules. They come in tiers,
    each a region of the pyz read (and checked) when one of its modules is first imported,
    each module unmarshalled when imported. ``hpm_boot._pyz`` reaches the rest of the pyz
    (the lib zip) through it: ``lib`` is that region, ``read(region)`` its checked bytes."""

    def __init__(self, pyz: str, layout: dict, tiers: list, bytecode: bool) -> None:
        self.pyz, self.tiers, self.bytecode, self.modules = pyz, tiers, bytecode, {}
        self.lib, self.lib_key, self.lib_path = layout["lib"], layout["lib_key"], None
        self.wheels = layout.get("wheels")  # the region of the compiled wheels' index

    def read(self, region: tuple) -> bytes:
        return read(self.pyz, region)

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name not in self.modules:
            tier = next((t for t in self.tiers if name in t[0]), None)
            if tier is None:
                return None
            self.load(tier)
        from importlib.machinery import ModuleSpec  # runpy has imported it: free

        spec = ModuleSpec(name, self, origin=f"{self.pyz}/{name.replace('.', '/')}.py",
                          is_package=self.modules[name][0])
        spec.has_location = True  # sets __file__
        return spec

    def load(self, tier: tuple) -> None:
        """Read a tier's region; a damaged one raises ZipImportError, which ``start`` reports."""
        from marshal import loads

        try:
            self.modules.update(loads(self.read(tier[1])))
        except (OSError, ValueError, EOFError, TypeError) as exc:
            from zipimport import ZipImportError  # frozen, already imported

            raise ZipImportError(f"{type(exc).__name__}: {exc}") from None
        self.tiers.remove(tier)

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: object) -> None:
        data = self.modules[module.__name__][1]
        if self.bytecode:
            from marshal import loads

            code = loads(data)
        else:
            code = compile(data, module.__name__.replace(".", "/") + ".py", "exec", dont_inherit=True)
        exec(code, module.__dict__)


def damaged(pyz: str, cause: BaseException) -> int:
    sys.stderr.write(f"hpm: the file {pyz} is damaged ({type(cause).__name__}: {cause}); "
                     "download or build it again\n")
    return 65


def serve(pyz: str, layout: dict | None = None) -> HotModules:
    """Put the start-path modules of ``pyz`` on ``sys.meta_path``, the first tier read and
    checked; OSError, ValueError, EOFError, TypeError, KeyError or ImportError when the
    file is damaged. ``layout``: its LAYOUT, when the caller has read it already."""
    from importlib.util import MAGIC_NUMBER  # runpy has imported it
    from marshal import loads

    if layout is None:
        layout = loads(__loader__.get_data("LAYOUT"))
    magic, tiers = layout["hot"].get(sys.implementation.cache_tag, ("", None))
    bytecode = magic == MAGIC_NUMBER.hex()
    hot = HotModules(pyz, layout, list(tiers if bytecode else layout["source"]), bytecode)
    hot.load(hot.tiers[0])  # what every start needs: damage shows before anything runs
    sys.meta_path.insert(0, hot)
    return hot


def start(pyz: str, layout: dict | None = None) -> int:
    """Serve the start-path modules and run hpm; a damaged pyz is exit 65."""
    try:
        serve(pyz, layout)
    except (OSError, ValueError, EOFError, TypeError, KeyError, ImportError) as exc:
        return damaged(pyz, exc)
    try:
        from hpm_boot.__main__ import main

        return main()
    except Exception as exc:
        # zipimport checks no CRC: a damaged member of the lib zip shows as ZipImportError,
        # a zlib error, bad marshal data or a SyntaxError raised in zipimport's own frame
        # (hpm's code raises in its own frames, and those errors are not ours to rename)
        tb = exc.__traceback__
        while tb and tb.tb_next:
            tb = tb.tb_next
        if type(exc).__name__ != "ZipImportError" and not (
            tb and tb.tb_frame.f_code.co_filename == "<frozen zipimport>"
        ):
            raise
        return damaged(pyz, exc)
