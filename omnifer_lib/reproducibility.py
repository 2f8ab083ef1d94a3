"""The book's Reproducibility page, built from the provenance records of the notebook runs."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .store import atomic_write_bytes

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


def render_page(stems: Sequence[str], records: Sequence[Optional[Dict[str, Any]]]) -> str:
    lines = [
        "# Reproducibility",
        "",
        "Every chapter of this book is a notebook executed by papermill. This table is built "
        "from the record each run left in its notebook's metadata: the git commit (and whether "
        "the working tree had uncommitted changes), the profile and the parameters that differ "
        "from it, the seeds, the device, and when it ran. The full parameter lists and package "
        "versions follow below the table.",
        "",
        "To rerun a chapter: `omnifer run notebooks/<name>.ipynb [--profile P] [-p NAME VALUE ...]`; "
        "to rerun everything: `make book`.",
        "",
        "| notebook | profile | overrides | seeds | git commit | device | started | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stem, rec in zip(stems, records):
        if rec is None:
            lines.append(f"| {stem} | not run yet | | | | | | |")
            continue
        git = rec.get("git", {})
        commit = (git.get("commit") or "unknown")[:10]
        if git.get("dirty"):
            commit += " (uncommitted changes)"
        lines.append("| " + " | ".join(_cell(x) for x in (
            stem, rec.get("profile"), _fmt_params(rec.get("overrides", {})), _fmt_params(rec.get("seeds", {})),
            commit, rec.get("device"), rec.get("started"), rec.get("seconds"))) + " |")
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
            f"- python {rec.get('python')} on {rec.get('platform')}",
            f"- packages: {pkgs}",
            f"- parameters: {_cell(_fmt_params(rec.get('parameters', {})))}",
            "",
        ]
    return "\n".join(lines) + "\n"


def write_reproducibility_page(generated: Path, stems: Sequence[str]) -> Path:
    page = generated / PAGE
    atomic_write_bytes(page, render_page(stems, load_records(generated, stems)).encode())
    return page
