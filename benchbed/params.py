"""One parameter-checking mechanism for methods, tasks and split protocols.

Every owner (a method class, a task class, a split protocol) declares ``defaults``; this module checks given
values against a :class:`Param` per key *before any work starts*, so ``-p dim=0``, ``-p lr=-1`` or
``--task-param max_rows=0`` become one-line usage errors instead of ``status: ok`` leaderboard rows.

A key's spec comes from, in order: the owner's explicit ``param_specs``; the project-wide naming
conventions in :data:`NAME_RULES` (``lr`` > 0, ``epochs`` >= 1, ``dropout`` in [0, 1), ...), declared once
here so that the same name means the same range everywhere; and the default's own type. Values are
checked, never converted (an ``int`` given for a float parameter is accepted as it is, so config hashes
stay what the user wrote).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from benchbed.errors import ConfigError

AUTO = "auto"  # a default of "auto" means: the method derives the value; a number may replace it


class ParamError(ConfigError):
    """A parameter value of the wrong type or out of range: a usage error (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Param:
    """Type and range of one parameter.

    ``kind`` is one of ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``list``, ``dict`` or ``any``;
    ``auto`` also admits the string ``"auto"``; ``nullable`` admits ``None``; ``min``/``max`` bound numbers
    (and every element of a list of numbers); ``exclusive_min``/``exclusive_max`` make a bound strict.
    """

    kind: str = "any"
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    auto: bool = False
    item_kind: str | None = None  # element type of a list ("int", "float", "str")
    also: tuple[Any, ...] = ()  # literal values accepted beside the kind (candidates: an int >= 1 or "full")
    # a string (or every string of a list) must match this regular expression in full: the declared form of
    # free-form values (a hub id or path, a comma list of names) that no choice set can enumerate
    pattern: str | None = None
    help: str = ""

    @property
    def declared(self) -> bool:
        """Whether the spec says which values are valid (a range, a choice set, a form), not just a type:
        every parameter of every method, task and split must be declared (tests/test_reliability_params)."""
        if self.choices is not None or self.pattern is not None or self.kind == "bool":
            return True
        if self.kind == "dict":  # a mapping of another method's parameters, checked by that method up front
            return bool(self.help)
        if self.kind in ("int", "float") or (self.kind == "list" and self.item_kind in ("int", "float")):
            return self.min is not None or self.max is not None
        return False

    def expected(self) -> str:
        """The human description used in error messages ("an integer >= 1 or 'auto'")."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            noun = {
                "int": "an integer",
                "float": "a number",
                "bool": "true or false",
                "str": "a string",
                "list": f"a list{' of ' + _plural(self.item_kind) if self.item_kind else ''}",
                "dict": "a mapping",
                "any": "a value",
            }[self.kind]
            text = noun + _bounds(self)
            if self.pattern is not None and self.help:
                text += f" ({self.help})"
            elif self.pattern is not None:
                text += f" matching {self.pattern}"
        for literal in self.also:
            text += f" or {literal!r}"
        if self.auto and AUTO not in (self.choices or ()):
            text += " or 'auto'"
        if self.nullable:
            text += " or null"
        return text


def _plural(kind: str) -> str:
    return {"int": "integers", "float": "numbers", "str": "strings"}.get(kind, kind)


def _bounds(p: Param) -> str:
    parts = []
    if p.min is not None:
        parts.append(f"{'>' if p.exclusive_min else '>='} {p.min:g}")
    if p.max is not None:
        parts.append(f"{'<' if p.exclusive_max else '<='} {p.max:g}")
    return (" " + " and ".join(parts)) if parts else ""


POSITIVE = Param(kind="float", min=0, exclusive_min=True)
NON_NEGATIVE = Param(kind="float", min=0)
COUNT = Param(kind="int", min=1)
NON_NEGATIVE_INT = Param(kind="int", min=0)
FRACTION = Param(kind="float", min=0, max=1)
PROBABILITY_LT1 = Param(kind="float", min=0, max=1, exclusive_max=True)
SEED = Param(kind="int", min=0, max=2**63 - 1)

# forms of free-form strings (declared by shape; what they name is resolved before any work)
NAME = Param(kind="str", pattern=r"[^\s,]+", help="a registry name, a hub id or a path")
COMMA_NAMES = Param(
    kind="str", pattern=r"[\w.+\-]+(\s*,\s*[\w.+\-]+)*", help="a comma list of names, e.g. q_proj,v_proj"
)
BANK = Param(kind="str", pattern=r"[^\s,]+", help="a template bank name or a YAML file")  # null: default None
MONTHS = Param(kind="list", item_kind="int", min=-1200, max=1200, nullable=True, help="[first, last] month")

# Conventions by name: the same parameter name means the same range in every method, task and protocol.
# First match wins; an owner's ``param_specs`` overrides them.
NAME_RULES: tuple[tuple[str, Param], ...] = (
    (r"backbone|semantic_encoder|encoder", NAME),
    (r"bank|bank_.+", BANK),
    (r"lora_targets|stage1_text_losses|semantic_fields|compare_with", COMMA_NAMES),
    (r"stage1_text_fields", replace(COMMA_NAMES, nullable=True)),
    (r"(train|valid|test)_months", MONTHS),
    (r"month_origin", Param(kind="str", pattern=r"\d{4}-\d{2}", nullable=True, help="a month, e.g. 2000-04")),
    (r"max_title_chars|num_beams|(.+_)?grad_accum", COUNT),
    # an ID baseline whose embeddings a method reads; its name and parameters are checked before any work
    (
        r"cf_model|id_model",
        Param(kind="str", pattern=r"[a-z0-9\-]+|recbole:\w+", help="an exporting ID method"),
    ),
    (r"cf_params|id_params", Param(kind="dict", nullable=True, help="parameters of that method")),
    (r"recbole", Param(kind="dict", help="extra RecBole config keys, passed as they are")),
    (r"train_sub_tasks", Param(kind="str", choices=("both", "eval"))),
    (r"warm_start", Param(kind="str", choices=("auto", "text", "none"))),
    (r"tuning", Param(kind="str", choices=("full", "lora"))),  # collm declares its own (default | t1 ...)
    (r"warm_min_.+", replace(NON_NEGATIVE_INT, nullable=True)),
    (r"max_test_items", replace(COUNT, nullable=True)),
    (r"(.*_)?lr(_.*)?|learning_rate", POSITIVE),
    (r"(.*_)?(tau|temperature)", POSITIVE),
    (r"max_seconds", NON_NEGATIVE),  # 0 = no wall-clock cap (llm/budget.py)
    (r"(.*_)?dropout|.*_dropout_prob", PROBABILITY_LT1),
    (r"(valid|test|warmup|mask)_ratio|.*_quantile|anneal_cap", FRACTION),
    (r"(.*_)?weight_decay|reg|reg_weight|lam|lambda_.*|prior_strength|alpha", NON_NEGATIVE),
    (r"stopping_step|patience|valid_users|warm_threshold|min_position|total_anneal_steps", NON_NEGATIVE_INT),
    (r"history_len|id_history_len|exclude_extra_beams|min_interactions", NON_NEGATIVE_INT),
    # a stage's epochs may be 0 (the stage is skipped); budget caps use 0 for "no cap" (llm/budget.py)
    (r".+_epochs|max_(train|valid)_.*", NON_NEGATIVE_INT),
    # 0 used to mean "no cap" here, silently: a cap is >= 1, "auto" the budget's (all documents on a GPU)
    (r"max_content_docs", COUNT),
    (r"(.*_)?seed", SEED),
    (r"ks", Param(kind="list", item_kind="int", min=1)),
    (
        r"epochs|(.*_)?batch_size|dim|(.*_)?hidden|inner_size|latent_dimension|n_heads|n_layers"
        r"|n_interests|n_queries|lora_r|lora_alpha|max_len|max_length|iterations|beams|eval_k|eval_every"
        r"|evals_per_epoch|grad_accum|neg_factor|mlp_ratio|train_templates|templates_per_example"
        r"|max_(rows|users|tokens|iter|content_tokens|pointwise_pairs|new_tokens)"
        r"|train_samples|embedding_size|hidden_size",
        COUNT,
    ),
)


# max_* names that are sizes, not caps: null is not "no cap" there (the code needs a number)
SIZES = re.compile(r"max_(len|length|new_tokens|text_len|content_tokens|title_chars|content_docs)")


def infer(name: str, default: Any) -> Param:
    """The spec of ``name`` whose default is ``default``: naming convention refined by the default's type."""
    base = _type_of(default)
    rule = next((r for pattern, r in NAME_RULES if re.fullmatch(pattern, name)), None)
    if isinstance(default, str) and default == AUTO:  # "auto" or a value of the rule's kind
        auto = replace(rule, auto=True) if rule is not None else Param(kind="any", auto=True)
        return replace(auto, nullable=True) if name.startswith("max_") and not SIZES.fullmatch(name) else auto
    spec = rule or base
    if base.kind in ("list", "dict", "bool", "str") and spec.kind != base.kind:
        # the default says this is not a number (e.g. ``hidden=[600]``): keep its type, the rule's bounds
        spec = replace(spec, kind=base.kind, item_kind=base.item_kind)
    if base.kind == "float" and spec.kind == "int":
        spec = replace(spec, kind="float")
    if base.kind == "int" and spec.kind == "float":
        spec = replace(spec, kind="float")  # a float-range rule on an int default: numbers are fine
    if default is None or (name.startswith("max_") and not SIZES.fullmatch(name)):
        spec = replace(spec, nullable=True)  # a cap (max_*) may always be null: no cap
    return spec


def _type_of(default: Any) -> Param:
    if default is None:
        return Param(kind="any")
    if isinstance(default, bool):
        return Param(kind="bool")
    if isinstance(default, int):
        return Param(kind="int")
    if isinstance(default, float):
        return Param(kind="float")
    if isinstance(default, str):
        return Param(kind="str")
    if isinstance(default, (list, tuple)):
        kinds = {_type_of(v).kind for v in default}
        return Param(kind="list", item_kind=kinds.pop() if len(kinds) == 1 else None)
    if isinstance(default, Mapping):
        return Param(kind="dict")
    return Param(kind="any")


def specs_for(defaults: Mapping[str, Any], explicit: Mapping[str, Param] | None = None) -> dict[str, Param]:
    """The full spec table of an owner: explicit specs where given, inferred ones elsewhere."""
    explicit = explicit or {}
    return {key: explicit.get(key) or infer(key, value) for key, value in defaults.items()}


def check_value(owner: str, key: str, value: Any, spec: Param) -> None:
    """Raise a one-line :class:`ParamError` when ``value`` does not satisfy ``spec``."""
    if value is None and spec.nullable:
        return
    if value == AUTO and spec.auto and isinstance(value, str):
        return
    if any(value == lit and type(value) is type(lit) for lit in spec.also):
        return
    ok = _matches(value, spec)
    if ok:
        return
    raise ParamError(f"{owner}: parameter {key}={_show(value)} is invalid; expected {spec.expected()}")


def _matches(value: Any, spec: Param) -> bool:
    if spec.choices is not None:
        return any(value == c and type(value) is type(c) for c in spec.choices)
    if value is None:
        return False
    kind = spec.kind
    if kind == "any":
        return _in_range(value, spec) if _is_number(value) else True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and _in_range(value, spec)
    if kind == "float":
        return _is_number(value) and math.isfinite(float(value)) and _in_range(value, spec)
    if kind == "str":
        if not (isinstance(value, str) and value.strip()):
            return False
        return spec.pattern is None or re.fullmatch(spec.pattern, value) is not None
    if kind == "dict":
        return isinstance(value, Mapping)
    if kind == "list":
        if not isinstance(value, (list, tuple)) or not value:
            return False
        if spec.item_kind is None:
            return True
        item = Param(
            kind=spec.item_kind,
            min=spec.min,
            max=spec.max,
            exclusive_min=spec.exclusive_min,
            pattern=spec.pattern,
        )
        return all(_matches(v, item) for v in value)
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_range(value: Any, spec: Param) -> bool:
    if not _is_number(value):
        return True
    v = float(value)
    if not math.isfinite(v) and spec.kind != "any":
        return False
    if spec.min is not None and (v < spec.min or (spec.exclusive_min and v == spec.min)):
        return False
    return not (spec.max is not None and (v > spec.max or (spec.exclusive_max and v == spec.max)))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resolve(
    owner: str,
    defaults: Mapping[str, Any],
    given: Mapping[str, Any] | None,
    explicit: Mapping[str, Param] | None = None,
) -> dict[str, Any]:
    """Defaults overridden by ``given``: unknown keys and bad values are one-line usage errors."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ParamError(f"{owner} has no parameter(s) {unknown}; known: {known}")
    specs = specs_for(defaults, explicit)
    for key, value in given.items():
        check_value(owner, key, value, specs[key])
    # a copy of the defaults: an owner that changes a default list or dict in place changes its own only
    return {**copy.deepcopy(dict(defaults)), **given}


def describe(defaults: Mapping[str, Any], explicit: Mapping[str, Param] | None = None) -> dict[str, str]:
    """``{key: expected}`` for ``benchbed methods NAME`` (what each parameter accepts)."""
    return {key: spec.expected() for key, spec in specs_for(defaults, explicit).items()}
