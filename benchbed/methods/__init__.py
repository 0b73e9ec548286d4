"""Method registry: name -> lazy ``module:Class``. Adding a method is one file plus one line here."""

from __future__ import annotations

from typing import Any

from benchbed.registry import METHODS

_BUILTIN = {
    # reference rows
    "random": "benchbed.methods.reference:RandomRecommender",
    "pop": "benchbed.methods.reference:PopRecommender",
    # ID baselines (RecBole and implicit), trained on benchbed's split
    "mf-bpr": "benchbed.baselines.recbole_models:MFBPR",
    "mf": "benchbed.baselines.recbole_models:MFPointwise",
    "lightgcn": "benchbed.baselines.recbole_models:LightGCN",
    "sasrec": "benchbed.baselines.recbole_models:SASRec",
    "din": "benchbed.baselines.recbole_din:DIN",
    "multivae": "benchbed.baselines.recbole_models:MultiVAE",
    "als": "benchbed.baselines.als:ALSRecommender",
    "comirec": "benchbed.baselines.comirec:ComiRec",
    "ease": "benchbed.baselines.ease:EASE",
    # LLM methods
    "icl": "benchbed.methods.icl:ICL",
    "tallrec": "benchbed.methods.tallrec:TALLRec",
    "collm": "benchbed.methods.collm:CoLLM",
    "p5-random": "benchbed.methods.p5_random:P5Random",
    "embedproj": "benchbed.methods.embedproj:EmbedProj",
    "cllm4rec": "benchbed.methods.cllm4rec.method:CLLM4Rec",
    "rarec": "benchbed.methods.rarec.method:RARec",
    # item2text baselines and reference rows (ILM 4.3 / Fig. 5)
    "i2t-mlp1": "benchbed.methods.item2text_baselines:I2TMLP1",
    "i2t-mlpn": "benchbed.methods.item2text_baselines:I2TMLPN",
    "i2t-elm": "benchbed.methods.item2text_baselines:I2TELM",
    "i2t-text": "benchbed.methods.item2text_baselines:I2TText",
    "i2t-floor": "benchbed.methods.item2text_baselines:I2TFloor",
    "i2t-copy": "benchbed.methods.item2text_baselines:I2TCopy",
    "i2t-const": "benchbed.methods.item2text_baselines:I2TConst",
    "ilm": "benchbed.methods.ilm.method:ILM",
}
BUILTIN_METHODS: frozenset[str] = frozenset(_BUILTIN)  # the package's own methods (not plugins)
for _name, _target in _BUILTIN.items():
    if _name not in METHODS:
        METHODS.register(_name, _target)

RECBOLE_PREFIX = "recbole:"


def get_method_class(name: str) -> Any:
    """The class for ``name``; ``recbole:<Model>`` builds a pass-through to any RecBole model."""
    if name.startswith(RECBOLE_PREFIX):
        from benchbed.baselines.recbole_models import recbole_passthrough

        return recbole_passthrough(name[len(RECBOLE_PREFIX) :])
    return METHODS.get(name)


def method_defaults(name: str, task: str | None = None) -> dict[str, Any]:
    """A method's defaults on ``task``: its ``defaults`` updated by its ``task_defaults[task]``."""
    cls = get_method_class(name)
    return {**cls.defaults, **(cls.task_defaults.get(task, {}) if task else {})}


def build_method(name: str, params: dict[str, Any], task: str | None = None) -> Any:
    """The method ``name`` with ``params`` over its defaults for ``task`` (task defaults come from the
    protocol's paper, e.g. CoLLM's pointwise CF settings on ``ctr``); the user's parameters win."""
    cls = get_method_class(name)
    per_task = cls.task_defaults.get(task, {}) if task else {}
    return cls(**{**per_task, **params})
