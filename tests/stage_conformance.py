"""Stage-identity conformance (issue 22, item 2): a cached stage may be reused only under the settings that
trained it.

For one method on a micro setting, every declared parameter is changed in turn and the method is fitted again
while a spy stands in for :func:`benchbed.llm.stages._run_or_load` (the one place every stage of every LLM
method goes through). For each stage the spy sees, in order:

- its key equals the baseline fit's key for that stage: the stage is trained afresh (never loaded) and its
  tensors must be bit-identical to the baseline's, or the key left out something that changed them;
- its key differs: the parameter is named by the identity, which is all the rule asks. The stage is trained
  all the same (never loaded), so that a later stage that keeps its key is judged on the weights it would
  really start from.

A parameter the method declares evaluation-only (``evaluation_only`` on the class: it changes scoring, never a
trained tensor) must leave every key and every tensor as they were. A parameter that moves neither a key nor
a tensor in the micro setting is inert there and reported as such, not failed. A first re-fit with the same
parameters checks that a fit is bit-identical at all (same seed, same tensors), without which nothing
above could be told apart from noise.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbed.errors import ConfigError
from benchbed.llm import stages
from benchbed.methods import build_method, get_method_class, method_defaults
from benchbed.params import AUTO, Param, specs_for

Unchanged = object()  # a parameter for which no other value is tried
ALWAYS_SKIPPED = {
    "backbone": "keys every stage through the loaded model's id, revision and dtype (the kit's identity)",
    "semantic_encoder": "one sentence encoder ships offline (minilm); its revision keys the input tables",
}


def blob_digest(blob: Any) -> str:
    """SHA-256 over every tensor of a stage blob (its ``meta`` left out: timings differ run to run)."""
    h = hashlib.sha256()

    def walk(x: Any, path: str) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{path}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                if k != "meta":
                    walk(x[k], f"{path}.{k}")
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        else:
            h.update(f"{path}={x!r}".encode())

    walk(blob, "")
    return h.hexdigest()


@dataclass
class Seen:
    name: str
    key: str
    digest: str
    blob: dict[str, Any] = field(repr=False, default_factory=dict)
    meta: dict[str, Any] = field(repr=False, default_factory=dict)


class StageSpy:
    """Replaces ``stages._run_or_load`` for the duration of one fit; see the module docstring."""

    def __init__(self, baseline: list[Seen] | None) -> None:
        self.baseline = {s.name: s for s in baseline or []}
        self.seen: list[Seen] = []
        self.identities: dict[str, Any] = {}

    def __call__(self, st: stages.Stage, train_fn: Callable, load_fn: Callable) -> stages.StageOutcome:
        with tempfile.TemporaryDirectory() as ckpt:
            blob, meta = train_fn(Path(ckpt))
        self.seen.append(Seen(st.name, st.key, blob_digest(blob), blob, dict(meta)))
        return stages.StageOutcome(dict(meta), False, st.dir, blob)


class StopFit(Exception):
    """Raised by the spy at the first stage whose key differs from the baseline's: the parameter is keyed, and
    every later stage's identity names that key (checked on the baseline by :func:`chain_gaps`)."""


@contextmanager
def spying(spy: StageSpy):
    original, original_hash = stages._run_or_load, stages.stable_hash

    def hashing(identity: Any, length: int = 16) -> str:
        key = original_hash(identity, length=length)
        spy.identities[key] = identity
        return key

    stages._run_or_load = spy  # type: ignore[assignment]
    stages.stable_hash = hashing  # type: ignore[assignment]
    try:
        yield spy
    finally:
        stages._run_or_load = original  # type: ignore[assignment]
        stages.stable_hash = original_hash  # type: ignore[assignment]


def chain_gaps(baseline: list[Seen], identities: dict[str, Any]) -> list[str]:
    """Stages (after the first) whose identity names no earlier stage's key: a change upstream would leave
    them keyed as before. Every multi-stage method today builds each stage on the one before it."""
    gaps = []
    for i, s in enumerate(baseline[1:], start=1):
        text = json.dumps(identities.get(s.key), sort_keys=True, default=str)
        if not any(b.key in text for b in baseline[:i]):
            gaps.append(s.name)
    return gaps


def other_value(value: Any, spec: Param) -> Any:
    """One valid value other than ``value`` for a parameter, or ``Unchanged`` where none can be derived."""
    if spec.kind == "bool" and isinstance(value, bool):
        return not value
    if spec.choices is not None:
        others = [c for c in spec.choices if c != value]
        return others[0] if others else Unchanged
    if spec.kind == "int" and (value in (None, AUTO) or isinstance(value, int)):
        lo = int(spec.min) + (1 if spec.exclusive_min else 0) if spec.min is not None else 0
        if value in (None, AUTO):
            return max(lo, 2)
        hi = int(spec.max) - (1 if spec.exclusive_max else 0) if spec.max is not None else None
        return value + 1 if hi is None or value + 1 <= hi else (value - 1 if value - 1 >= lo else Unchanged)
    if spec.kind == "float" and (value in (None, AUTO) or isinstance(value, int | float)):
        if value in (None, AUTO):
            return 0.5 if spec.max is None or spec.max >= 0.5 else float(spec.max) / 2
        cand = [value * 2, value / 2] if value else [0.1, 0.01]
        for c in cand:
            if _in_bounds(c, spec):
                return c
    return Unchanged


def _in_bounds(x: float, spec: Param) -> bool:
    if spec.min is not None and (x < spec.min or (spec.exclusive_min and x == spec.min)):
        return False
    return not (spec.max is not None and (x > spec.max or (spec.exclusive_max and x == spec.max)))


@dataclass
class Case:
    """One method on one micro setting.

    ``together`` names parameters changed with a key (cf_model with the parameters of the other model).
    ``fit(method)`` fits it (the case owns its data and run context); ``overrides`` gives the other value of
    a parameter where :func:`other_value` cannot (a string, a mapping) or should not (a value that would make
    the micro fit slow); ``skip`` names parameters left out, each with the reason printed in the report."""

    method: str
    task: str
    params: dict[str, Any]
    fit: Callable[[Any], None]
    overrides: dict[str, Any] = field(default_factory=dict)
    skip: dict[str, str] = field(default_factory=dict)
    # parameters changed together with a key, where the key's other value needs them (cf_model: its params)
    together: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Finding:
    param: str
    value: Any
    outcome: str  # "keyed", "inert", "evaluation-only", "refused", "skipped", "VIOLATION"
    detail: str = ""


def fit_with(case: Case, params: dict[str, Any], baseline: list[Seen] | None) -> StageSpy:
    method = build_method(case.method, params, task=case.task)
    with spying(StageSpy(baseline)) as spy:
        try:
            case.fit(method)
        except StopFit:
            pass
    return spy


def judge(baseline: list[Seen], seen: list[Seen], evaluation_only: bool) -> tuple[str, str]:
    """(outcome, detail) of one variant fit against the baseline fit."""
    base = {s.name: s for s in baseline}
    moved = False
    for s in seen:
        b = base.get(s.name)
        if b is None:
            moved = True  # a stage the baseline does not run: trained under its own name
            continue
        if s.key != b.key:
            if evaluation_only:
                return "VIOLATION", f"declared evaluation-only but changes the key of stage {s.name}"
            moved = True
            continue
        if s.digest != b.digest:
            return "VIOLATION", f"changes the tensors of stage {s.name} but not its key"
    if {s.name for s in seen} != set(base):
        moved = True
    if evaluation_only:
        return "evaluation-only", "every key and tensor as in the baseline"
    return ("keyed", "") if moved else ("inert", "no key and no tensor moved in this setting")


def conformance(case: Case, only: Iterable[str] | None = None) -> list[Finding]:
    """Every finding for ``case``; the first is the determinism re-fit."""
    cls = get_method_class(case.method)
    defaults = method_defaults(case.method, case.task)
    specs = specs_for(defaults, cls.param_specs)
    eval_only = set(getattr(cls, "evaluation_only", ()))
    unknown = eval_only - set(defaults)
    if unknown:
        raise AssertionError(f"{case.method}: evaluation_only names no parameter: {sorted(unknown)}")
    base_params = dict(case.params)
    first = fit_with(case, base_params, None)
    baseline = first.seen
    if not baseline:
        raise AssertionError(f"{case.method}: the micro fit ran no stage")
    again = fit_with(case, base_params, baseline).seen
    findings = [Finding("(same parameters)", None, *judge(baseline, again, evaluation_only=False))]
    if findings[0].outcome != "inert":  # nothing may move when nothing changed
        findings[0].outcome = "VIOLATION"
        findings[0].detail = findings[0].detail or "a re-fit with the same parameters is not bit-identical"
        return findings
    for name in chain_gaps(baseline, first.identities):
        findings.append(
            Finding(f"(stage {name})", None, "VIOLATION", "its identity names no earlier stage's key")
        )
    names = sorted(defaults) if only is None else list(only)
    variants: dict[str, Any] = {}
    for key in names:
        skip = {**ALWAYS_SKIPPED, **case.skip}
        if key in skip:
            findings.append(Finding(key, None, "skipped", skip[key]))
            continue
        current = base_params.get(key, defaults[key])
        new = case.overrides.get(key, Unchanged)
        if new is Unchanged:
            new = other_value(current, specs[key])
        if new is Unchanged:
            findings.append(Finding(key, None, "skipped", "no other value derived; give one in overrides"))
            continue
        if key in eval_only:
            variants[key] = new
            continue
        try:
            seen = fit_with(case, {**base_params, **case.together.get(key, {}), key: new}, baseline).seen
        except ConfigError as exc:
            findings.append(Finding(key, new, "refused", str(exc).splitlines()[0][:120]))
            continue
        findings.append(Finding(key, new, *judge(baseline, seen, evaluation_only=False)))
    if variants:  # every evaluation-only parameter changed at once: nothing trained may move
        seen = fit_with(case, {**base_params, **variants}, baseline).seen
        outcome, detail = judge(baseline, seen, evaluation_only=True)
        if outcome == "VIOLATION":  # name the culprit
            for key, new in variants.items():
                seen = fit_with(case, {**base_params, **case.together.get(key, {}), key: new}, baseline).seen
                findings.append(Finding(key, new, *judge(baseline, seen, evaluation_only=True)))
        else:
            findings += [Finding(key, new, outcome, detail) for key, new in variants.items()]
    return findings


def report(case: Case, findings: list[Finding]) -> str:
    lines = [f"stage-identity conformance: {case.method} ({case.task})"]
    for f in findings:
        lines.append(
            f"  {f.param:24s} {f.outcome:16s} {'' if f.value is None else repr(f.value):14s} {f.detail}"
        )
    return "\n".join(lines)
