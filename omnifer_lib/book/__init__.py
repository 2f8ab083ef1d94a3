"""The old home of the book's machinery, kept so that code written against it keeps running.

It was split into :mod:`omnifer_lib.engine` (the cached-stage engine: ``pipeline``, ``store``,
``fingerprint``, ``provenance``, ``roles``) and :mod:`omnifer_lib.publish` (everything the book shows and
runs: ``config``, ``reporting``, ``claims``, ``plots``, ``runner``, ``cli``, ...). ``omnifer_lib.book.X``
(``import``, ``from ... import`` and ``python -m``) is the module of its new home, loaded on request;
new code imports the new homes.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: The modules that moved to the engine; every other ``omnifer_lib.book.X`` is ``omnifer_lib.publish.X``.
ENGINE = ("pipeline", "store", "fingerprint", "provenance", "roles")


def new_name(old: str) -> str:
    """``omnifer_lib.book.pipeline.learners`` -> ``omnifer_lib.engine.pipeline.learners``, ..."""
    rest = old[len(__name__) + 1:]
    home = "engine" if rest.split(".")[0] in ENGINE else "publish"
    return f"omnifer_lib.{home}.{rest}"


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``omnifer_lib.book.X`` as the module of its new home (the same object, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(__name__ + "."):
            return None
        if importlib.util.find_spec(new_name(fullname)) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(new_name(spec.name))

    def exec_module(self, module):
        pass  # already executed under its new name

    def get_code(self, fullname):  # for ``python -m omnifer_lib.book.X``
        spec = importlib.util.find_spec(new_name(fullname))
        return spec.loader.get_code(spec.name)


if not any(isinstance(f, _OldNames) for f in sys.meta_path):
    sys.meta_path.insert(0, _OldNames())


def __getattr__(name: str):
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
