"""Run RecBole on exactly benchbed's split: atomic files, a config from a dict, a contained trainer.

The split is written as RecBole atomic files ``<variant>.{train,valid,test}.inter`` (plus ``.user`` and
``.item`` listing every benchbed id, so that RecBole's token remapping covers all of them) and loaded with
``benchmark_filename: [train, valid, test]``: RecBole then trains on those rows and no others (no
filtering, no re-splitting). RecBole's token ids are mapped back to benchbed's dense ids through
``dataset.field2token_id``.

What a row of each file is depends on the task (the *feedback*) and the model:

* ``labels`` (task ``ctr``): valid/test hold every labeled row with its ``label``; validation is RecBole's
  labeled mode scored by AUC. Pointwise models train on every labeled train row (BCE on the label, no
  negative sampling); ranking models (BPR, LightGCN, Multi-VAE, SASRec, ALS) train on the positive rows
  only — a rating the user disliked is not evidence the user prefers that item over a random one.
* ``interactions`` (task ``topk``): every interaction is a positive, as in OpenP5 and RecBole's own
  protocols; validation is full ranking scored by NDCG@10. Pointwise models get one uniformly sampled
  negative per positive.

Sequential models get an ``item_id_list`` column: in ``labels`` mode the split's own ``history`` column (the
user's positives at earlier timestamps) or, with ``history_rule="file"``, CoLLM's (earlier positives in file
order, same-second ones included: :mod:`benchbed.baselines.collm_history`), in ``interactions`` mode the
user's earlier items over train, then valid, then test in time order (so a valid row's history is the user's
training sequence and a test row's history adds the valid items — what RecBole's ``LS`` split gives).

RecBole is kept contained while it runs (:func:`recbole_scope`): ``sys.argv`` is hidden from its
``Config``, its records (it logs to the root logger directly) go to the ``benchbed.recbole`` logger,
which does not propagate, and the working directory is a scratch dir under the cache so that its
``log_tensorboard/`` and checkpoints never land in the user's cwd.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.api import RunContext
from benchbed.baselines.recbole_containment import recbole_scope
from benchbed.baselines.recbole_files import ITEM, LABEL, SEQ, STAGES, USER, DataPlan, write_atomic_files
from benchbed.compat import recbole_shims
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.settings import get_settings

log = logging.getLogger(__name__)

# Task -> what RecBole validates on for early stopping (the same metric the benchbed task reports).
VALID_METRIC = {"labels": "AUC", "interactions": "NDCG@10"}


def check_device(device: str) -> str:
    """``cpu`` or an available CUDA device; a one-line error when a GPU is asked for and absent."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} requested but torch sees no CUDA GPU here; use --device cpu"
            )
        return device
    if device != "cpu":
        raise ConfigError(f"device {device!r} is not supported by the RecBole baselines; use cpu or cuda")
    return device


# ------------------------------------------------------------------------------------------------------
# Config, dataset, training
# ------------------------------------------------------------------------------------------------------
def recbole_model_class(name: str) -> Any:
    """RecBole's model class for ``name`` with a one-line error for an unknown name."""
    recbole_shims.apply()
    from recbole.utils import get_model

    try:
        return get_model(name)
    except (ValueError, AttributeError, ImportError) as exc:
        raise ConfigError(
            f"RecBole 1.2.1 has no model {name!r} (names are case-sensitive, e.g. BPR, NeuMF)"
        ) from exc


def _recbole_properties_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("recbole")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "properties"


def known_recbole_keys(model_name: str) -> set[str]:
    """Every config key RecBole 1.2.1 knows for this model: its argument lists plus the property files."""
    import yaml

    recbole_shims.apply()
    from recbole.utils import dataset_arguments, evaluation_arguments, general_arguments, training_arguments

    keys = (
        set(general_arguments) | set(training_arguments) | set(evaluation_arguments) | set(dataset_arguments)
    )
    props = _recbole_properties_dir()
    for path in [
        props / "overall.yaml",
        props / "dataset" / "sample.yaml",
        props / "model" / f"{model_name}.yaml",
    ]:
        if path.exists():
            keys |= set((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).keys())
    return keys


def model_property_defaults(model_name: str) -> dict[str, Any]:
    """RecBole's own defaults for a model (``properties/model/<Model>.yaml``)."""
    import yaml

    path = _recbole_properties_dir() / "model" / f"{model_name}.yaml"
    if not path.exists():
        return {}
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def check_recbole_keys(model_name: str, overrides: dict[str, Any], option: str) -> None:
    unknown = sorted(set(overrides) - known_recbole_keys(model_name))
    if unknown:
        raise ConfigError(f"{option}: RecBole has no config key(s) {unknown} for model {model_name}")


@dataclass
class TrainOutcome:
    best_valid: float | None
    valid_metric: str
    epochs_run: int
    train_seconds: float
    used_best_checkpoint: bool


class RecBoleSession:
    """One RecBole model trained on one split; keeps the id maps between benchbed and RecBole."""

    def __init__(
        self,
        split: Split,
        model: str | type,
        plan: DataPlan,
        settings: dict[str, Any],
        ctx: RunContext,
        *,
        data_root: Path | None = None,
    ) -> None:
        self.split = split
        self.plan = plan
        self.ctx = ctx
        self.device = check_device(ctx.device)
        self.model_name = model if isinstance(model, str) else model.__name__
        files = write_atomic_files(split, plan, data_root)
        data_path, dataset_name, self.file_rows, self.seq_width = (
            files.root,
            files.name,
            files.rows,
            files.seq_width,
        )
        if self.file_rows["train"] == 0:
            raise DataError(
                f"split of {split.data.name!r}: no training rows left for {self.model_name} ({plan.variant})"
            )
        cache = get_settings().cache_dir.resolve()
        self.work_dir = Path(
            tempfile.mkdtemp(prefix=f"{self.model_name}-", dir=_mkdir(cache / "recbole" / "work"))
        )
        self.config_dict = self._config_dict(data_path, settings)
        self.outcome: TrainOutcome | None = None
        try:
            with recbole_scope(self.work_dir, ctx):
                self._build(model, dataset_name)
        except Exception:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise

    # --- construction ---------------------------------------------------------------------------------
    def _config_dict(self, data_path: Path, settings: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        labels = plan.feedback == "labels"
        cfg: dict[str, Any] = {
            "data_path": str(data_path),
            "benchmark_filename": list(STAGES),
            "checkpoint_dir": str(self.work_dir / "saved"),
            "log_wandb": False,
            "show_progress": False,
            "save_dataset": False,
            "save_dataloaders": False,
            "seed": self.ctx.seed,
            "reproducibility": True,
            # Config exports gpu_id as CUDA_VISIBLE_DEVICES (restored by recbole_scope): keep the user's
            "gpu_id": (os.environ.get("CUDA_VISIBLE_DEVICES") or "0")
            if self.device.startswith("cuda")
            else "",
            "use_gpu": self.device.startswith("cuda"),
            "worker": 0,
            "state": "INFO",
            "field_separator": "\t",
            "seq_separator": " ",
            "USER_ID_FIELD": USER,
            "ITEM_ID_FIELD": ITEM,
            "LABEL_FIELD": LABEL,
            "TIME_FIELD": None,
            "RATING_FIELD": None,
            "load_col": None,
            "threshold": None,
            "eval_args": {
                "split": {"RS": [0.8, 0.1, 0.1]},  # ignored: benchmark files are used as they are
                "order": "TO" if plan.sequential else "RO",  # sequential datasets insist on TO
                "group_by": "user",
                "mode": "labeled" if labels else "full",
            },
            # AUC only: ranking models' scores are no probabilities, so RecBole's LogLoss would be noise
            "metrics": ["AUC"] if labels else ["NDCG", "Hit", "MRR", "Recall"],
            "topk": [10],
            "valid_metric": VALID_METRIC[plan.feedback],
            "eval_batch_size": 4096,
            "repeatable": plan.sequential,
        }
        if plan.pointwise and not labels:
            cfg["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
        elif plan.pointwise or plan.sequential:
            cfg["train_neg_sample_args"] = None
        if plan.sequential:
            # RecBole pads sequences to the longest one in the files; DIN's attention mask assumes that
            # width equals MAX_ITEM_LIST_LENGTH, so both are set to it.
            cfg["MAX_ITEM_LIST_LENGTH"] = self.seq_width
            cfg["alias_of_item_id"] = [SEQ]
        cfg.update(settings)
        return cfg

    def _build(self, model: str | type, dataset_name: str) -> None:
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_trainer, init_seed

        try:
            self.config = Config(model=model, dataset=dataset_name, config_dict=dict(self.config_dict))
        except (ValueError, KeyError, TypeError, NotImplementedError, RuntimeError) as exc:
            raise ConfigError(f"RecBole rejected the config for {self.model_name}: {exc}") from exc
        import torch

        self.config["device"] = torch.device(self.device)
        init_seed(self.config["seed"], self.config["reproducibility"])
        self.dataset = create_dataset(self.config)
        self.train_data, self.valid_data, self.test_data = data_preparation(self.config, self.dataset)
        init_seed(self.config["seed"] + self.config["local_rank"], self.config["reproducibility"])
        model_class: Any = self.config.model_class
        self.model = model_class(self.config, self.train_data._dataset).to(self.config["device"])
        self.trainer = get_trainer(self.config["MODEL_TYPE"], self.config["model"])(self.config, self.model)
        self.user_map = self._id_map(USER, self.split.n_users)
        self.item_map = self._id_map(ITEM, self.split.n_items)

    def _id_map(self, field: str, n: int) -> np.ndarray:
        """benchbed id -> RecBole internal id (every benchbed id is listed in the .user/.item file)."""
        token_id = self.dataset.field2token_id[field]
        return np.array([token_id[str(i)] for i in range(n)], dtype=np.int64)

    # --- training -------------------------------------------------------------------------------------
    def train(self) -> TrainOutcome:
        """Fit with RecBole's trainer (early stopping on ``valid_metric``), then load the best checkpoint."""
        import torch

        start = time.perf_counter()
        epochs_run = 0

        def count(epoch: int, score: float) -> None:
            nonlocal epochs_run
            epochs_run = epoch + 1
            if self.ctx.verbose > 0:  # one line per epoch only on -v; the summary below always
                self.ctx.say(
                    f"{self.model_name} epoch {epoch}: valid {self.config['valid_metric']} = {score:.4f}"
                )

        try:
            with recbole_scope(self.work_dir, self.ctx):
                best, _ = self.trainer.fit(
                    self.train_data,
                    self.valid_data,
                    verbose=self.ctx.verbose > 0,
                    saved=True,
                    callback_fn=count,
                )
                ckpt = Path(self.trainer.saved_model_file)
                used = ckpt.exists()
                if used:
                    state = torch.load(ckpt, map_location=self.config["device"], weights_only=False)
                    self.model.load_state_dict(state["state_dict"])
                    self.model.load_other_parameter(state.get("other_parameter"))
                self.trainer.tensorboard.close()
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self.model.eval()
        best_value = None if best is None or not np.isfinite(best) else float(best)
        self.ctx.say(
            f"{self.model_name}: {epochs_run} epoch(s), best valid {self.config['valid_metric']} = "
            + ("n/a" if best_value is None else f"{best_value:.4f}")
            + (" (best checkpoint restored)" if used else "")
        )
        self.outcome = TrainOutcome(
            best_valid=best_value,
            valid_metric=str(self.config["valid_metric"]),
            epochs_run=epochs_run or int(self.config["epochs"]),
            train_seconds=time.perf_counter() - start,
            used_best_checkpoint=used,
        )
        return self.outcome

    def loss_name(self) -> str:
        """The loss the model trains with, read from the model (what the record states)."""
        return training_loss(self.model)

    # --- helpers for scoring --------------------------------------------------------------------------
    def interaction(self, fields: dict[str, np.ndarray]) -> Any:
        import torch
        from recbole.data.interaction import Interaction

        return Interaction({k: torch.as_tensor(v) for k, v in fields.items()}).to(self.config["device"])

    def seq_tensor(self, histories: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
        """Left-aligned, zero-padded RecBole id sequences (last ``width`` items) and their lengths >= 1.

        An empty history becomes one padding item: RecBole's sequential models gather the output at
        ``length - 1`` and cannot take length 0.
        """
        seq = np.zeros((len(histories), width), dtype=np.int64)
        lengths = np.ones(len(histories), dtype=np.int64)
        for row, hist in enumerate(histories):
            h = (
                self.item_map[np.asarray(hist[-width:], dtype=np.int64)]
                if len(hist)
                else np.zeros(0, np.int64)
            )
            seq[row, : len(h)] = h
            lengths[row] = max(1, len(h))
        return seq, lengths


def training_loss(model: Any) -> str:
    """``BCE`` (pointwise on labels or sampled negatives), ``BPR``, ``CE`` or ``other``, from the model:
    an explicit ``loss_type`` first (SASRec family), else the loss modules RecBole models keep."""
    from torch import nn

    kind = getattr(model, "loss_type", None)
    if isinstance(kind, str) and kind.upper() in ("BCE", "CE", "BPR"):
        return kind.upper()
    for attr in ("bce", "loss", "loss_fct", "mf_loss"):
        module = getattr(model, attr, None)
        if isinstance(module, (nn.BCEWithLogitsLoss, nn.BCELoss)):
            return "BCE"
        if isinstance(module, nn.CrossEntropyLoss):
            return "CE"
        if type(module).__name__ == "BPRLoss":
            return "BPR"
    return "other"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
