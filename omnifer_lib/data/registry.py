"""The datasets of :mod:`omnifer_lib.data`, derived from one record each.

Each dataset module declares its :class:`~omnifer_lib.data._base.DatasetRecord` (``RECORD``: name,
display name, loader, splits, layout check, synthetic size parameters); :data:`RECORDS` lists them
and every other list (:data:`REGISTRY`, :data:`LAYOUT_CHECKS`, :data:`DISPLAY_NAMES`,
:data:`SIZE_KEYS`) is derived from it. :func:`load` and :func:`check_root` open and check a
dataset by name (re-exported as ``omnifer_lib.data.load`` and ``omnifer_lib.data.check_root``).
"""
from __future__ import annotations

import inspect
from importlib import import_module
from typing import Callable, Dict, Optional, Tuple

from . import ckplus, fer2013, folder, jaffe, mmi, ms1m, rafdb, synthetic
from ._base import DatasetLayoutError, DatasetRecord, FERDataset

#: Every dataset, by name, in the order tables list them: one ``RECORD`` per dataset module.
#: Adding a dataset is its module (loader, ``check_layout``, ``RECORD``) and one entry here.
RECORDS: Dict[str, DatasetRecord] = {r.name: r for r in (
    rafdb.RECORD, fer2013.RECORD, ckplus.RECORD, jaffe.RECORD, mmi.RECORD, ms1m.RECORD, folder.RECORD,
    synthetic.RECORD,
)}

#: name -> ``(factory(root, split, transform, **options), default split, needs a root)``
REGISTRY: Dict[str, Tuple[Callable, str, bool]] = {
    n: (r.factory, r.default_split, r.needs_root) for n, r in RECORDS.items()}
#: name -> cheap layout check(root, **options) of the loader's module (see :func:`check_root`)
LAYOUT_CHECKS: Dict[str, Callable[..., None]] = {n: r.layout_check for n, r in RECORDS.items() if r.needs_root}
#: Display names (``"RAF-DB"``) of the datasets, for tables and figures.
DISPLAY_NAMES: Dict[str, str] = {n: r.display_name for n, r in RECORDS.items()}
#: The datasets a synthetic domain stands in for (the paper's six), with the profile parameters sizing each.
SIZE_KEYS: Dict[str, Tuple[str, ...]] = {n: r.size_keys for n, r in RECORDS.items() if r.size_keys}
#: The paper's datasets: those a synthetic domain stands in for (RAF-DB, FER-2013, CK+, JAFFE, MMI, MS-Celeb-1M).
PAPER_DATASETS: Tuple[str, ...] = tuple(SIZE_KEYS)
#: Display names of the paper's datasets (``{"rafdb": "RAF-DB", ...}``).
DATASET_NAMES: Dict[str, str] = {n: DISPLAY_NAMES[n] for n in PAPER_DATASETS}


def _options_of(factory: Callable) -> Tuple[str, ...]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    return tuple(n for n in params if n not in ("self", "root", "split", "transform"))


def _known(name: str) -> None:
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(REGISTRY)}")


def _looks_like(root, name: str) -> Optional[str]:
    """The other real dataset whose layout ``root`` passes, if exactly one does (``folder``,
    which takes any folder of images, is not considered)."""
    fits = []
    for other, check in LAYOUT_CHECKS.items():
        if other in (name, "folder"):
            continue
        try:
            check(root)
        except (ValueError, OSError):  # DatasetLayoutError is an OSError
            continue
        fits.append(other)
    return fits[0] if len(fits) == 1 else None


def _with_hint(exc: DatasetLayoutError, name: str, root) -> DatasetLayoutError:
    """``exc`` with a last line naming the dataset whose layout ``root`` holds instead, if any."""
    other = _looks_like(root, name)
    if other is None:
        return exc
    return DatasetLayoutError(f"{exc}\n(root {root} is laid out as {other}: was the {other} root given "
                              f"for {name}?)")


def check_root(name: str, root, **options) -> None:
    """Check cheaply that ``root`` holds dataset ``name`` in the layout its loader expects.

    Reads no image and at most the first lines of label / index files (a CSV header and
    first row, an ``.idx`` first line and the record it points at), so it takes well under a
    second on a full dataset; meant for a preflight before long runs. ``options`` are the
    loader's layout options (rafdb/ckplus ``variant=``, fer2013 ``source=``, ms1m ``prefix=``,
    folder ``split=``/``recursive=``). Raises the loader's :class:`DatasetLayoutError` (first
    line: dataset, root, what is missing; then the expected layout; a last line names the
    dataset the folder holds instead, when it holds one), or ``ValueError`` for a malformed
    first label / index line.
    """
    _known(name)
    if name not in LAYOUT_CHECKS:
        raise ValueError(f"{name}: the synthetic data is rendered, it has no root to check")
    check = LAYOUT_CHECKS[name]
    allowed = tuple(n for n in inspect.signature(check).parameters if n != "root")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"check_root({name!r}): unknown option(s) {unknown}; accepted: {', '.join(allowed)}")
    try:
        check(root, **options)
    except DatasetLayoutError as exc:
        raise _with_hint(exc, name, root) from None


def load(name: str, root=None, split: Optional[str] = None, transform: Optional[Callable] = None,
         **options) -> FERDataset:
    """Open dataset ``name`` (see module docstring).

    ``split=None`` takes the dataset's default: ``"train"`` where an official split exists
    (rafdb, fer2013, ms1m, synthetic), ``"all"`` otherwise (ckplus, jaffe, mmi, folder; use
    :mod:`omnifer_lib.data.protocols` for their folds). ``options`` are passed to the
    loader (e.g. ``variant=``, ``ferplus=``, ``keep_contempt=``, ``skip_corrupt=``, or for
    ``synthetic``: ``domain=``, ``size=``, ``image_size=``, ``seed=``).

    Raises ``ValueError`` for an unknown name or option, :class:`DatasetLayoutError` (a
    ``FileNotFoundError``) when a root is missing or not in the expected layout.
    """
    _known(name)
    factory, default_split, needs_root = REGISTRY[name]
    split = default_split if split is None else split
    allowed = _options_of(factory)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; accepted: {', '.join(allowed)}")
    if not needs_root:
        if root is not None:
            raise ValueError(f"{name}: the synthetic data is rendered, it takes no root (got {root!r})")
        return factory(split=split, transform=transform, **options)
    if root is None:
        layout = layout_of(name)
        raise DatasetLayoutError(f"{name}: no root given; pass root= pointing at a folder laid out as:\n{layout}")
    try:
        return factory(root, split=split, transform=transform, **options)
    except DatasetLayoutError as exc:
        raise _with_hint(exc, name, root) from None


def layout_of(name: str) -> str:
    """The on-disk layout dataset ``name`` expects (its module's ``LAYOUT``), for error messages."""
    _known(name)
    return getattr(import_module(RECORDS[name].factory.__module__), "LAYOUT", "").rstrip()
