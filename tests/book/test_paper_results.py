"""Each number in paper_results.yaml appears in the paper's text, in its own table."""
import os
import re
from pathlib import Path

import pytest

from omnifer_lib.publish import paper

# The paper's text sits beside the project (../shared/paper); OMNIFER_PAPER points elsewhere.
PAPER = Path(os.environ.get("OMNIFER_PAPER")
             or Path(__file__).resolve().parents[3] / "shared" / "paper" / "omni-supervised-fer.txt")


@pytest.fixture(scope="module")
def text():
    if not PAPER.is_file():
        pytest.skip(f"the paper's text is not on this machine (looked for {PAPER}; set OMNIFER_PAPER to its path)")
    return PAPER.read_text(encoding="utf-8")


def _table_block(text: str, number: int) -> str:
    start = text.index(f"TABLE {number}\n")
    nxt = [m.start() for m in re.finditer(r"\nTABLE \d+\n", text) if m.start() > start]
    return text[start: nxt[0] if nxt else len(text)][:1500]


@pytest.mark.parametrize("number", range(1, 9))
def test_every_value_is_in_its_table(text, number):
    block = _table_block(text, number)
    for row in paper.rows(number):
        v = row["value"]
        shown = f"{v:.2f}" if number != 8 else str(int(v))
        candidates = {shown, f"{v:g}", f"{v}"}
        assert any(c in block for c in candidates), f"Table {number}: {row['method']} = {v} not in the paper"
        method_words = row["method"].split(" [")[0].split()[0]
        assert method_words in block, f"Table {number}: method {row['method']!r} not in the paper"


def test_counts_match_text(text):
    c = paper.counts()
    for key, val in c.items():
        assert f"{val:,}".replace(",", ", ") in text or f"{val:,}" in text, key


def test_lookup_helpers():
    assert paper.value(1, "DAS + VGG-F") == 86.55
    assert paper.reproduced_value(1, "vgg", "anchor+DAS") == 86.55
    assert paper.reproduced_value(2, "resnet", "anchor") == 70.89
    assert paper.reproduced_value(8, None, "anchor+VAS") == 1625
    with pytest.raises(KeyError):
        paper.table(9)
