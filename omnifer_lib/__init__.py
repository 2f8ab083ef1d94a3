"""omnifer_lib: the library behind the omnifer book.

Modules follow the paper's data flow, each depending only on those before it:
``data`` -> ``models`` -> ``train`` / ``evaluate`` -> ``select`` (§3.3) / ``distill`` (§3.4)
-> ``pipeline`` (cached stages) -> notebooks. ``config``, ``store`` and ``provenance`` are
infrastructure used by the pipeline and the CLI.
"""
__version__ = "0.1.0"

from . import _import_stamps  # noqa: E402

# Cached results are keyed by the source on disk: remember it as imported (book.fingerprint).
_import_stamps.record()
