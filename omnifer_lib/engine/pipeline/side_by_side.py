"""Independent learners trained side by side, each in a worker process of its own (on the CPU).

The demo's small networks gain little from a second thread on some CPUs (on the AMD EPYC of
issue 14, vgg_small trained at ~840 images/s with one thread and ~900 with two); there
one-thread learners side by side should train a table nearly twice as fast as one learner at a time
with every thread (expected; not measured on that machine). Where a second thread already pays
(another AMD EPYC: 1.4×), the two ways took the same time (``benchmarks/bench_side_by_side.py``;
figures in ``benchmarks/README.md``). The thread count orders a convolution's sums, so it changes a
learner's numbers in the last bits: it is a profile parameter, ``train_threads``, which holds
wherever the learner trains (here or in a worker). ``learner_processes`` only says how many train
at once and changes no number.

:func:`train_side_by_side` looks every asked-for learner up under
:func:`~omnifer_lib.engine.pipeline._common.lookup_only`: its upstream stages (face pretraining,
the selection over the pool, distilled sets) are computed here, in this process, exactly as they
would be without workers, and the learners whose own training is all that is missing are handed to
worker processes, ``learner_processes`` at a time. A learner whose upstream needs another learner
not trained yet (a VAS learner needs the primitive learner's selection) waits for the next round.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any, Callable, Dict, Iterator, List, Mapping, Sequence, Tuple

from omnifer_lib.engine.pipeline._common import NotTrainedYet, device_of, lookup_only, train_threads

Call = Tuple[Callable[..., Any], tuple, Dict[str, Any]]


def learner_processes(params: Mapping[str, Any]) -> int:
    """How many learners train at once: ``params["learner_processes"]``, or when it is ``None`` as
    many as this process's CPU threads (torch's, normally one per core; fewer in a chapter run
    beside others by ``omnifer reproduce --jobs``) hold learners of ``train_threads`` threads each.
    One on a GPU, under ``torchrun`` (the ranks share each learner) and when ``train_threads`` is not
    set (a learner then takes every thread)."""
    import torch

    from omnifer_lib.distributed import is_running

    threads = train_threads(params)
    if threads is None or is_running() or device_of(params).type != "cpu":
        return 1
    wanted = params.get("learner_processes")
    return max(1, int(wanted) if wanted is not None else torch.get_num_threads() // threads)


def missing_learners(calls: Sequence[Call]) -> Dict[str, Call]:
    """The learners that ``calls`` need and that are not cached yet, whose upstream stages are ready
    (those were computed on the way): ``{artifact key: the call that trains it}``."""
    missing: Dict[str, Call] = {}
    for fn, args, kwargs in calls:
        try:
            with lookup_only():
                fn(*args, **kwargs)
        except NotTrainedYet as absent:
            missing.setdefault(absent.key, absent.call or (fn, args, kwargs))
    return missing


def train_side_by_side(params: Mapping[str, Any], calls: Sequence[Call]) -> int:
    """Train what ``calls`` (``(stage function, args, kwargs)``, e.g. ``(learner, (params,
    "vgg_small", "anchor+VAS"), {"seed": 1})``) need and the cache lacks, :func:`learner_processes`
    learners at a time in worker processes; returns how many were trained so. Nothing happens with
    one process or when fewer than two learners are missing: the caller then trains them as usual
    (with the same threads, hence the same numbers). A worker's failure is raised here."""
    processes = learner_processes(params)
    trained: set = set()
    while processes > 1:
        missing = missing_learners(calls)
        if len(missing) < 2:
            break
        if trained & missing.keys():
            raise RuntimeError("learners trained in worker processes are not in this process's cache "
                               f"({os.environ.get('OMNIFER_CACHE') or 'the default folder'}); do the workers "
                               "see another cache folder?")
        _train_in_workers(list(missing.values()), min(processes, len(missing)), train_threads(params) or 1)
        trained |= missing.keys()
    return len(trained)


def _train_in_workers(calls: List[Call], processes: int, threads: int) -> None:
    # spawn, not fork: a forked copy of a process that already ran torch's thread pool can hang
    with _caller_not_rerun(), ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(_run, *call) for call in calls]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()  # the learners not started yet; the running ones finish (their checkpoints stay)
            raise failed[0].exception()


@contextlib.contextmanager
def _caller_not_rerun() -> Iterator[None]:
    """A spawned worker runs the parent's ``__main__`` again before its task; the tasks need only
    omnifer_lib, and a caller's script without an ``if __name__ == "__main__"`` guard would start
    its own work again in every worker. So the main module is hidden while workers start."""
    main = sys.modules["__main__"]
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    main.__spec__ = None
    if "__file__" in saved:
        del main.__file__
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run(fn: Callable[..., Any], args: tuple, kwargs: Dict[str, Any]) -> None:
    fn(*args, **kwargs)  # the result is in the store; the artifact itself stays in the worker
