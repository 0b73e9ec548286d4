"""The software and hardware a record was produced on, so two numbers can be said to be comparable.

Issue 14 found a fresh install reproducing the committed CoLLM record only to two digits because newer
libraries changed the tiny backbone's initial weights; a record that names its library versions lets
``leaderboard`` and ``check`` say when the records they compare come from different environments.
Collected once per process (versions do not change under a running interpreter); nothing here imports torch
or the other libraries unless they are installed, and a missing one is recorded as ``None``.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

# distribution names whose versions decide numbers (the list)
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "recbole",
    "numpy",
    "pandas",
    "scikit-learn",
    "implicit",
    "sentence-transformers",
)
# keys that make two environments different for the purpose of comparing numbers (not the host name)
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # benchbed/: the code a record's numbers come from
COMPARED = ("python", *PACKAGES, "cuda", "cudnn", "gpu")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    env.update({name: _version(name) for name in PACKAGES})
    env["cuda"] = env["cudnn"] = env["gpu"] = None
    if env["torch"] is not None:
        import torch

        env["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            env["cudnn"] = torch.backends.cudnn.version()
            env["gpu"] = torch.cuda.get_device_name(0)
    return env


def git_output(*args: str) -> str | None:
    """One git command in the package's own checkout; None where benchbed is not a git checkout (a wheel) or
    git is missing."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


@functools.lru_cache(maxsize=1)
def code_identity() -> dict[str, Any]:
    """The commit of benchbed that produced a record, and whether tracked files differed from it (``dirty``).

    Records are made by code as much as by libraries: two records of one board from different commits may
    differ because the code changed, so ``leaderboard`` says when a board mixes them (:func:`code_note`).
    ``dirty``: a file of the package (``benchbed/``, all of it) differs from the commit, or a Python file in
    it is not tracked yet (a new module is code too); records and caches written elsewhere in the checkout are
    not code. (Until issue 22's review it looked at ``benchbed/results/`` only, so edits elsewhere in the
    package went unnoticed.)"""
    sha = git_output("rev-parse", "HEAD")
    if sha is None:
        return {"git_sha": None, "dirty": None}
    status = git_output("status", "--porcelain", "--untracked-files=all", "--", str(PACKAGE_DIR))
    if status is None:
        return {"git_sha": sha.strip(), "dirty": None}
    changed = [
        line
        for line in status.splitlines()
        if line.strip() and (not line.startswith("??") or line.endswith(".py"))
    ]
    return {"git_sha": sha.strip(), "dirty": bool(changed)}


def collect() -> dict[str, Any]:
    """Library versions, CUDA/cuDNN and GPU name, the code's commit, and the thread counts in force now."""
    env = dict(_static())
    env["code"] = dict(code_identity())
    threads: dict[str, Any] = {"cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if env["torch"] is not None:
        import torch

        threads["torch"] = torch.get_num_threads()
    env["threads"] = threads
    return env


def fingerprint(env: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What two environments must share to call their numbers comparable (None: not recorded)."""
    if not env:
        return None
    return tuple(env.get(key) for key in COMPARED)


def difference_note(environments: Iterable[dict[str, Any] | None]) -> str | None:
    """One line when the given records' environments differ (or some did not record one), else None."""
    envs = list(environments)
    prints = {fingerprint(e) for e in envs}
    if len(prints) <= 1:
        return None
    known = [e for e in envs if e]
    unknown = len(envs) - len(known)
    differing = [k for k in COMPARED if len({repr(e.get(k)) for e in known}) > 1]
    parts = []
    if differing:
        shown = ", ".join(f"{k} {sorted({str(e.get(k)) for e in known})}" for k in differing[:4])
        parts.append(f"they differ in {shown}" + (" ..." if len(differing) > 4 else ""))
    if unknown:
        parts.append(f"{unknown} record(s) predate environment recording")
    return "records compared here come from different environments: " + "; ".join(parts)


def code_note(environments: Iterable[dict[str, Any] | None]) -> str | None:
    """One line when records of one board come from different commits of benchbed, or from a checkout with
    uncommitted changes; records that predate code recording are counted only beside ones that have it."""
    codes = [(e or {}).get("code") or {} for e in environments]
    shas = sorted({str(c["git_sha"])[:10] for c in codes if c.get("git_sha")})
    dirty = sum(1 for c in codes if c.get("dirty"))
    unknown = sum(1 for c in codes if not c.get("git_sha"))
    if len(shas) <= 1 and not dirty:
        return None
    parts = []
    if len(shas) > 1:
        parts.append(f"they come from different code: {len(shas)} commits ({', '.join(shas[:4])}")
        parts[-1] += " ...)" if len(shas) > 4 else ")"
    if dirty:
        parts.append(
            f"{dirty} record(s) come from a checkout with uncommitted changes (no commit reproduces them)"
        )
    if unknown:
        parts.append(f"{unknown} record(s) predate code recording")
    return "records compared here: " + "; ".join(parts)


def board_notes(records: Iterable[Any]) -> list[str]:
    """One note per leaderboard group (dataset, task, protocol, split and task params) whose successful
    records come from different environments; ``records`` are :class:`RunRecord` objects."""
    from benchbed.config import stable_hash

    groups: dict[tuple[str, ...], list[Any]] = {}
    for rec in records:
        if rec.status == "ok":
            key: tuple[str, ...] = (rec.dataset, rec.task, rec.split_protocol or "?")
            key += (stable_hash(rec.split_params), stable_hash(rec.task_params))
            groups.setdefault(key, []).append(rec)
    notes = []
    for key, recs in sorted(groups.items()):
        for note in (difference_note(r.environment for r in recs), code_note(r.environment for r in recs)):
            if note:
                notes.append(f"{' · '.join(key[:3])}: {note}")
    return notes
