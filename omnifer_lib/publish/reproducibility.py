"""The book's Reproducibility page, built from the provenance records of the notebook runs."""
from __future__ import annotations

import html
from collections import Counter
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omnifer_lib.engine.provenance import machine_text
from omnifer_lib.files import atomic_write_bytes

PAGE = "reproducibility.md"


def load_records(generated: Path, stems: Sequence[str]) -> List[Optional[Dict[str, Any]]]:
    out: List[Optional[Dict[str, Any]]] = []
    for stem in stems:
        path = generated / f"{stem}.provenance.json"
        out.append(json.loads(path.read_text()) if path.is_file() else None)
    return out


def _fmt_params(params: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "–"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


REUSED_EARLIER = "reused from"


def _origin(artifact: Dict[str, Any], commit: Optional[str]) -> str:
    """Where one cached result a chapter read came from, relative to the run's commit."""
    if artifact.get("computed"):
        return "computed in this run"
    made = artifact.get("created_by") or {}
    if not made.get("commit"):
        return f"{REUSED_EARLIER} a run outside a git checkout"
    if made.get("dirty"):
        return f"{REUSED_EARLIER} commit {made['commit'][:10]} with uncommitted changes"
    if made["commit"] == commit:
        return "reused, computed earlier by this commit"
    return f"{REUSED_EARLIER} commit {made['commit'][:10]}"


def artifacts_summary(rec: Dict[str, Any]) -> str:
    """One phrase: whether every cached result a chapter read was computed by the run's commit."""
    arts = rec.get("artifacts") or []
    if not arts:
        return "none read"
    commit = (rec.get("git") or {}).get("commit")
    origins = [_origin(a, commit) for a in arts]
    earlier = [o[len(REUSED_EARLIER) + 1:] for o in origins if o.startswith(REUSED_EARLIER)]
    fresh = sum(o == "computed in this run" for o in origins)
    if not earlier:
        return f"all {len(arts)} computed by this commit ({fresh} in this run)" + _world_sizes(arts)
    return (f"{len(earlier)} of {len(arts)} reused from earlier code ({'; '.join(sorted(set(earlier)))})"
            + _world_sizes(arts))


def _world_sizes(arts: Sequence[Dict[str, Any]]) -> str:
    """'; 3 computed by 4 processes (nccl)' for results computed under torchrun, else ''."""
    machines = [(a.get("created_by") or {}).get("machine") or {} for a in arts]
    counts = Counter(f"{m['world_size']} processes ({m.get('backend')})" for m in machines if m.get("world_size"))
    return "".join(f"; {n} computed by {what}" for what, n in sorted(counts.items()))


def _device(rec: Dict[str, Any]) -> str:
    """The device and, on the CPU, the processor: the verdicts and the seconds depend on both."""
    cpu = (rec.get("machine") or {}).get("cpu")
    device = str(rec.get("device"))
    return f"{device} on {cpu}" if cpu and device.startswith("cpu") else device


def render_page(stems: Sequence[str], records: Sequence[Optional[Dict[str, Any]]]) -> str:
    lines = [
        "# Reproducibility",
        "",
        "Every chapter of this book is a notebook executed by papermill. This table is built "
        "from the record each run left in its notebook's metadata: the git commit (and whether "
        "the working tree had uncommitted changes), the profile and the parameters that differ "
        "from it, the seeds, the device (and processor), and when it ran. The full parameter lists "
        "and package versions follow below the table.",
        "",
        "To rerun a chapter: `omnifer run notebooks/<name>.ipynb [--profile P] [-p NAME VALUE ...]`; "
        "to rerun everything: `make book`.",
        "",
        "The column *cached results* says where the trained learners, selections and distilled sets "
        "that a chapter read came from. Each is stored under a key that holds its parameters and a "
        "fingerprint of the `omnifer_lib` code its stage runs, so a reused result was made by stage "
        "code identical to that of the chapter's commit; the commit shown for it is the one that "
        "first computed it. Package versions (torch, numpy, ...) are not part of the key: they are "
        "listed for each run below.",
        "",
        "| notebook | profile | overrides | seeds | git commit | cached results | device | started | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, rec in zip(stems, records):
        if rec is None:
            lines.append(f"| {stem} | not run yet | | | | | | | |")
            continue
        git = rec.get("git", {})
        commit = (git.get("commit") or "unknown")[:10]
        if git.get("dirty"):
            commit += " (uncommitted changes)"
        lines.append("| " + " | ".join(_cell(x) for x in (
            stem, rec.get("profile"), _fmt_params(rec.get("overrides", {})), _fmt_params(rec.get("seeds", {})),
            commit, artifacts_summary(rec), _device(rec), rec.get("started"), rec.get("seconds"))) + " |")
    lines += ["", "## Details of each run", ""]
    for stem, rec in zip(stems, records):
        if rec is None:
            continue
        pkgs = ", ".join(f"{k} {v}" for k, v in rec.get("packages", {}).items() if v)
        lines += [
            f"### {stem}",
            "",
            f"- status: {rec.get('status')}; ran {rec.get('started')} → {rec.get('ended')} "
            f"({rec.get('seconds')} s) on {html.escape(str(rec.get('device')))}",
            f"- python {rec.get('python')} on {rec.get('platform')}; machine: {machine_text(rec.get('machine'))}",
            f"- packages: {pkgs}",
            f"- parameters: {_cell(_fmt_params(rec.get('parameters', {})))}",
        ]
        for name, fp in (rec.get("datasets") or {}).items():
            lines.append(f"- dataset {name}: " + ("missing" if fp.get("missing") else
                         f"{fp.get('files')} files, {fp.get('bytes')} bytes, file-list digest `{fp.get('sha256')}`")
                         + f" at `{fp.get('root')}`")
        commit = (rec.get("git") or {}).get("commit")
        for art in rec.get("artifacts") or []:
            created = f" (created {art['created']})" if art.get("created") else ""
            lines.append(f"- cached {art.get('stage')} `{art.get('key')}`: {_origin(art, commit)}{created}")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_reproducibility_page(generated: Path, stems: Sequence[str]) -> Path:
    page = generated / PAGE
    atomic_write_bytes(page, render_page(stems, load_records(generated, stems)).encode())
    return page
