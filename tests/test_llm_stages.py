"""Stages and the training loop: bit-identical resume with LoRA dropout, checkpoints between accumulation
steps, early stopping across a resume, stage blobs checked on load, the wall-clock cap off by default."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchbed.errors import ConfigError
from benchbed.llm import stages
from benchbed.llm.lora import LoraSpec, add_lora
from benchbed.llm.train import CHECKPOINT_NAME, TrainConfig, TrainResult, epoch_rng, train

N_ROWS, BATCH = 48, 6  # 8 batches per epoch


class _Rows(list):
    n_tokens = 0


class Killed(Exception):
    """Stands for a kill: raised from inside the loop."""


def _tiny_lora() -> tuple[torch.nn.Module, torch.Tensor]:
    """A 2-layer Llama with real peft LoRA (dropout 0.1 on q/v, drawn from torch's global RNG)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    model, _ = add_lora(base, LoraSpec(dropout=0.1))
    ids = torch.randint(5, 60, (N_ROWS, 6), generator=torch.Generator().manual_seed(1))
    return model, ids


class Problem:
    """A model, its batches, loss and eval; ``die_at`` = the loss call that raises (1-based), 0 = never."""

    def __init__(
        self, kind: str = "lora", die_at: int = 0, batches_form: str = "generator", metric: str = "travel"
    ) -> None:
        if kind == "lora":
            self.model, self.ids = _tiny_lora()
        else:  # an MLP with nn.Dropout: cheap, for the loop's bookkeeping tests
            torch.manual_seed(0)
            self.model = torch.nn.Sequential(
                torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1)
            )
            self.ids = torch.randn(N_ROWS, 6, generator=torch.Generator().manual_seed(1))
        self.kind = kind
        self.die_at = die_at
        self.calls = 0
        self.skips: list[int] = []
        self.form = batches_form
        self.sign = 1.0 if metric == "travel" else -1.0
        self.start = {n: p.detach().clone() for n, p in self.params().items()}

    def params(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def _order(self, epoch: int) -> list[_Rows]:
        order = epoch_rng(7, epoch).permutation(N_ROWS)
        return [_Rows(order[i : i + BATCH].tolist()) for i in range(0, N_ROWS, BATCH)]

    @property
    def batches(self) -> Any:
        if self.form == "list":
            return self._order
        if self.form == "skip":

            def with_skip(epoch: int, skip: int = 0) -> list[_Rows]:
                self.skips.append(skip)
                return self._order(epoch)[skip:]

            return with_skip

        def lazy(epoch: int) -> Iterator[_Rows]:
            yield from self._order(epoch)

        return lazy

    def loss(self, rows: _Rows) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.die_at:
            raise Killed
        x = self.ids[list(rows)]
        if self.kind == "lora":
            return self.model(input_ids=x, labels=x).loss
        return (self.model(x).squeeze(-1) - x.sum(-1)).pow(2).mean()

    def drift(self) -> float:
        """The distance travelled from the initial parameters ("travel": improves at every evaluation, so the
        final state is the last one) or minus it ("stay": only the first evaluation is best, so early stopping
        fires after ``patience`` evaluations). Deterministic: no scripted values that a resume would reset."""
        with torch.no_grad():
            dist = float(sum((p - self.start[n]).pow(2).sum() for n, p in self.params().items()))
        return self.sign * dist

    def run(self, cfg: TrainConfig, ckpt: Path | None, evals: bool = True) -> TrainResult:
        return train(
            self.params(),
            self.batches,
            N_ROWS // BATCH,
            self.loss,
            cfg,
            eval_fn=self.drift if evals else None,
            checkpoint_dir=ckpt,
            modules=[self.model],
        )

    def state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.params().items()}


def _perturb_global_rngs() -> None:
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)


def _assert_bit_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [n for n in a if not torch.equal(a[n], b[n])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"


def _differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[n], b[n]) for n in a)


def _history(res: TrainResult) -> list[tuple[Any, ...]]:
    return [(h["epoch"], h["eval"], h["metric"], h["steps"]) for h in res.history]


def _uninterrupted(cfg: TrainConfig, **kw: Any) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    p = Problem(**kw)
    torch.manual_seed(123)
    res = p.run(cfg, None)
    return res, p.state()


# --- resume -------------------------------------------------------------------------------------------------
LORA_CFG = TrainConfig(lr=5e-3, epochs=3, warmup_ratio=0.2, patience=100, checkpoint_every=2)


def test_lora_dropout_is_live_so_the_resume_test_can_see_the_rng():
    _, a = _uninterrupted(LORA_CFG)
    p = Problem()
    torch.manual_seed(124)  # another dropout stream from the same start
    p.run(LORA_CFG, None)
    assert _differs(a, p.state())


def test_resume_mid_epoch_with_lora_dropout_is_bit_identical(tmp_path: Path):
    full, expected = _uninterrupted(LORA_CFG)

    p = Problem(die_at=8 + 6)  # epoch 2, batch 6: checkpoint at step 12 (batch 4), batch 5 is replayed
    torch.manual_seed(123)
    with pytest.raises(Killed):
        p.run(LORA_CFG, tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).is_file()

    p = Problem()  # a fresh process: rebuilt model, and a different global RNG state
    _perturb_global_rngs()
    resumed = p.run(LORA_CFG, tmp_path)
    assert resumed.resumed and resumed.resumed_at == {"epoch": 1, "batch": 4, "steps": 12}
    assert resumed.steps == full.steps == 24 and resumed.rows == full.rows
    assert _history(resumed) == _history(full)
    _assert_bit_equal(p.state(), expected)
    # the RNG after training is the uninterrupted run's too (a following stage draws the same numbers)
    p2 = Problem()
    torch.manual_seed(123)
    p2.run(LORA_CFG, None)
    after_full = torch.rand(3)
    p3 = Problem(die_at=5)
    torch.manual_seed(123)
    with pytest.raises(Killed):
        p3.run(LORA_CFG, tmp_path / "again")
    _perturb_global_rngs()
    Problem().run(LORA_CFG, tmp_path / "again")
    assert torch.equal(torch.rand(3), after_full)


def test_without_the_rng_in_the_checkpoint_the_resumed_run_differs(tmp_path: Path):
    """The negative control: the same resume with the saved RNG removed is not bit-identical."""
    _, expected = _uninterrupted(LORA_CFG)
    p = Problem(die_at=8 + 6)
    torch.manual_seed(123)
    with pytest.raises(Killed):
        p.run(LORA_CFG, tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    saved = torch.load(path, weights_only=False)
    del saved["rng"]
    torch.save(saved, path)
    p = Problem()
    _perturb_global_rngs()
    p.run(LORA_CFG, tmp_path)
    assert _differs(p.state(), expected)


def test_resume_between_accumulation_steps_restores_the_pending_gradients(tmp_path: Path):
    # 8 batches, grad_accum 3: steps after batches 3, 6, 8; evaluations after batches 3, 5, 8. With periodic
    # checkpoints off, the last checkpoint before batch 6 of epoch 2 is the evaluation after batch 5, which
    # holds the gradients of batches 4 and 5 not yet applied.
    cfg = TrainConfig(lr=5e-3, epochs=2, grad_accum=3, evals_per_epoch=3, patience=100, checkpoint_every=0)
    full, expected = _uninterrupted(cfg, batches_form="skip")
    p = Problem(die_at=8 + 6, batches_form="skip")
    torch.manual_seed(123)
    with pytest.raises(Killed):
        p.run(cfg, tmp_path)
    saved = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert saved["state"]["batch"] == 5 and saved["grads"]  # mid-accumulation, gradients pending
    p = Problem(batches_form="skip")
    _perturb_global_rngs()
    resumed = p.run(cfg, tmp_path)
    assert p.skips == [5]  # the batches function was asked to skip, not replayed
    assert resumed.resumed_at == {"epoch": 1, "batch": 5, "steps": 4}
    assert resumed.steps == full.steps == 6 and _history(resumed) == _history(full)
    _assert_bit_equal(p.state(), expected)
    # dropping the pending gradients would lose batches 4 and 5: the control differs
    del saved["grads"]
    torch.save(saved, tmp_path / CHECKPOINT_NAME)
    p = Problem(batches_form="skip")
    p.run(cfg, tmp_path)
    assert _differs(p.state(), expected)


def test_early_stopping_state_and_history_survive_a_resume(tmp_path: Path):
    # two evaluations per epoch, patience 3: best at the first, stop at the fourth (epoch 2, eval 2)
    cfg = TrainConfig(lr=0.02, epochs=4, evals_per_epoch=2, patience=3, checkpoint_every=1)
    full, expected = _uninterrupted(cfg, kind="mlp", batches_form="list", metric="stay")
    assert full.stopped == "early-stop" and full.best_at == (0, 0) and len(full.history) == 4
    assert full.epochs_run == 2 and full.steps == 16
    p = Problem(kind="mlp", die_at=8 + 3, batches_form="list", metric="stay")  # after 2 evals, 1 bad
    torch.manual_seed(123)
    with pytest.raises(Killed):
        p.run(cfg, tmp_path)
    p = Problem(kind="mlp", batches_form="list", metric="stay")
    _perturb_global_rngs()
    resumed = p.run(cfg, tmp_path)
    assert resumed.resumed_at == {"epoch": 1, "batch": 2, "steps": 10}
    assert (resumed.stopped, resumed.best_at, resumed.best_metric) == (
        full.stopped,
        full.best_at,
        full.best_metric,
    )
    assert _history(resumed) == _history(full)  # history before the kill kept, the bad count too
    _assert_bit_equal(p.state(), expected)  # the best state (from before the kill) restored at the end


def test_resume_of_a_finished_run_returns_its_result(tmp_path: Path):
    cfg = TrainConfig(lr=0.02, epochs=1, checkpoint_every=1)
    p = Problem(kind="mlp")
    first = p.run(cfg, tmp_path)
    again = Problem(kind="mlp")
    res = again.run(cfg, tmp_path)
    assert res.resumed and res.resumed_at == {"epoch": 1, "batch": 0, "steps": 8} and again.calls == 0
    assert res.best_metric == first.best_metric
    _assert_bit_equal(again.state(), p.state())


def test_checkpoint_of_another_configuration_is_a_one_line_error(tmp_path: Path):
    p = Problem(kind="mlp", die_at=3)
    with pytest.raises(Killed):
        p.run(TrainConfig(epochs=1), tmp_path)
    with pytest.raises(ConfigError, match=r"written for other grad_accum .* delete .* from scratch") as e:
        Problem(kind="mlp").run(TrainConfig(epochs=1, grad_accum=2), tmp_path)
    assert "\n" not in str(e.value)


# --- budgets ------------------------------------------------------------------------------------------------
def test_wall_clock_cap_is_off_by_default_and_flags_the_result_when_it_fires():
    assert TrainConfig().max_seconds is None
    plain = Problem(kind="mlp").run(TrainConfig(epochs=1), None)
    assert plain.stopped == "epochs" and not plain.time_capped and plain.steps == 8
    capped = Problem(kind="mlp").run(TrainConfig(epochs=3, max_seconds=0.0), None)
    assert capped.stopped == "time-budget" and capped.time_capped
    assert capped.steps == 1 and capped.epochs_run == 1 and len(capped.history) == 1  # evaluated on stopping
    assert capped.as_dict()["time_capped"] is True


# --- stages on disk -----------------------------------------------------------------------------------------
def _saved_stage(tmp_path: Path) -> stages.Stage:
    st = stages.stage(tmp_path, "lora-text", {"split": "abc", "seed": 0})
    st.save({"lora": {"w": torch.arange(1000, dtype=torch.float32)}}, {"stage": "lora-text", "steps": 3})
    return st


def test_stage_keys_are_unchanged():
    st = stages.stage(Path("/c"), "lora-text", {"split": "abc", "seed": 0})
    # the hash of existing caches: stable_hash(identity, length=16) of sorted compact JSON
    assert st.key == "5050c498a6280bce" and st.dir == Path("/c/llm-stages/lora-text-5050c498a6280bce")


def test_stage_roundtrip_checks_the_blob_hash(tmp_path: Path):
    st = _saved_stage(tmp_path)
    assert st.done and st.meta() == {"stage": "lora-text", "steps": 3}  # the hash stays out of meta()
    assert "stage_sha256" in (st.dir / "meta.json").read_text()
    blob = st.load()
    assert torch.equal(blob["lora"]["w"], torch.arange(1000, dtype=torch.float32))
    assert blob["meta"] == {"stage": "lora-text", "steps": 3}


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_stage_blob_is_a_one_line_error_naming_the_folder(tmp_path: Path, damage: str):
    st = _saved_stage(tmp_path)
    path = st.dir / stages.STAGE_FILE
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # same size, one byte of a tensor changed: torch.load would succeed with wrong weights
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        ConfigError, match=r"stage lora-text in .*corrupt or truncated.*delete that folder"
    ) as e:
        st.load()
    assert "\n" not in str(e.value) and str(st.dir) in str(e.value)


def test_a_stage_from_before_the_hash_still_loads_and_an_unreadable_one_is_an_error(tmp_path: Path):
    st = stages.stage(tmp_path, "old", {"v": 1})
    st.dir.mkdir(parents=True)
    torch.save({"lora": {"w": torch.ones(2)}, "meta": {"stage": "old"}}, st.dir / stages.STAGE_FILE)
    (st.dir / "meta.json").write_text('{"stage": "old"}')
    assert torch.equal(st.load()["lora"]["w"], torch.ones(2))
    (st.dir / stages.STAGE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"stage old in .*stage\.pt cannot be read.*delete that folder"):
        st.load()


def test_run_or_load_trains_once_then_loads(tmp_path: Path):
    st = stages.stage(tmp_path, "s", {"k": 1})
    loaded: list[dict[str, Any]] = []

    def train_fn(ckpt_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        assert ckpt_dir == st.dir
        (ckpt_dir / CHECKPOINT_NAME).parent.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / CHECKPOINT_NAME).write_bytes(
            b"x"
        )  # a training checkpoint: removed once the stage is saved
        return {"w": torch.ones(3)}, {"steps": 5}

    first = stages.run_or_load(st, train_fn, loaded.append)
    assert not first.loaded and first.info() == {"steps": 5, "loaded": False, "dir": str(st.dir)}
    assert not (st.dir / CHECKPOINT_NAME).exists() and loaded == []

    def no_training(_d: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        raise AssertionError("a finished stage must not train again")

    second = stages.run_or_load(st, no_training, loaded.append)
    assert second.loaded and second.meta == {"steps": 5} and torch.equal(loaded[0]["w"], torch.ones(3))


def test_lr_schedules_follow_their_papers_and_a_bad_name_is_refused() -> None:
    """cosine (CoLLM/TALLRec), linear decay (RA-Rec §4.1.4), constant (CLLM4Rec's code) after warmup."""
    from benchbed.errors import ConfigError
    from benchbed.llm.train import make_scheduler

    def lrs(schedule: str) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, 10, 0.2, schedule)
        out = []
        for _ in range(10):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    cos, lin, const = lrs("cosine"), lrs("linear"), lrs("constant")
    assert cos[:2] == lin[:2] == const[:2] == [0.0, 0.5]  # the same 2-step warmup
    assert const[2:] == [1.0] * 8
    assert lin[2:] == pytest.approx([1 - k / 8 for k in range(8)])
    assert cos[5] > lin[5]  # cosine stays higher mid-way, then falls faster
    with pytest.raises(ConfigError, match="lr schedule 'step': expected one of cosine, linear, constant"):
        lrs("step")


# --- the stage component: a method declares its stages, the chain builds identities and keys ---------------
def _blob_stage(value: float) -> tuple[Any, Any]:
    """A train_fn that saves one tensor and counts its calls, and the load_fn that puts it back."""
    calls: list[float] = []
    held: dict[str, torch.Tensor] = {}

    def train_fn(_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        calls.append(value)
        return {"w": torch.full((2,), value)}, {"value": value}

    def load_fn(blob: dict[str, Any]) -> None:
        held["w"] = blob["w"]

    return (train_fn, load_fn), (calls, held)


def test_a_chain_keys_each_stage_on_the_context_its_reads_and_the_stages_it_builds_on(tmp_path: Path):
    context = stages.run_context("split1", {"id": "tiny", "revision": "r", "dtype": "float32"}, 0, v=1)
    first = stages.StageSpec("first", {"lr": 0.1})
    second = stages.StageSpec("second", {"epochs": 2}, after={"after": "first"})
    chain = stages.StageChain(tmp_path, context)
    (t1, l1), _ = _blob_stage(1.0)
    (t2, l2), _ = _blob_stage(2.0)
    a, b = chain.run(first, t1, l1), chain.run(second, t2, l2)
    # the identity is the context, the reads, and the earlier stage's key under the declared field
    assert chain.identity(second) == {**context, "epochs": 2, "after": a.key}
    assert a.key == stages.stage(tmp_path, "first", {**context, "lr": 0.1}).key
    assert b.stage.dir.name == f"second-{b.key}" and not a.loaded and not b.loaded

    # a changed read of the first stage changes its key AND the key of the stage built on it
    other = stages.StageChain(tmp_path, context)
    (t3, l3), _ = _blob_stage(3.0)
    (t4, l4), (calls4, _) = _blob_stage(4.0)
    a2 = other.run(stages.StageSpec("first", {"lr": 0.2}), t3, l3)
    b2 = other.run(second, t4, l4)
    assert a2.key != a.key and b2.key != b.key and calls4 == [4.0]

    # the same declarations in a new chain load both stages, and their log entries say so
    again = stages.StageChain(tmp_path, context)
    (t5, l5), (calls5, held5) = _blob_stage(5.0)
    r1 = again.run(first, t5, l5)
    r2 = again.run(second, t5, l5)
    assert r1.loaded and r2.loaded and calls5 == [] and torch.equal(held5["w"], torch.full((2,), 2.0))
    assert r2.log_entry() == {"stage": "second", "key": b.key, "cached": True, "value": 2.0}
    assert b.log_entry() == {"key": b.key, "cached": False, "value": 2.0}


def test_a_chain_refuses_an_unrun_upstream_and_a_read_that_shadows_the_context(tmp_path: Path):
    chain = stages.StageChain(tmp_path, {"split": "s", "seed": 0})
    with pytest.raises(ConfigError, match="builds on first, which has not run"):
        chain.stage(stages.StageSpec("second", after={"after": "first"}))
    with pytest.raises(ConfigError, match="'seed' is both in the run context and the stage"):
        chain.stage(stages.StageSpec("s1", {"seed": 1}))
    chain.skip(stages.StageSpec("first", {}))
    with pytest.raises(ConfigError, match="'stage1' is both a read and an upstream stage's key"):
        chain.stage(stages.StageSpec("second", {"stage1": "none"}, after={"stage1": "first"}))


def test_a_skipped_stage_still_keys_the_stages_after_it_and_a_folder_prefix_names_the_cache(tmp_path: Path):
    chain = stages.StageChain(tmp_path, {"split": "s"})
    skipped = chain.skip(stages.StageSpec("warmup", {"epochs": 0}))
    (t, load), (calls, _) = _blob_stage(1.0)
    run = chain.run(stages.StageSpec("main", {}, after={"after": "warmup"}, folder="main-t1"), t, load)
    assert chain.identity(run.spec)["after"] == skipped.key and calls == [1.0]
    assert run.stage.dir.name.startswith("main-t1-") and chain.key("main") == run.key
    assert stages.stage_seed(run.key) == int(run.key[:8], 16)


def test_budget_profiles_resolve_auto_values_overrides_and_explicit_parameters():
    from benchbed.llm.budget import BudgetProfiles, device_profile, resolve

    profiles = BudgetProfiles(
        {"cpu": {"epochs": 1, "rows": 10}, "gpu": {"epochs": 3, "rows": 0}},
        labels={"gpu": "gpu (paper schedule)"},
        as_int=True,
        flag_auto=True,
    )
    params = {"epochs": "auto", "rows": 7.0}
    assert profiles.resolve(params, {}, "cpu") == {
        "profile": "cpu", "epochs": 1, "epochs_auto": True, "rows": 7, "rows_auto": False,
    }  # fmt: skip
    # an override (a suite's budget) wins over the profile, an explicit parameter over both
    assert profiles.resolve(params, {"epochs": 2, "rows": 99}, "gpu")["epochs"] == 2
    assert profiles.resolve(params, {"rows": 99}, "gpu")["rows"] == 7
    assert profiles.resolve(params, {}, "gpu")["profile"] == "gpu (paper schedule)"
    profiles_by_place = [
        device_profile(True),
        device_profile(True, encoder=True),
        device_profile(False, encoder=True),
    ]
    assert profiles_by_place == ["cpu", "cpu-encoder", "gpu"]
    # the CTR recipe's profiles: a pretrained encoder on CPU gets its own, measured one
    assert resolve({}, {}, True, encoder=True)["max_train_rows"] == 2048
    assert resolve({}, {}, True)["max_train_rows"] == 4000 and resolve({}, {}, False)["max_train_rows"] == 0
