"""Paper-reported numbers (``reference.yaml``), shown on leaderboards beside our runs and marked as such.

The file is a list of blocks; a block is one table (or one column group of a table) of one paper on one
dataset, task and protocol, with ``rows`` mapping a method label to its metrics. Metric keys are the flat keys
our records use; a key written ``subset/metric`` sets the subset, otherwise the block's ``subsets`` (default
``[all]``) apply. Other papers are added by appending blocks; unknown keys are errors naming the block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbed.config import load_yaml
from benchbed.errors import ConfigError
from benchbed.results.record import unknown_and_missing

DEFAULT_REFERENCE_FILE = Path(__file__).with_name("reference.yaml")
BLOCK_KEYS = {"paper", "table", "dataset", "task", "protocol", "subsets", "backbone", "note"}
BLOCK_KEYS |= {"methods", "params", "rows", "task_params", "split_params", "awaiting"}
REQUIRED_BLOCK_KEYS = ("paper", "table", "dataset", "task", "rows")


@dataclass
class ReferenceRow:
    """One method's numbers in one paper table."""

    paper: str  # citation label from the file's ``papers`` section, e.g. "CoLLM (TOIS'24)"
    table: str
    method: str  # label as the paper prints it
    datasets: list[str]
    tasks: list[str]
    protocols: list[str]  # empty: matches any protocol (only where the paper's protocol is ours by design)
    metrics: dict[str, dict[str, float]]
    method_id: str | None = None  # the benchbed method it corresponds to, if any
    params: dict[str, Any] = field(default_factory=dict)
    backbone: str | None = None
    note: str | None = None
    task_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"sub_task": "straightforward"}
    split_params: dict[str, Any] = field(default_factory=dict)  # split settings beyond the dataset's defaults
    # why benchbed cannot run this configuration yet (a dataset, split, sub-task it lacks): on no board
    awaiting: str | None = None
    block: int = -1  # position of its block in the file: rows of one block are one paper table

    @property
    def citation(self) -> str:
        return f"{self.paper}, {self.table}"

    def matches(
        self,
        dataset: str,
        task: str,
        protocol: str,
        task_params: dict[str, Any] | None = None,
        *,
        split_params: dict[str, Any] | None = None,
        split_defaults: dict[str, Any] | None = None,
    ) -> bool:
        """Whether this paper row belongs on a board of ``dataset`` / ``task`` / ``protocol``.

        - dataset, task and protocol are among the block's (no protocol in the block: any);
        - every task parameter the block names has the same value on the board, where the board's task has
          that parameter (``sub_task`` means nothing to ``topk``; a block of OpenP5's *generative* figures
          therefore lists ``task: generative`` only, so a top-K board never shows them);
        - the board's split parameters equal the dataset's defaults for the protocol (``split_defaults``;
          the catalog holds the paper's split), except the ones the block names in ``split_params``, which
          must equal those: a board with ``tie_break=item`` or a quantile split of ml-1m is not the paper's.
        """
        params = task_params or {}
        if self.awaiting is not None:
            return False
        if dataset not in self.datasets or task not in self.tasks:
            return False
        if self.protocols and protocol not in self.protocols:
            return False
        if any(params[k] != v for k, v in self.task_params.items() if k in params):
            return False
        if split_defaults is not None:
            for key, value in (split_params or {}).items():
                expected = self.split_params.get(key, split_defaults.get(key, value))
                if value != expected:
                    return False
        return True

    def value(self, column: str) -> float | None:
        subset, _, key = column.rpartition("/")
        return self.metrics.get(subset, {}).get(key)


def _as_list(value: Any, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: {key!r} must be a string or a list of strings")


def load_references(path: Path | None = None) -> list[ReferenceRow]:
    """Read and validate a reference file (default: the one shipped with benchbed)."""
    path = Path(path) if path is not None else DEFAULT_REFERENCE_FILE
    raw = load_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("blocks"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'blocks' list")
    unknown_top = sorted(set(raw) - {"schema_version", "papers", "blocks"})
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown_top}")
    papers = raw.get("papers") or {}
    rows: list[ReferenceRow] = []
    for i, block in enumerate(raw["blocks"]):
        rows += _block_rows(block, i, f"{path} blocks[{i}]", papers)
    return rows


def _block_rows(block: Any, i: int, where: str, papers: dict[str, Any]) -> list[ReferenceRow]:
    """The rows of one block (one paper table), checked key by key."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown, missing = unknown_and_missing(block, BLOCK_KEYS, REQUIRED_BLOCK_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(BLOCK_KEYS)}")
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    paper_key = block["paper"]
    if paper_key not in papers:
        raise ConfigError(f"{where}: paper {paper_key!r} is not listed under 'papers'")
    cite = papers[paper_key].get("cite", paper_key) if isinstance(papers[paper_key], dict) else paper_key
    subsets = _as_list(block.get("subsets", ["all"]), where, "subsets")
    method_ids = block.get("methods") or {}
    method_params = block.get("params") or {}
    task_params = block.get("task_params") or {}
    if not isinstance(task_params, dict):
        raise ConfigError(f"{where}: 'task_params' must be a mapping, e.g. {{sub_task: sequential}}")
    split_params = block.get("split_params") or {}
    if not isinstance(split_params, dict):
        raise ConfigError(f"{where}: 'split_params' must be a mapping, e.g. {{tie_break: file}}")
    if not isinstance(block["rows"], dict):
        raise ConfigError(f"{where}: 'rows' must map a method label to {{metric: value}}")
    rows = []
    for label, values in block["rows"].items():
        metrics = _row_metrics(values, f"{where} rows[{label!r}]", subsets)  # checked before the row's lists
        rows.append(
            ReferenceRow(
                paper=str(cite),
                table=str(block["table"]),
                method=str(label),
                datasets=_as_list(block["dataset"], where, "dataset"),
                tasks=_as_list(block["task"], where, "task"),
                protocols=_as_list(block.get("protocol"), where, "protocol"),
                metrics=metrics,
                method_id=method_ids.get(label),
                params=dict(method_params.get(label, {})),
                backbone=block.get("backbone"),
                note=block.get("note"),
                task_params=dict(task_params),
                split_params=dict(split_params),
                awaiting=None if block.get("awaiting") is None else str(block["awaiting"]),
                block=i,
            )
        )
    return rows


def _row_metrics(values: Any, where: str, subsets: list[str]) -> dict[str, dict[str, float]]:
    """``{metric: value}`` of one paper row by subset: ``subset/metric`` keys, or every block subset."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected {{metric: value}}")
    metrics: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        if not isinstance(value, int | float):
            raise ConfigError(f"{where}[{key!r}]: expected a number, got {value!r}")
        if "/" in key:
            subset, _, metric = key.rpartition("/")
            metrics.setdefault(subset, {})[metric] = float(value)
        else:
            for subset in subsets:
                metrics.setdefault(subset, {})[key] = float(value)
    return metrics
