"""Progress for the whole library: tqdm bars on a terminal, progress lines for the runner.

Long loops (training epochs, feature extraction over a pool, distillation steps) show a
tqdm bar on a terminal. Bars are switched off when ``OMNIFER_PROGRESS=0`` is set, which the
notebook runner does so that executed notebooks in the book are not cluttered by them.

A notebook executed by the runner cannot write to the runner's terminal, so the library also
writes short *progress lines* ("learner vgg_small · anchor+VAS · seed 1: epoch 3/10, loss 1.23")
to the file named by ``OMNIFER_EVENTS`` when it is set; ``omnifer reproduce`` / ``run`` set it and
print the lines as they arrive (``--quiet`` turns them off). Without the variable, :func:`report`
does nothing and the bars behave as plain tqdm bars.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Dict, Iterable, Iterator, List, Optional, TypeVar

from tqdm import tqdm  # not tqdm.auto: notebooks run with bars off, and auto wants ipywidgets

T = TypeVar("T")
EVENTS_ENV = "OMNIFER_EVENTS"
#: seconds between two lines of the same kind (a bar's position, distillation iterations);
#: ``OMNIFER_PROGRESS_EVERY`` overrides it
THROTTLE_SECONDS = float(os.environ.get("OMNIFER_PROGRESS_EVERY", "5"))

_context: List[str] = []
_last: Dict[str, float] = {}


def progress_enabled(enable: Optional[bool] = None) -> bool:
    """Whether bars are shown: ``enable`` if given, else the ``OMNIFER_PROGRESS`` variable."""
    if enable is not None:
        return bool(enable)
    return os.environ.get("OMNIFER_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


def report(message: str, *, throttle: Optional[str] = None) -> None:
    """Write one progress line for the runner (no-op unless ``OMNIFER_EVENTS`` is set).

    Lines are prefixed with the current :func:`stage` label. With ``throttle`` (a kind of
    line, e.g. ``"distill"``) lines of that kind are written at most every
    :data:`THROTTLE_SECONDS`."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    if throttle is not None:
        now = time.monotonic()
        if now - _last.get(throttle, -1e9) < THROTTLE_SECONDS:
            return
        _last[throttle] = now
    prefix = f"{_context[-1]}: " if _context else ""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(prefix + " ".join(message.split()) + "\n")
    except OSError:  # progress must never break a computation
        pass


@contextlib.contextmanager
def stage(label: str) -> Iterator[None]:
    """Label the progress lines written inside the block (e.g. which learner is training) and
    report when the block starts and how long it took."""
    _context.append(label)
    t0 = time.time()
    report("started")
    try:
        yield
    finally:
        report(f"finished in {time.time() - t0:.1f} s")
        _context.pop()


class _ReportingBar:
    """A tqdm bar that also reports its position as progress lines: none for a loop shorter
    than :data:`THROTTLE_SECONDS`, then one every :data:`THROTTLE_SECONDS`."""

    def __init__(self, bar: tqdm, desc: str):
        self._bar, self._desc, self._postfix = bar, desc, ""
        self._started = time.monotonic()

    def _report(self) -> None:
        if time.monotonic() - self._started < THROTTLE_SECONDS:
            return
        total = self._bar.total
        where = f"{self._bar.n}/{total}" if total else f"{self._bar.n}"
        report(f"{self._desc} {where} {self._postfix}".strip(), throttle=f"bar:{self._desc}")

    def __iter__(self):
        for item in self._bar:
            yield item
            if self._bar.disable:
                self._bar.n += 1  # a disabled tqdm does not count
            self._report()

    def __len__(self) -> int:
        return len(self._bar)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)
        if self._bar.disable:
            self._bar.n += n
        self._report()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self._bar.set_description(desc, refresh=refresh)
        self._desc = desc

    def set_postfix(self, *args, **kwargs) -> None:
        self._bar.set_postfix(*args, **kwargs)
        self._postfix = ", ".join(f"{k} {v}" for k, v in kwargs.items())

    def close(self) -> None:
        self._bar.close()

    def __getattr__(self, name: str):
        return getattr(self._bar, name)


def progress(iterable: Optional[Iterable[T]] = None, *, desc: str = "", total: Optional[int] = None,
             enable: Optional[bool] = None, leave: bool = False, **kwargs):
    """Wrap ``iterable`` in a tqdm bar (or a disabled one: same interface, no output); under the
    runner the bar's position also goes out as throttled progress lines."""
    bar = tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(enable),
               leave=leave, dynamic_ncols=True, **kwargs)
    if bar.disable and bar.total is None and total is None and iterable is not None:
        try:
            bar.total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            pass
    return _ReportingBar(bar, desc) if os.environ.get(EVENTS_ENV) else bar
