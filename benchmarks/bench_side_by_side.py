"""A table of learners trained one after the other with every thread, against the same learners
trained side by side in one-thread worker processes (``learner_processes``), measured in one run.

Both ways train the same learners of the demo profile (anchor only, ``--seeds`` seeds of each of
``--backbones``, ``--epochs`` epochs) through :func:`omnifer_lib.engine.pipeline.results_table`, each
from an empty cache of its own; the face pretraining vgg_small starts from is computed first and
not timed. Three rows:

* ``serial, T threads``: ``train_threads: null`` (torch's default, every core), one at a time —
  how the demo trained before learners went side by side;
* ``serial, 1 thread``: ``train_threads: 1``, one at a time (what one worker does);
* ``side by side``: ``train_threads: 1``, ``learner_processes`` = the cores, worker processes.

Printed: seconds of each and the speed-up of the side-by-side row over the serial T-thread row
(the demo's old default), and the numbers' agreement: the side-by-side and serial one-thread
rows must give the same accuracies (same thread count), the T-thread row differs in the last bits.

Usage::

    python benchmarks/bench_side_by_side.py [--seeds 4] [--epochs 3] [--backbones vgg_small resnet_small]

Run it on an otherwise idle machine; the ratio is the result, not the absolute numbers.
"""
from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time

from omnifer_lib.engine import pipeline
from omnifer_lib.publish import config
from omnifer_lib.engine.provenance import machine, machine_text


def _table(cache: str, overrides: dict):
    os.environ["OMNIFER_CACHE"] = cache
    pipeline.clear_memory_caches()
    params = config.load_profile("demo", overrides)
    if "vgg_small" in params["backbones"]:
        pipeline.face_pretraining(params, "vgg_small")  # shared by every vgg_small learner: not timed
    start = time.perf_counter()
    table = pipeline.results_table(params, params["backbones"], modes=("anchor",))
    return time.perf_counter() - start, table[table["target"] == params["anchor"]]["accuracy"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbones", nargs="+", default=["vgg_small", "resnet_small"])
    args = parser.parse_args()
    os.environ.setdefault("OMNIFER_PROGRESS", "0")
    common = {"seeds": list(range(args.seeds)), "epochs": args.epochs, "backbones": args.backbones, "device": "cpu"}
    cores = os.cpu_count() or 1
    rows = {"serial, T threads": {"train_threads": None},
            "serial, 1 thread": {"train_threads": 1, "learner_processes": 1},
            "side by side": {"train_threads": 1, "learner_processes": cores}}
    print(f"{datetime.date.today()} · {machine_text(machine())} · {cores} cores")
    print(f"{args.seeds} seeds × {args.backbones} × {args.epochs} epochs (demo data), anchor learners")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, over) in enumerate(rows.items()):
            results[name] = _table(os.path.join(tmp, str(i)), {**common, **over})
            print(f"  {name:18s} {results[name][0]:7.1f} s", flush=True)
    base = results["serial, T threads"][0]
    print(f"side by side / serial with {cores} threads: {base / results['side by side'][0]:.2f}× faster; "
          f"one thread alone is {base / results['serial, 1 thread'][0]:.2f}× the speed of {cores}")
    same = results["side by side"][1] == results["serial, 1 thread"][1]
    print(f"side by side and serial one-thread accuracies identical: {same}")


if __name__ == "__main__":
    main()
