"""Compare two runs of the book chapter by chapter: did a change move any number?

Usage: ``python tools/compare_runs.py BEFORE AFTER`` with two folders of executed chapters
(``book/generated/`` copied after each run, e.g. ``omnifer reproduce --jobs 2`` on the code before and
after a refactor, each on an empty cache and with the same thread count: the thread count changes the
floating-point order of sums, and with it the numbers). For each chapter of BEFORE it prints ``SAME``, or
every glued value, table, text output and figure that differs: glue values by name, the others matched
as multisets, so a chapter whose cells were regrouped still compares equal. Pandas' random table ids
and file paths are ignored. Exit status: 0 when every chapter is the same, 1 otherwise.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple


def outputs(path: Path) -> Tuple[Dict[str, str], Counter, Counter]:
    """A chapter's glued values ``{name: value}``, its text and table outputs and its image hashes."""
    glue: Dict[str, str] = {}
    texts: Counter = Counter()
    images: Counter = Counter()
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data, meta = out.get("data", {}), out.get("metadata", {})
            if "scrapbook" in meta:
                glue[meta["scrapbook"]["name"]] = json.dumps(data, sort_keys=True)
            elif out.get("output_type") == "stream":
                texts["text: " + re.sub(r"/\S+", "<path>", "".join(out["text"]))] += 1
            elif "text/html" in data:
                texts["table: " + re.sub(r"T_[0-9a-f_]+", "T_", "".join(data["text/html"]))] += 1
            elif "text/plain" in data and "image/png" not in data:
                texts["text: " + "".join(data["text/plain"])] += 1
            if "image/png" in data:
                images[hashlib.sha1("".join(data["image/png"]).encode()).hexdigest()] += 1
    return glue, texts, images


def differences(before: Path, after: Path) -> List[str]:
    """What differs between two executed copies of one chapter (empty: the same)."""
    (g1, t1, i1), (g2, t2, i2) = outputs(before), outputs(after)
    found = [f"glued {k}: {g1.get(k)} -> {g2.get(k)}" for k in sorted(set(g1) | set(g2)) if g1.get(k) != g2.get(k)]
    found += [f"only before: {k[:200]}" for k in t1 - t2] + [f"only after: {k[:200]}" for k in t2 - t1]
    if i1 != i2:
        found.append(f"figures: {sum(i1.values())} before, {sum(i2.values())} after, "
                     f"{sum((i1 & i2).values())} identical")
    return found


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    before, after = (Path(a) for a in argv)
    status = 0
    for chapter in sorted(before.glob("[0-9][0-9]_*.ipynb")):
        other = after / chapter.name
        found = differences(chapter, other) if other.is_file() else [f"{other} is missing"]
        print(f"{chapter.stem}: " + ("SAME" if not found else f"{len(found)} difference(s)"))
        for line in found:
            print("    " + line.replace("\n", " "))
        status = max(status, 1 if found else 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
