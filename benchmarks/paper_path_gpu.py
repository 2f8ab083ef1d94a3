"""The ``paper`` profile's path at 224 px on a GPU, end to end, and its speed beside Table 8.

Two parts, in one run:

1. **The path.** Synthetic faces are written in the real datasets' published layouts at 224 px
   (``write_published_layouts``; no licensed data), and the ``paper`` profile runs on them
   through the cached stages the notebooks use: the primitive learner of each paper backbone
   (VGG-Face, ResNet-34; random init, since weights are never downloaded), the selection over
   the pool, Algorithm 1, the final learners anchor + VAS and anchor + DAS, with AMP off and on.
   Each stage's wall time and the learners' accuracies are printed; the accuracies of a
   two-epoch run on synthetic faces mean nothing beyond "the path runs and evaluates".
2. **The speed** of the three things Table 8 and issue 15 ask about, at 224 px on random
   images held in memory (so the GPU, not image decoding, is measured): ``fit`` images/s per
   backbone with and without AMP; ``select_auxiliary`` images/s against a bare forward pass over
   the same batches; seconds per outer iteration of Algorithm 1. From the images/s it prints
   the seconds per epoch of the paper's Table 8 settings on this one GPU: RAF-DB's 12,271
   training images (w/o AS, w/ DAS: the DAS add one image per class to each batch) and
   12,271 + 117,369 selected samples (w/ VAS), beside the paper's 155 / 1,625 / 156 s.

Usage (on a CUDA machine; about 5 minutes on one H200 at the default ``--scale 2``)::

    OMNIFER_CACHE=/tmp/cache python benchmarks/paper_path_gpu.py [--out DIR] [--epochs 2]

``--out`` receives ``paper_path_gpu.json`` with every number printed.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import traceback
from pathlib import Path

import torch

#: The paper's Table 8 (seconds per epoch, 4 GPUs) and the sizes behind it (§4.1, §4.4.3).
PAPER_SECONDS = {"w/o AS": 155, "w/ VAS": 1625, "w/ DAS": 156}
RAFDB_TRAIN, PAPER_VAS = 12_271, 117_369


def timed(results: dict, name: str, fn, *args):
    """Run ``fn(*args)``; record its seconds (or its error) under ``name``; never raise."""
    start = time.time()
    try:
        value = fn(*args)
        results[name] = {"seconds": round(time.time() - start, 2)}
        print(f"[ok] {name}: {results[name]['seconds']} s", flush=True)
        return value
    except Exception as exc:  # one broken stage must not hide the others' results
        results[name] = {"seconds": round(time.time() - start, 2), "error": f"{type(exc).__name__}: {exc}"}
        print(f"[FAILED] {name}: {results[name]['error']}", flush=True)
        traceback.print_exc()
        return None


def run_path(args, results: dict) -> None:
    from omnifer_lib.engine import pipeline
    from omnifer_lib.publish import config
    from omnifer_lib.data.published_layouts import write_published_layouts

    root = Path(tempfile.mkdtemp(prefix="layouts"))
    scale = args.scale
    sizes = {"rafdb_train": 210 * scale, "rafdb_test": 105 * scale, "ms1m": 400 * scale}
    roots = timed(results, f"write layouts ({args.image_size} px)",
                  lambda: write_published_layouts(root, sizes=sizes, image_size=args.image_size))
    if roots is None:
        return
    base = dict(roots, epochs=args.epochs, lr_step=max(1, args.epochs), vgg_face_weights=None,
                resnet34_weights=None, device=args.device, image_size=args.image_size, delta=0.0,
                vas_deltas=[0.0], distill_iterations=20, snapshot_every=10, distill_eval_inits=1, seeds=[0])
    for amp in (False, True):
        params = config.load_profile("paper", dict(base, amp=amp))
        tag = "amp" if amp else "fp32"
        timed(results, f"preflight ({tag})", pipeline.preflight, params)
        if "error" in results[f"preflight ({tag})"]:
            return
        for backbone in params["backbones"]:
            key = f"{backbone} {tag}"
            prim = timed(results, f"{key}: primitive learner", pipeline.primitive_learner, params, backbone)
            if prim is not None:
                results[f"{key}: primitive learner"]["accuracy"] = _accuracies(pipeline.evaluation(prim))
            if amp:
                continue  # AMP: the learner's path is what differs; selection and distillation are fp32
            vas = timed(results, f"{key}: selection", pipeline.auxiliary_samples, params, backbone)
            if vas is not None:
                results[f"{key}: selection"]["selected"] = len(vas)
            timed(results, f"{key}: Algorithm 1", pipeline.distilled, params, backbone)
            for mode in ("anchor+VAS", "anchor+DAS"):
                art = timed(results, f"{key}: {mode}", pipeline.learner, params, backbone, mode)
                if art is not None:
                    results[f"{key}: {mode}"]["accuracy"] = _accuracies(pipeline.evaluation(art))


def _accuracies(evaluation: dict) -> dict:
    return {k: round(float(v["accuracy"]), 3) for k, v in evaluation.items() if isinstance(v, dict) and "accuracy" in v}


def run_speed(args, results: dict) -> None:
    from omnifer_lib import models, train
    from omnifer_lib.distill import DistillConfig, distill
    from omnifer_lib.select import select_auxiliary
    from omnifer_lib.select.stream import model_fingerprint

    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n, size = args.speed_images, args.image_size
    images = torch.rand(n, 3, size, size, generator=g)
    labels = torch.randint(0, 7, (n,), generator=g)
    for name in ("vgg_face", "resnet34"):
        for amp in (False, True):
            model = models.build(name, seed=0)
            kw = dict(epochs=1, lr=0.001, batch_size=64, flip_p=0.5, device=dev, amp=amp, progress=False)
            train.fit(model, (images[:256], labels[:256]), **kw)  # warm-up: kernels, allocator
            _sync(dev)
            start = time.time()
            train.fit(model, (images, labels), **kw)
            _sync(dev)
            ips = n / (time.time() - start)
            row = {"images_per_s": round(ips, 1),
                   "table8_seconds": {"w/o AS": round(RAFDB_TRAIN / ips, 1),
                                      "w/ VAS": round((RAFDB_TRAIN + PAPER_VAS) / ips, 1),
                                      # each batch of 64 carries 7 DAS on top: 71 images per step
                                      "w/ DAS": round(RAFDB_TRAIN * 71 / 64 / ips, 1)}}
            results[f"speed fit {name} {'amp' if amp else 'fp32'}"] = row
            print(f"fit {name} amp={amp}: {ips:.0f} images/s -> Table 8 on one GPU: {row['table8_seconds']} "
                  f"(paper, 4 GPUs: {PAPER_SECONDS})", flush=True)

        model = models.build(name, seed=0).to(dev).eval()
        start = time.time()
        model_fingerprint(model)  # part of select_auxiliary's fixed cost per call (the manifest's identity)
        fingerprint_s = time.time() - start
        pool = torch.utils.data.TensorDataset(images, torch.zeros(n, dtype=torch.long))
        centroids = torch.nn.functional.normalize(torch.randn(7, model.feature_dim, generator=g), dim=1).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            select_auxiliary(model, None, torch.utils.data.Subset(pool, range(min(512, n))), 0.0, centroids=centroids,
                             manifest_dir=Path(tmp) / "warm", device=dev, progress=False)
            _sync(dev)
            start = time.time()
            select_auxiliary(model, None, pool, 0.0, centroids=centroids, manifest_dir=Path(tmp) / "m",
                             device=dev, progress=False)
            _sync(dev)
            sel = n / (time.time() - start)
        loader = torch.utils.data.DataLoader(pool, batch_size=256)
        start = time.time()
        with torch.no_grad():
            for x, _ in loader:
                model(x.to(dev, non_blocking=True))
        _sync(dev)
        bare = n / (time.time() - start)
        results[f"speed selection {name}"] = {"images_per_s": round(sel, 1),
                                              "bare_forward_images_per_s": round(bare, 1),
                                              "seconds_for_5.8M": round(5.8e6 / sel),
                                              "model_fingerprint_s": round(fingerprint_s, 2), "images": n}
        print(f"selection {name}: {sel:.0f} images/s (bare forward {bare:.0f}); "
              f"5.8 M images: {5.8e6 / sel / 60:.0f} min; hashing the weights: {fingerprint_s:.2f} s", flush=True)

        model = models.build(name, seed=0)
        cfg = DistillConfig(images_per_class=1, iterations=args.distill_iterations + 1, inits=4, inner_steps=1,
                            real_batch=64)
        stamps: list = []

        def stamp(done: int, loss: float, stamps=stamps) -> None:
            _sync(dev)
            stamps.append(time.time())

        distill(model, images[:2048], labels[:2048], cfg, device=dev, show_progress=False, callback=stamp)
        per_iter = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        results[f"speed distillation {name}"] = {"seconds_per_outer_iteration": round(per_iter, 3),
                                                 "inits": 4, "real_batch": 64}
        print(f"Algorithm 1 {name}: {per_iter:.3f} s per outer iteration (K=4, M=64)", flush=True)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".", help="folder for paper_path_gpu.json")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each learner on the path")
    ap.add_argument("--scale", type=int, default=2, help="the layouts' default sizes times this")
    ap.add_argument("--speed-images", type=int, default=4096, help="random 224 px images for the speed part")
    ap.add_argument("--distill-iterations", type=int, default=10, help="timed outer iterations of Algorithm 1")
    ap.add_argument("--skip-path", action="store_true")
    ap.add_argument("--device", default="cuda", help="'cpu' (with a small --image-size) only to try the script")
    ap.add_argument("--image-size", type=int, default=224)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("paper_path_gpu.py needs a CUDA GPU (torch sees none); --device cpu only tries it")
    torch.backends.cudnn.benchmark = True
    results: dict = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor(),
                     "torch": torch.__version__,
                     "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    print(results, flush=True)
    if not args.skip_path:
        run_path(args, results)
    timed(results, "speed part", run_speed, args, results)
    if args.device == "cuda":
        results["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    out = Path(args.out) / "paper_path_gpu.json"
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    raise SystemExit(f"failed: {failed}" if failed else 0)


if __name__ == "__main__":
    main()
