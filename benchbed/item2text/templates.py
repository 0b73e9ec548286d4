"""The item-to-text template bank: per sub-task ``seen`` paraphrases (training) and one ``unseen`` one.

Rendered with the project's one renderer (``benchbed.prompts.render_template``): ``{domain_one}`` and
``{attr_noun}`` are filled, the item markers stay (``to_marked``) so the task hands methods a plain string;
``benchbed.item2text.prompts.to_pieces`` turns the markers into ``Slot``s or titles on the method side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbed.config import load_yaml, stable_hash
from benchbed.errors import ConfigError
from benchbed.item2text.prompts import SLOTS, marked
from benchbed.item2text.subtasks import SUB_TASKS
from benchbed.prompts import PLACEHOLDER, render_template

DEFAULT_BANK = Path(__file__).with_name("templates.yaml")
FIELDS = ("domain_one", "attr_noun")


@dataclass(frozen=True)
class Item2TextBank:
    path: Path
    seen: dict[str, tuple[str, ...]]
    unseen: dict[str, tuple[str, ...]]

    def hash(self) -> str:
        return stable_hash({"seen": self.seen, "unseen": self.unseen})

    def template(self, task: str, key: str) -> str:
        """``key`` = "seen[:i]" / "unseen[:i]"; "seen" is seen template 0."""
        kind, _, idx = key.partition(":")
        pool = {"seen": self.seen, "unseen": self.unseen}.get(kind)
        if pool is None:
            raise ConfigError(f"template {key!r}: expected 'seen[:i]' or 'unseen[:i]'")
        texts = pool[task]
        i = int(idx or 0)
        if not 0 <= i < len(texts):
            raise ConfigError(f"{self.path}: sub-task {task!r} has no {kind} template {i} ({len(texts)})")
        return texts[i]

    def render(self, task: str, key: str, *, domain_one: str, attr_noun: str) -> str:
        """The template with its fields filled and the item markers kept."""
        pieces = render_template(
            self.template(task, key), {"domain_one": domain_one, "attr_noun": attr_noun}, SLOTS
        )
        return marked(pieces)

    def info(self, templates_per_example: int) -> dict[str, Any]:
        return {
            "bank": "item2text",
            "path": str(self.path),
            "hash": self.hash(),
            "n_seen": min(len(v) for v in self.seen.values()),
            "n_unseen": min(len(v) for v in self.unseen.values()),
            "train_templates": templates_per_example,
        }


def load_item2text_bank(path: str | Path | None = None) -> Item2TextBank:
    """Load and validate a bank: every sub-task present, >= 1 seen and 1 unseen template, the item markers
    its arity needs and no others, no unseen template among the seen ones."""
    p = Path(path) if path else DEFAULT_BANK
    if not p.is_file():
        raise ConfigError(f"task item2text: template bank {p} not found")
    raw = load_yaml(p)
    tasks = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(tasks, dict):
        raise ConfigError(f"{p}: expected a mapping with key 'tasks'")
    seen: dict[str, tuple[str, ...]] = {}
    unseen: dict[str, tuple[str, ...]] = {}
    for name, spec in SUB_TASKS.items():
        entry = tasks.get(name)
        if not isinstance(entry, dict):
            raise ConfigError(f"{p}: sub-task {name!r} missing (expected seen/unseen template lists)")
        want = set(SLOTS[: spec.arity])
        for kind, out in (("seen", seen), ("unseen", unseen)):
            texts = entry.get(kind)
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise ConfigError(f"{p}: {name}.{kind} must be a non-empty list of strings")
            for i, t in enumerate(texts):
                found = set(PLACEHOLDER.findall(t))
                unknown = sorted(found - set(SLOTS) - set(FIELDS))
                if unknown:
                    raise ConfigError(f"{p}: {name}.{kind}[{i}] has unknown placeholder {{{unknown[0]}}}")
                if found & set(SLOTS) != want:
                    raise ConfigError(
                        f"{p}: {name}.{kind}[{i}] must use exactly {sorted(want)} (arity {spec.arity})"
                    )
            out[name] = tuple(texts)
        if set(unseen[name]) & set(seen[name]):
            raise ConfigError(f"{p}: {name}: an unseen template also appears among the seen ones")
    return Item2TextBank(path=p, seen=seen, unseen=unseen)
