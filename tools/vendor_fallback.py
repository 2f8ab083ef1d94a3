"""Write a stand-in for the vendored MathJax that loads MathJax 3 from its CDN.

Used by ``make`` only when npm cannot fetch ``mathjax@3``: the book still builds and shows
typeset math when online; offline it shows the TeX source."""
from __future__ import annotations

import sys
from pathlib import Path

CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
SHIM = f"""// omnifer: npm was unavailable when the book was built; load MathJax from its CDN.
(function () {{
  var s = document.createElement('script');
  s.src = '{CDN}';
  s.async = true;
  document.head.appendChild(s);
}})();
"""


def main(target: str) -> None:
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SHIM)


if __name__ == "__main__":
    main(sys.argv[1])
