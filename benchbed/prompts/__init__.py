"""Prompt template banks: YAML files of "seen" templates (used in training) and held-out "unseen" ones.

A bank (``benchbed/prompts/<name>.yaml`` or any YAML path) declares its text ``fields`` (filled with strings),
its embedding ``slots`` (left as ``Slot`` markers that ``benchbed.llm.injectors.prompts`` replaces with
vectors), and ``views``: parallel forms of every template (for CTR: ``text`` = TALLRec-style, ``cf`` =
CoLLM-style) with the placeholders each view requires. Every template is validated when the bank is loaded, so
a template without a required placeholder fails before any training. ``PromptBank.hash(view)`` identifies the
exact template set in run records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbed.config import load_yaml, stable_hash
from benchbed.errors import ConfigError

BANK_DIR = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Slot:
    """Where a projected vector goes; ``name`` says which (``user_emb``, ``item_emb``, ...)."""

    name: str


Piece = str | Slot


@dataclass
class PromptBank:
    name: str
    path: Path
    task: str
    fields: tuple[str, ...]
    slots: tuple[str, ...]
    required: dict[str, tuple[str, ...]]  # view -> placeholders every template of that view must contain
    seen: list[dict[str, str]]  # one {view: template} per seen template; seen[0] is the evaluated one
    unseen: list[dict[str, str]]
    domains: dict[str, str] = field(default_factory=dict)  # plural noun -> singular
    extra: dict[str, Any] = field(default_factory=dict)  # empty_history, answer words, ...

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.required)

    def template(self, which: str | int, view: str) -> str:
        """``"seen"`` (= seen template 0), ``"unseen"`` (= unseen 0), ``"unseen:<i>"`` or a seen index."""
        self._check_view(view)
        if which == "seen":
            return self.seen[0][view]
        if isinstance(which, str) and which.startswith("unseen"):
            _, _, idx = which.partition(":")
            i = int(idx or 0)
            if not 0 <= i < len(self.unseen):
                raise ConfigError(f"{self.path}: no unseen template {i} (the bank has {len(self.unseen)})")
            return self.unseen[i][view]
        if isinstance(which, int) and 0 <= which < len(self.seen):
            return self.seen[which][view]
        raise ConfigError(
            f"{self.path}: unknown template {which!r}; expected 'seen', 'unseen' or 0..{len(self.seen) - 1}"
        )

    def render(self, which: str | int, view: str, values: Mapping[str, FieldValue]) -> list[Piece]:
        """Fill the fields of one template; slots stay as ``Slot`` markers. Adjacent text is merged."""
        return render_template(self.template(which, view), values, self.slots)

    def domain_values(self, domain: str) -> dict[str, str]:
        """``{domain}`` / ``{domain_one}`` for a dataset noun; unknown nouns fall back to items/item."""
        if domain in self.domains:
            return {"domain": domain, "domain_one": self.domains[domain]}
        return {"domain": "items", "domain_one": self.domains.get("items", "item")}

    def hash(self, view: str | None = None) -> str:
        """Identity of the template set (one view, or the whole bank) for run records."""
        views = [view] if view else list(self.views)
        blob = {
            "seen": [[t[v] for v in views] for t in self.seen],
            "unseen": [[t[v] for v in views] for t in self.unseen],
            "domains": self.domains,
            "extra": self.extra,
        }
        return stable_hash(blob)

    def info(self, view: str, train_templates: int | None = None) -> dict[str, Any]:
        return {
            "bank": self.name,
            "path": str(self.path),
            "view": view,
            "hash": self.hash(view),
            "n_seen": len(self.seen),
            "n_unseen": len(self.unseen),
            "train_templates": train_templates if train_templates is not None else len(self.seen),
        }

    def _check_view(self, view: str) -> None:
        if view not in self.required:
            raise ConfigError(
                f"{self.path}: bank {self.name!r} has no view {view!r}; views: {', '.join(self.views)}"
            )


# a field's value: text, or a sequence of text pieces and slots (a generative prompt's "id <slot>, id <slot>")
FieldValue = str | Sequence[Piece]


def render_template(
    template: str, values: Mapping[str, FieldValue], slots: tuple[str, ...] | list[str] = ()
) -> list[Piece]:
    """The one prompt renderer (CTR and generative banks): fill ``{field}`` placeholders with ``values``;
    a placeholder named in ``slots`` becomes a ``Slot`` marker; a value may itself hold pieces and slots.
    Adjacent text is merged and empty text dropped, so tokenization matches the plain string's."""
    pieces: list[Piece] = []
    pos = 0
    for m in PLACEHOLDER.finditer(template):
        pieces.append(template[pos : m.start()])
        key = m.group(1)
        if key in slots:
            pieces.append(Slot(key))
        else:
            try:
                value = values[key]
            except KeyError as exc:
                raise ConfigError(f"prompt field {{{key}}} has no value; provided: {sorted(values)}") from exc
            if isinstance(value, str):
                pieces.append(value)
            else:
                pieces.extend(value)
        pos = m.end()
    pieces.append(template[pos:])
    merged: list[Piece] = []
    for p in pieces:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif p != "":
            merged.append(p)
    return merged


def bank_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"}:
        if not p.is_file():
            raise ConfigError(f"prompt bank file {p} not found")
        return p
    builtin = BANK_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        known = sorted(f.stem for f in BANK_DIR.glob("*.yaml"))
        raise ConfigError(
            f"unknown prompt bank {str(name_or_path)!r}; built-in: {', '.join(known)} (or a .yaml path)"
        )
    return builtin


def load_bank(name_or_path: str | Path) -> PromptBank:
    """Load and validate a bank: every template of every view has the view's required placeholders, no
    unknown ones, and each slot at most once."""
    path = bank_path(name_or_path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a prompt bank must be a mapping")
    for key in ("name", "views", "seen", "unseen"):
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r}")
    fields = tuple(raw.get("fields", []))
    slots = tuple(raw.get("slots", []))
    views = raw["views"]
    if not isinstance(views, dict) or not views:
        raise ConfigError(f"{path}: 'views' must map view names to {{required: [...]}}")
    required = {v: tuple((spec or {}).get("required", [])) for v, spec in views.items()}
    known = set(fields) | set(slots)
    for v, req in required.items():
        bad = sorted(set(req) - known)
        if bad:
            raise ConfigError(f"{path}: view {v!r} requires {bad}, which are neither fields nor slots")
    seen = _templates(raw["seen"], "seen", path, required, known, slots)
    unseen = _templates(raw["unseen"], "unseen", path, required, known, slots)
    if not seen:
        raise ConfigError(f"{path}: 'seen' must list at least one template")
    extra = {
        k: v
        for k, v in raw.items()
        if k not in {"name", "task", "fields", "slots", "views", "seen", "unseen", "domains"}
    }
    return PromptBank(
        name=str(raw["name"]),
        path=path,
        task=str(raw.get("task", "")),
        fields=fields,
        slots=slots,
        required=required,
        seen=seen,
        unseen=unseen,
        domains=dict(raw.get("domains", {})),
        extra=extra,
    )


def _templates(
    entries: Any,
    kind: str,
    path: Path,
    required: dict[str, tuple[str, ...]],
    known: set[str],
    slots: tuple[str, ...],
) -> list[dict[str, str]]:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: {kind!r} must be a list of templates")
    out: list[dict[str, str]] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and len(required) == 1:
            entry = {next(iter(required)): entry}
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{path}: {kind} template {i} must map each view ({', '.join(required)}) to a string"
            )
        for view, req in required.items():
            text = entry.get(view)
            if not isinstance(text, str):
                raise ConfigError(f"{path}: {kind} template {i} lacks view {view!r}")
            found = PLACEHOLDER.findall(text)
            unknown = sorted(set(found) - known)
            if unknown:
                raise ConfigError(
                    f"{path}: {kind} template {i} ({view}) has unknown placeholder {{{unknown[0]}}}; "
                    f"known: {', '.join(sorted(known))}"
                )
            missing = [r for r in req if r not in found]
            if missing:
                raise ConfigError(
                    f"{path}: {kind} template {i} ({view}) lacks the required placeholder {{{missing[0]}}}"
                )
            for s in slots:
                if found.count(s) > 1:
                    raise ConfigError(
                        f"{path}: {kind} template {i} ({view}) uses slot {{{s}}} more than once"
                    )
        out.append({v: entry[v] for v in required})
    return out
