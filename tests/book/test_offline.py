"""A chapter runs with no network at all: a fresh network namespace with only loopback up
(the Jupyter kernel talks to papermill over loopback). Nothing in a notebook run may fetch
weights, fonts, data or packages from the internet."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List

import nbformat
import pytest

pytestmark = pytest.mark.slow

# Inside the namespace: bring loopback up, then run the given command in place of the shell.
_LO_UP = 'ip link set lo up && exec "$@"'
_CONNECT = ("import socket, sys\n"
            "try:\n"
            "    socket.create_connection(('1.1.1.1', 53), timeout=2).close()\n"
            "except OSError as exc:\n"
            "    print('no network:', exc)\n"
            "    sys.exit(3)\n"
            "print('connected to 1.1.1.1:53')\n")


def _namespace_prefix() -> List[str]:
    """The ``unshare`` command line that gives a new network namespace here, or skip the test
    saying why there is none: ``unshare -n`` when this user may create one (root, or
    CAP_SYS_ADMIN), else ``unshare -rn`` (inside a new user namespace) where the kernel allows
    unprivileged user namespaces."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (util-linux / iproute2): cannot make a network "
                    "namespace to run offline")
    tried = []
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        probe = subprocess.run([*prefix, "sh", "-c", _LO_UP, "sh", "true"], capture_output=True, text=True,
                               timeout=60)
        if probe.returncode == 0:
            return prefix
        tried.append(f"`{' '.join(prefix)} sh -c 'ip link set lo up'` exited {probe.returncode}: "
                     f"{(probe.stderr or probe.stdout).strip()[:200]}")
    pytest.skip("no privilege to create a network namespace here (not root, no unprivileged user "
                "namespaces): " + "; ".join(tried))


def _offline(prefix: List[str], *cmd: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd`` in a fresh network namespace with only loopback up."""
    return subprocess.run([*prefix, "sh", "-c", _LO_UP, "sh", *cmd], capture_output=True, text=True, **kwargs)


def test_a_chapter_runs_without_network(book_copy):
    prefix = _namespace_prefix()

    # The namespace really has no route out (else the test below would prove nothing).
    probe = _offline(prefix, sys.executable, "-c", _CONNECT, timeout=60)
    assert probe.returncode == 3, f"the namespace reaches the internet:\n{probe.stdout}{probe.stderr}"
    assert "no network" in probe.stdout

    env = dict(os.environ, OMNIFER_PROGRESS="0")  # OMNIFER_CACHE: the book copy's own (fixture)
    proc = _offline(prefix, sys.executable, "-m", "omnifer_lib", "run", "00", "--profile", "smoke",
                    cwd=book_copy, env=env, timeout=600)
    assert proc.returncode == 0, f"offline run failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"

    out = book_copy / "book" / "generated" / "00_pipeline.ipynb"
    assert out.is_file(), sorted(p.name for p in (book_copy / "book" / "generated").glob("*"))
    doc = nbformat.read(str(out), as_version=4)
    assert doc.metadata["omnifer"]["status"] == "ok"
    assert doc.metadata["omnifer"]["profile"] == "smoke"
    errors = [o for c in doc.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert any("image/png" in o.get("data", {}) for c in doc.cells for o in c.get("outputs", [])), \
        "the pipeline figure (Fig. 1) is missing from the executed notebook"
    assert not list((book_copy / "book" / "generated" / ".running").glob("*.ipynb"))
