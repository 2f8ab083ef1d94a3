"""Provenance of a notebook run: what ran, with which parameters, where and when.

The runner stores the record in the executed notebook's metadata (``metadata.omnifer``)
and in a JSON file beside it; the book's Reproducibility page is built from those files.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

PACKAGES = ("omnifer", "torch", "torchvision", "numpy", "pandas", "matplotlib", "papermill",
            "facenet-pytorch", "jupyter-book")


def git_state(repo: Path) -> Dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the repository at ``repo``, and when it
    is dirty ``changed``: the paths that differ from the commit (so a reader knows which code did not
    come from it)."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                 timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    out: Dict[str, Any] = {"commit": commit.strip() if commit else None,
                           "dirty": bool(status.strip()) if status is not None else None}
    if out["dirty"]:
        out["changed"] = sorted(line[3:].strip() for line in status.splitlines() if line.strip())
    return out


def package_versions() -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: Any) -> str:
    try:
        from omnifer_lib.device import describe_device

        return describe_device(device)
    except Exception as exc:  # an invalid device is reported by the notebook itself
        return f"unavailable ({exc})"


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> Dict[str, str]:
    """The fields of Linux's /proc/cpuinfo, each as the first processor gives it (keys in lower case); empty
    elsewhere."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The processor's model name (e.g. 'Intel(R) Xeon(R) Processor @ 2.50GHz'), as Linux names it in
    /proc/cpuinfo; elsewhere what :func:`platform.processor` says, or the machine type."""
    name = _cpuinfo().get("model name")
    return " ".join(name.split()) if name else platform.processor() or platform.machine() or "unknown"


def cpu_id() -> Optional[str]:
    """The processor's vendor, family, model and widest vector unit as /proc/cpuinfo gives them (e.g.
    'AuthenticAMD family 25 model 1, AVX2'), or None elsewhere. A virtual machine's model name can be as vague as
    'AMD EPYC' for chips whose vector units differ, and those order a convolution's sums differently: the same
    learner trained with the same code, data, seed and threads on two of them ends at other numbers."""
    fields = _cpuinfo()
    if "cpu family" not in fields:
        return None
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "AVX" if "avx" in flags else None
    name = f"{fields.get('vendor_id', 'unknown vendor')} family {fields['cpu family']} model {fields.get('model', '?')}"
    return f"{name}, {vector}" if vector else name


def cpu_text(m: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The processor of a machine record (:func:`machine`, or an archive's): its model name, with the family and
    model of :func:`cpu_id` where recorded ('AMD EPYC (AuthenticAMD family 25 model 1, AVX2)'); None if none."""
    if not m or not m.get("cpu"):
        return None
    return f"{m['cpu']} ({m['cpu_id']})" if m.get("cpu_id") else m["cpu"]


def machine() -> Dict[str, Any]:
    """What a number computed here depends on beyond code, parameters and seeds: the processor, the
    torch threads (they change the order of floating-point sums, hence training's path), the
    versions of torch and numpy, the GPU with its CUDA and cuDNN versions when there is one, and
    the world size and backend when this process is one rank of several (``torchrun``)."""
    import numpy
    import torch

    from omnifer_lib.distributed import is_running

    out = {"cpu": cpu_model(), "cpu_id": cpu_id(), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "numpy": numpy.__version__}
    if torch.cuda.is_available():  # a GPU's kernels, like a CPU's thread count, change the sums' order
        out.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    if is_running() and torch.distributed.get_world_size() > 1:  # how the work was dealt changes the sums too
        out.update(world_size=torch.distributed.get_world_size(), backend=str(torch.distributed.get_backend()))
    return out


def machine_text(m: Optional[Mapping[str, Any]]) -> str:
    """``machine()`` in one line: 'AMD EPYC (AuthenticAMD family 25 model 1, AVX2) · 2 thread(s) · torch 2.14.1 ·
    numpy 2.1.0'."""
    if not m:
        return "not recorded"
    parts = (m.get("gpu"), f"CUDA {m['cuda']}" if m.get("cuda") else None, cpu_text(m),
             f"{m.get('threads')} thread(s)" if m.get("threads") else None,
             f"torch {m['torch']}" if m.get("torch") else None, f"numpy {m['numpy']}" if m.get("numpy") else None,
             f"{m['world_size']} processes ({m.get('backend')})" if m.get("world_size") else None)
    return " · ".join(str(x) for x in parts if x)


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def tree_hash(folder: Path, patterns=("*.py", "*.yaml")) -> str:
    """Hash of the library sources, so a notebook is rerun when the code it calls changed."""
    h = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(folder.rglob(pattern)):
            if "__pycache__" in path.parts:
                continue
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _folder_digest(folder: str) -> Dict[str, Any]:
    h = hashlib.sha256()
    n = size = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            h.update(f"{rel}\0{st.st_size}\n".encode("utf-8"))
            n, size = n + 1, size + st.st_size
    return {"files": n, "bytes": size, "sha256": h.hexdigest()[:16]}


def dataset_fingerprint(root: Any) -> Dict[str, Any]:
    """``{"root", "files", "bytes", "sha256"}``: a digest of a dataset folder's file list (every
    relative path and size; no file is read), so that runs on two copies of a dataset can be told
    apart. A root that is not a folder gives ``{"root", "missing": True}``."""
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        return {"root": str(root), "missing": True}
    return {"root": str(path), **_folder_digest(str(path.resolve()))}


def portable_path(value: Any) -> Any:
    """A path as a record committed to the repository may hold it: a relative path as the user gave
    it, an absolute one as its last component only (a record never holds where the maker's files
    lie); anything that is not a text is returned as it is."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    return path.name if path.is_absolute() else value


def portable_parameters(parameters: Mapping[str, Any]) -> Dict[str, Any]:
    """``parameters`` with every path parameter (``*_root``, ``*_weights``) through :func:`portable_path`."""
    return {k: portable_path(v) if k.endswith(("_root", "_weights")) else v for k, v in parameters.items()}


def dataset_fingerprints(parameters: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """:func:`dataset_fingerprint` of every ``*_root`` parameter that is set, when the run reads
    real data (``data_source`` is ``real``)."""
    if parameters.get("data_source") != "real":
        return {}
    return {k[:-5]: dataset_fingerprint(v) for k, v in parameters.items() if k.endswith("_root") and v}


def record(*, notebook: str, profile: str, parameters: Mapping[str, Any], overrides: Mapping[str, Any],
           repo: Path, started: str, ended: str, seconds: float, status: str,
           inputs_hash: str, git: Optional[Mapping[str, Any]] = None,
           artifacts: Sequence[Mapping[str, Any]] = (),
           datasets: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The provenance record of one notebook run (JSON-able). ``git``: the repository state at
    the start of the run (looked up when not given); ``artifacts``: the cached stage results the
    notebook read (stage, key, computed in this run or reused, the commit that made them);
    ``datasets``: :func:`dataset_fingerprints` of the parameters (computed when not given)."""
    seeds = {k: v for k, v in parameters.items() if "seed" in k}
    return {
        "notebook": notebook,
        "status": status,
        "profile": profile,
        "parameters": dict(parameters),
        "overrides": dict(overrides),
        "seeds": seeds,
        "git": dict(git) if git is not None else git_state(repo),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_description(parameters.get("device", "auto")),
        "machine": machine(),
        "started": started,
        "ended": ended,
        "seconds": round(seconds, 2),
        "inputs_hash": inputs_hash,
        "artifacts": [dict(a) for a in artifacts],
        "datasets": dict(datasets) if datasets is not None else dataset_fingerprints(parameters),
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
    }
