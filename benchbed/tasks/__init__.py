"""Task registry: ctr, topk, generative (and later item2text)."""

from __future__ import annotations

from benchbed.registry import TASKS
from benchbed.tasks.base import Task

for _name, _target in {
    "ctr": "benchbed.tasks.ctr:CTRTask",
    "topk": "benchbed.tasks.topk:TopKTask",
    "generative": "benchbed.tasks.generative:GenerativeTask",
    "item2text": "benchbed.tasks.item2text:Item2TextTask",
}.items():
    if _name not in TASKS:
        TASKS.register(_name, _target)


def build_task(name: str, params: dict) -> Task:
    task: Task = TASKS.get(name)(**params)
    return task
