"""Issue 22, item 2: a cached stage is reused only under the settings that trained it, for every registered
method that caches stages, on micro settings (tiny random-init backbones, a few dozen rows, one epoch).

Each parameter of the method is changed in turn (``stage_conformance``): either a stage it influences changes
its key, or the parameter moves no trained tensor at all (declared ``evaluation_only``, or inert in the micro
setting). A stage that keeps its key while its tensors change is the bug this test exists for: a shared cache
would hand the other setting's stage to the second run (cllm4rec's ``code_shift`` did, before issue 22).
The report of every parameter is printed (``pytest -s``) so the outcome of each can be read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from generative_synth import save_word_backbone, write_synthetic  # noqa: E402
from stage_conformance import Case, conformance, report  # noqa: E402
from test_baselines_support import leave_last_out  # noqa: E402
from test_method_cllm4rec import TOPK, planted_reviews, word_gpt2  # noqa: E402
from test_method_rarec import planted as planted_rarec  # noqa: E402

from benchbed.api import RunContext, TaskSetup  # noqa: E402
from benchbed.data.prepare import prepare_split  # noqa: E402
from benchbed.item2text.synthetic import GENRE_WORDS, SYLLABLES, planted_data  # noqa: E402
from benchbed.item2text.synthetic import planted_split as i2t_split  # noqa: E402
from benchbed.llm.synthetic import planted_split  # noqa: E402
from benchbed.orchestration.embeddings import RegistryEmbeddings  # noqa: E402
from benchbed.prompts import BANK_DIR  # noqa: E402
from benchbed.tasks.generative import GenerativeTask  # noqa: E402
from benchbed.tasks.item2text import Item2TextTask  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _ctx(root: Path, setup: TaskSetup | None = None) -> RunContext:
    ctx = RunContext(setup=setup or TaskSetup(), seed=0, cache_dir=root / "cache", work_dir=root / "work")
    ctx.embeddings = RegistryEmbeddings(ctx)  # ID embeddings are cached by content, shared across the fits
    return ctx


def _fitter(split, ctx: RunContext) -> Callable[[object], None]:
    return lambda method: method.fit(split, ctx)  # type: ignore[attr-defined]


def _other_ctr_bank(root: Path) -> str:
    """The built-in CTR bank with its first template reworded: another bank, same shape."""
    bank = yaml.safe_load((BANK_DIR / "ctr.yaml").read_text(encoding="utf-8"))
    path = root / "ctr-other.yaml"
    text = yaml.safe_dump(bank)
    path.write_text(text.replace("Yes or No", "Yes or no", 1), encoding="utf-8")
    return str(path)


CTR_MICRO = {"epochs": 1, "max_train_rows": 32, "max_valid_rows": 16, "max_seconds": 0, "history_len": 2}
CTR_OVERRIDES = {"lora_targets": "q_proj", "train_templates": 5, "cf": "lightgcn", "cf_params": {"epochs": 3}}
GEN_MICRO = {"epochs": 1, "batch_size": 8, "max_train_examples": 16, "valid_users": 4, "max_seconds": 0}
I2T_MICRO = {"epochs": 1, "batch_size": 8, "max_train_examples": 16, "max_seconds": 0}
CF_OVERRIDES = {"cf_params": {"dim": 8, "iterations": 3}, "cf_model": "mf-bpr"}
CF_TOGETHER = {"cf_model": {"cf_params": {"dim": 8, "epochs": 1}}}  # mf-bpr's own parameters
ILM_OVERRIDES = {
    "encoder_heads": 2,  # the micro encoder is 64 wide: a divisor
    "encoder_width": 32,
    "compare_with": "i2t-floor",
    "semantic_fields": "title,genres",
    "stage1_text_fields": "title",
    "stage1_text_losses": "itc,itg",
}
ILM_MICRO = {"stage1_epochs": 1, "stage1_max_pairs": 16, "stage1_batch_size": 8, "stage2_epochs": 1}


def _ctr_cases(root: Path) -> dict[str, Case]:
    split = planted_split()
    fit = _fitter(split, _ctx(root))
    over = {**CTR_OVERRIDES, "bank": _other_ctr_bank(root)}
    cf = {"cf_params": {"epochs": 2}}
    return {
        "tallrec": Case("tallrec", "ctr", dict(CTR_MICRO), fit, over),
        "collm": Case("collm", "ctr", {**CTR_MICRO, **cf}, fit, over),
    }


def _cllm4rec_cases(root: Path) -> dict[str, Case]:
    split = planted_reviews(users_per_cluster=3)
    backbone = word_gpt2(root / "gpt2-words", pretrain_steps=0)
    params = {"backbone": backbone, "warmup_epochs": 1, "pretrain_epochs": 1, "finetune_epochs": 1}
    params |= {"batch_size": 8, "max_valid_users": 4}
    return {"cllm4rec": Case("cllm4rec", "topk", params, _fitter(split, _ctx(root, TOPK)))}


def _rarec_cases(root: Path) -> dict[str, Case]:
    split = leave_last_out(planted_rarec(n_users_per_sub=2))
    params = {"id_params": {"max_iter": 20, "eval_every": 20, "dim": 8, "hidden": 8}}
    params |= {"train_samples": 8, "batch_size": 4, "epochs": 1}
    over = {
        "id_params": {"max_iter": 30, "eval_every": 30, "dim": 8, "hidden": 8},
        "user_prompt": "Recommend:",
    }
    over["id_model"] = "mf-bpr"
    together = {"id_model": {"id_params": {"dim": 8, "epochs": 1}}}  # mf-bpr's own parameters
    return {"rarec": Case("rarec", "topk", params, _fitter(split, _ctx(root, TOPK)), over, together=together)}


def _generative_cases(root: Path) -> dict[str, Case]:
    data = write_synthetic(root / "data", n_users=40, n_clusters=2, cluster_size=6, min_len=5, max_len=7)
    backbone = save_word_backbone(root / "model", extra_words=("syn",), hidden=16, layers=1)
    split = prepare_split(str(data), "leave-one-out").split
    task = GenerativeTask(history_len=4)
    task.check_split(split)
    fit = _fitter(split, _ctx(root, task.method_setup(split)))
    base = {**GEN_MICRO, "backbone": str(backbone)}
    als = {"cf_params": {"dim": 8, "iterations": 2}}
    over = {**CF_OVERRIDES, "lora_targets": "q_proj"}
    return {
        "p5-random": Case("p5-random", "generative", dict(base), fit, over),
        "embedproj": Case("embedproj", "generative", {**base, **als}, fit, over, together=CF_TOGETHER),
        "ilm-generative": Case(
            "ilm",
            "generative",
            {**base, **als, **ILM_MICRO},
            fit,
            {**over, **ILM_OVERRIDES},
            together=CF_TOGETHER,
        ),
    }


def _item2text_cases(root: Path) -> dict[str, Case]:
    data = planted_data(n_items=60, n_clusters=3, n_users=60, per_user=8, noise=0.1, seed=0)
    split = i2t_split(data)
    extra = tuple(sorted({w.lower() for w in GENRE_WORDS} | set(SYLLABLES)))
    backbone = save_word_backbone(root / "model", extra_words=extra, hidden=16, layers=1)
    task = Item2TextTask(tasks="genres", test_items=0.5, valid_items=0.1, max_new_tokens=4)
    task.check_split(split)
    fit = _fitter(split, _ctx(root, task.method_setup(split)))
    base = {**I2T_MICRO, "backbone": str(backbone)}
    als = {"cf_params": {"dim": 8, "iterations": 2}}
    over = {**CF_OVERRIDES, "lora_targets": "q_proj"}
    cf = {"together": CF_TOGETHER}
    return {
        "i2t-text": Case("i2t-text", "item2text", dict(base), fit, over),
        "i2t-mlp1": Case("i2t-mlp1", "item2text", {**base, **als}, fit, over, **cf),
        "i2t-mlpn": Case("i2t-mlpn", "item2text", {**base, **als}, fit, over, **cf),
        "i2t-elm": Case(
            "i2t-elm", "item2text", {**base, **als, "stage1_epochs": 1, "stage2_epochs": 1}, fit, over, **cf
        ),
        "ilm-item2text": Case(
            "ilm", "item2text", {**base, **als, **ILM_MICRO}, fit, {**over, **ILM_OVERRIDES}, **cf
        ),
    }


BUILDERS = {
    # tallrec's only stage is collm's first, built by the same code; i2t-mlpn is i2t-mlp1 with N tokens
    "ctr": (_ctr_cases, ("collm",)),
    "cllm4rec": (_cllm4rec_cases, ("cllm4rec",)),
    "rarec": (_rarec_cases, ("rarec",)),
    "generative": (_generative_cases, ("p5-random", "embedproj", "ilm-generative")),
    "item2text": (_item2text_cases, ("i2t-text", "i2t-mlp1", "i2t-elm", "ilm-item2text")),
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Callable[[], dict[str, Case]]]:
    built: dict[str, dict[str, Case]] = {}

    def get(group: str) -> dict[str, Case]:
        if group not in built:
            built[group] = BUILDERS[group][0](tmp_path_factory.mktemp(f"conf-{group}"))
        return built[group]

    return get  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("group", "name"), [(g, n) for g, (_, names) in BUILDERS.items() for n in names], ids=lambda x: str(x)
)
def test_every_parameter_changes_the_key_of_each_stage_it_trains(cases, group: str, name: str) -> None:
    case = cases(group)[name]
    findings = conformance(case)
    text = report(case, findings)
    print(text)
    bad = [f for f in findings if f.outcome == "VIOLATION"]
    assert not bad, text
    # the check can tell: at least one parameter changed a key, and the re-fit was bit-identical
    assert findings[0].outcome == "inert" and any(f.outcome == "keyed" for f in findings), text


def test_the_check_finds_a_parameter_left_out_of_a_stage_identity(cases, monkeypatch) -> None:
    """The bug issue 22 found, planted back: cllm4rec's warm-up identity without ``code_shift``."""
    import benchbed.methods.cllm4rec.schedule as cllm4rec

    case = cases("cllm4rec")["cllm4rec"]
    monkeypatch.setattr(cllm4rec, "_code_shift", lambda params: {})
    findings = {f.param: f for f in conformance(case, only=["code_shift"])}
    assert findings["code_shift"].outcome == "VIOLATION"
    assert "cllm4rec-warmup" in findings["code_shift"].detail
