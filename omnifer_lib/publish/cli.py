"""The ``omnifer`` command line: run the book's notebooks, build the book, inspect the cache.

Every failure ends with a one-line message on stderr and a non-zero exit status:
2 for bad input (unknown profile, parameter, notebook, wrong type), 1 for a failed run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from omnifer_lib.publish import config
from omnifer_lib.engine.store import StoreBusyError


#: real_faces.PARTS, spelt here so that building the parser imports no pandas (a test checks they agree)
ARCHIVE_PARTS = ("core", "margins", "rules", "controls", "distillation", "search", "curve", "mixup")

def _add_profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=config.DEFAULT_PROFILE,
                   help=f"parameter profile (default: {config.DEFAULT_PROFILE}); see `omnifer profiles`")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override one parameter (YAML syntax for the value, e.g. -p delta 0.2 -p seeds '[0,1]')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnifer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("reproduce", help="run the notebooks in dependency order, then build the book")
    _add_profile_args(p)
    p.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these notebooks (e.g. 03 05)")
    p.add_argument("--force", action="store_true", help="rerun notebooks even if their inputs did not change")
    p.add_argument("--no-build", action="store_true", help="do not build the book afterwards")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="run N chapters side by side, each kernel with cpu_count/N threads (default 1; "
                        "the thread count changes floating-point sums, so numbers move like a new seed)")
    p.add_argument("--nproc-per-node", type=int, default=None, metavar="N",
                   help="first compute the heavy stages (Table 1's learners and what they need) in N processes "
                        "under torchrun, one per GPU (sets -p world_size N); the notebooks then read them")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines from the stages (which learner trains, epoch k/n, ...)")

    p = sub.add_parser("run", help="rerun one notebook (its output replaces the copy in book/generated/)")
    p.add_argument("notebook", help="e.g. notebooks/03_auxiliary_selection.ipynb, 03_auxiliary_selection or 03")
    _add_profile_args(p)
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines from the stages (which learner trains, epoch k/n, ...)")

    sub.add_parser("book", help="build the book from what is in book/generated/")
    sub.add_parser("profiles", help="list the profiles and every parameter with its value")

    p = sub.add_parser("export-das", help="write the distilled auxiliary samples (PNGs + das.pt) to a folder")
    p.add_argument("out_dir", help="folder to write (created; an existing das.pt in it is replaced)")
    p.add_argument("--backbone", default=None, help="learner family to distil for (default: the profile's first)")
    p.add_argument("--method", default="algorithm1",
                   help="algorithm1 (default), distribution_matching, random_real or mean_image")
    p.add_argument("--source", default="vas", choices=["vas", "anchor"],
                   help="distil the selected auxiliary samples (vas, default) or the anchor training set")
    _add_profile_args(p)

    p = sub.add_parser("archive-real-faces",
                       help="collect the real-faces study (training what is not cached) into the archive the "
                            "chapter 'On real faces' renders")
    p.add_argument("--out", default=None, help="archive file to write (default: the committed "
                                               "omnifer_lib/publish/archives/real_faces.json)")
    p.add_argument("--parts", nargs="+", default=None, choices=ARCHIVE_PARTS, metavar="PART",
                   help="parts of the study to run: core (baseline, VAS at the first δ of vas_deltas, DAS, the "
                        "equal-step anchor), margins (VAS and its equal-step anchor at the further δ of vas_deltas), "
                        "rules (the offline pseudo-labelling methods), controls (random real, mean image, oracles), "
                        "distillation (four distillers at 1 and 10 images per class), search "
                        "(every training recipe tried), curve (the learning curve), mixup (the anchor alone, VAS "
                        "and its equal-step anchor trained under mixup, the teacher without); default all")
    p.add_argument("--rule-conditions", nargs="+", default=None, metavar="NAME",
                   help="run only these conditions of part rules (names as in real_faces.RULE_CONDITIONS, "
                        "e.g. 'VAS margin rule, soft labels'); default all")
    p.add_argument("--search-recipes", nargs="+", default=None, metavar="NAME",
                   help="run only these recipes of part search (names as in real_faces.RECIPE_SEARCH, "
                        "e.g. '+ flip-averaged test'); default all")
    p.add_argument("--distill-sizes", nargs="+", type=int, default=None, metavar="N",
                   help="images per class of part distillation (default 1 10)")
    p.add_argument("--merge", action="store_true",
                   help="add what this run computes to the existing archive (--out, or the committed one) instead "
                        "of replacing it; rows both hold must agree (same code, machine kind and threads)")
    p.add_argument("--other-machine", action="store_true",
                   help="with --merge and --parts mixup alone: this run is on another machine than the archive's "
                        "(e.g. another CPU model, whose sums end the same learner elsewhere); part mixup's rows pair "
                        "within themselves, so they join, and where its teacher differs from the archive's baseline "
                        "the difference is recorded and shown instead of refused")
    _add_profile_args(p)

    p = sub.add_parser("write-layouts", help="write synthetic faces in the real datasets' published layouts, "
                                             "to try the real-data path without licensed data")
    p.add_argument("out_dir", help="folder to write <name>/ into (each must not exist yet)")
    p.add_argument("--image-size", type=int, default=48, help="side in pixels of the written images (default 48)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("cache", help="what the artifact store holds (and what is stale), or clear it")
    p.add_argument("action", choices=["ls", "clear"])
    p.add_argument("--stage", default=None, help="only this stage")
    p.add_argument("--stale", action="store_true",
                   help="with clear: remove only the artifacts made by code that has changed since")
    return parser


def _cmd_profiles() -> int:
    specs = config.parameter_specs()
    names = config.available_profiles()
    values = {n: config.load_profile(n) for n in names}
    width = max(len(k) for k in specs)
    print(f"profiles: {', '.join(names)} (default: {config.DEFAULT_PROFILE})\n")
    header = f"{'parameter':<{width}}  {'type':<12}" + "".join(f"  {n:<22}" for n in names)
    print(header)
    print("-" * len(header))
    for key, spec in specs.items():
        row = f"{key:<{width}}  {spec.type:<12}"
        for n in names:
            row += f"  {str(values[n][key]):<22}"
        print(row)
        if spec.doc:
            print(f"{'':<{width}}    {spec.doc}")
        if config.accepted(spec):
            print(f"{'':<{width}}    accepts: {config.accepted(spec)}")
    return 0


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _cmd_cache(action: str, stage: Optional[str], stale: bool) -> int:
    from omnifer_lib.engine.store import Store

    store = Store()
    if action == "clear":
        n = store.clear(stage, stale=stale)
        what = "stale artifact(s)" if stale else "artifact(s)"
        print(f"removed {n} {what} from {store.root}" + (f" (stage {stage})" if stage else ""))
        return 0
    if stale:
        raise ValueError("--stale goes with `omnifer cache clear`; `omnifer cache ls` always marks stale artifacts")
    every = list(store.entries())
    entries = [a for a in every if stage is None or a.stage == stage]
    print(f"artifact store: {store.root}")
    if not entries:
        print("(empty)")
        return 0
    reasons = store.stale_reasons(every)
    print(f"{'stage':<16} {'key':<17} {'size':>9}  {'created':<25} {'commit':<10}  status")
    total = n_stale = 0
    for art in entries:
        size = store.size_bytes(art)
        total += size
        commit = ((art.meta.get("created_by") or {}).get("commit") or "?")[:10]
        reason = reasons.get(art.key)
        n_stale += bool(reason)
        print(f"{art.stage:<16} {art.key:<17} {_human_size(size):>9}  {art.meta.get('created', '?'):<25} "
              f"{commit:<10}  {'STALE: ' + reason if reason else 'current'}")
    for work, why in store.unfinished():
        if stage is None or work.parent.name == stage:
            n_stale += bool(why)
            print(f"{work.parent.name:<16} {work.name:<17} {_human_size(_folder_size(work)):>9}  "
                  f"{'(unfinished)':<25} {'':<10}  {'STALE: ' + why if why else 'unfinished: a rerun resumes it'}")
    print(f"{len(entries)} artifact(s), {_human_size(total)}; {n_stale} stale"
          + (" (remove them with `omnifer cache clear --stale`)" if n_stale else ""))
    return 0


def _folder_size(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _cmd_export_das(args: argparse.Namespace, overrides) -> int:
    from omnifer_lib.engine import pipeline
    from omnifer_lib.distill import export_das

    params = config.load_profile(args.profile, overrides)
    pipeline.preflight(params)
    backbone = args.backbone or params["backbones"][0]
    if backbone not in params["backbones"] and backbone not in __import__("omnifer_lib.models").models.available():
        raise ValueError(f"unknown backbone {backbone!r}; this profile's backbones are {params['backbones']}")
    print(f"distilled auxiliary samples for {backbone} ({args.method}, from {args.source}); "
          "computing if not cached ...")
    art = pipeline.distilled(params, backbone, args.method, source=args.source)
    result = pipeline.load_distilled(art)
    path = export_das(result, args.out_dir)
    print(f"wrote {len(result.labels)} images and {path} (load with omnifer_lib.distill.load_das)")
    return 0


def _cmd_archive_real_faces(args: argparse.Namespace, overrides) -> int:
    from omnifer_lib.engine import pipeline
    from omnifer_lib.publish import real_faces
    from omnifer_lib.engine.store import Store

    partial = ((args.parts and set(args.parts) != set(ARCHIVE_PARTS)) or args.rule_conditions or args.distill_sizes
               or args.search_recipes)
    if partial and args.out is None and not args.merge:
        raise ValueError("--parts, --rule-conditions, --search-recipes or --distill-sizes make an archive of some of "
                         "the study only: "
                         "write it with --out FILE, or add it to an archive with --merge (the committed archive the "
                         "chapter renders is written by a run of every part)")
    if args.other_machine and not (args.merge and args.parts and set(args.parts) == {"mixup"}):
        raise ValueError("--other-machine goes with --merge --parts mixup only: part mixup's rows pair within "
                         "themselves, the other parts' rows pair with the archive's baseline and must be made on "
                         "its machine")
    base = None
    if args.merge:
        target = args.out or real_faces.ARCHIVE
        base = real_faces.read_archive(target)
        if base is None:
            raise ValueError(f"--merge adds to an existing archive, and {target} does not exist; run without "
                             "--merge to write it")
    params = config.load_profile(args.profile, overrides)
    pipeline.preflight(params)
    if not real_faces.applies(params):
        raise ValueError(f"profile {args.profile!r} does not give the real-faces study its data: it needs "
                         "data_source real, pool anchor_rest and the anchor's root (e.g. --profile fer2013 "
                         "-p fer2013_root /path/to/fer2013 -p test_split val)")
    with Store().run_lock("archiving the real-faces study"):
        archive = real_faces.collect(params, parts=args.parts or real_faces.PARTS,
                                     rule_conditions=args.rule_conditions, search_recipes=args.search_recipes,
                                     log=_print_now,
                                     distill_sizes=args.distill_sizes or real_faces.DISTILL_SIZES)
    if base is not None:  # read again: the archive may have grown during this run
        try:
            archive = real_faces.merge_archives(real_faces.read_archive(target) or base, archive,
                                                other_machine=args.other_machine)
        except ValueError as exc:  # hours of training are not lost: the run's own archive is kept beside
            stamp = time.strftime("%Y%m%d-%H%M%S")
            kept = real_faces.write_archive(archive, Path(target).with_name(f"{Path(target).stem}.unmerged-{stamp}"
                                                                            ".json"))
            raise ValueError(f"{exc}\nThis run's archive is kept, not merged, in {kept} (merge it later with "
                             "omnifer_lib.publish.real_faces.merge_archives)") from exc
    path = real_faces.write_archive(archive, args.out)
    print(f"wrote {path} ({len(archive['conditions'])} learners; no image, numbers only)")
    return 0


def _cmd_write_layouts(args: argparse.Namespace) -> int:
    from omnifer_lib.data.published_layouts import write_published_layouts

    if args.image_size < 16:
        raise ValueError(f"--image-size must be at least 16 pixels (the synthetic faces' smallest), "
                         f"got {args.image_size}")
    roots = write_published_layouts(args.out_dir, image_size=args.image_size, seed=args.seed)
    print("wrote synthetic faces (not real data) in the layouts of " + ", ".join(r[:-5] for r in roots))
    print("try the real-data path with:\n  omnifer reproduce --profile smoke -p data_source real \\")
    print(" \\\n".join(f"    -p {k} {v}" for k, v in roots.items()))
    return 0


def _run_distributed_stages(profile: str, parameters: List[List[str]], nproc: int) -> int:
    """``torchrun --standalone --nproc-per-node nproc -m omnifer_lib.publish.distributed_run ...`` on this node."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "omnifer_lib.publish.distributed_run", "--profile", profile]
    for name, value in parameters:
        cmd += ["-p", name, value]
    print(f"computing the heavy stages in {nproc} processes: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        print(f"omnifer: error: the distributed stages failed (torchrun exit status {done.returncode}; its output "
              "is above); rerun the same command to resume from their checkpoints", file=sys.stderr)
    return done.returncode


def _print_now(line: str) -> None:
    print(line, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from omnifer_lib.publish import runner

    try:
        if args.command == "profiles":
            return _cmd_profiles()
        if args.command == "cache":
            return _cmd_cache(args.action, args.stage, args.stale)
        if args.command == "book":
            runner.build_book()
            return 0
        if args.command == "write-layouts":
            return _cmd_write_layouts(args)
        overrides = config.parse_overrides(args.parameter)
        if args.command == "export-das":
            return _cmd_export_das(args, overrides)
        if args.command == "archive-real-faces":
            return _cmd_archive_real_faces(args, overrides)
        if args.command == "reproduce" and args.nproc_per_node is not None:
            args.parameter.append(["world_size", str(args.nproc_per_node)])
            overrides = config.parse_overrides(args.parameter)
        if args.command in ("reproduce", "run"):
            params = config.load_profile(args.profile, overrides)  # names, types, ranges: before torch is imported
        if args.command == "reproduce":
            from omnifer_lib.engine.pipeline import preflight

            if params["world_size"] > 1:
                preflight(params)  # bad data roots stop before torchrun
                if _run_distributed_stages(args.profile, args.parameter, params["world_size"]) != 0:
                    return 1

            runner.reproduce(profile=args.profile, overrides=overrides, only=args.only, force=args.force,
                             build=not args.no_build, preflight=preflight, quiet=args.quiet, log=_print_now,
                             jobs=args.jobs)
            return 0
        if args.command == "run":
            from omnifer_lib.engine.pipeline import preflight
            from omnifer_lib.engine.store import Store

            paths = runner.Paths(runner.repo_root())
            nb = runner.resolve_notebook(paths, args.notebook)
            preflight(config.load_profile(args.profile, overrides))  # bad input stops before the notebook
            with Store().run_lock(f"running {nb.name}"):
                print(f"running {nb.name} with profile {args.profile} ...", flush=True)
                res = runner.run_notebook(nb, profile=args.profile, overrides=overrides, paths=paths, force=True,
                                          progress_bar=args.quiet and sys.stderr.isatty(),
                                          log=None if args.quiet else _print_now)
            print(f"{nb.name}: done in {res.seconds:.1f} s -> {res.output}")
            print("rebuild the book with `omnifer book` to see it rendered")
            return 0
    except runner.NotebookFailed as exc:
        print(f"omnifer: error: {exc}", file=sys.stderr)
        return 1
    except StoreBusyError as exc:
        print(f"omnifer: error: {exc}", file=sys.stderr)
        return 1
    except (config.ProfileError, runner.RunnerError, FileNotFoundError, FileExistsError, ValueError) as exc:
        msg = str(exc).strip()
        print(f"omnifer: error: {msg}", file=sys.stderr)
        return 1 if isinstance(exc, runner.RunnerError) and "book build failed" in msg else 2
    except KeyboardInterrupt:
        print("omnifer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `omnifer profiles | head`: the reader has gone, nothing to report
        sys.stderr.close()
        return 0
    except Exception as exc:  # an unexpected failure still ends with one line (OMNIFER_DEBUG=1: traceback)
        if os.environ.get("OMNIFER_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"omnifer: error: {type(exc).__name__}: {first} (set OMNIFER_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
