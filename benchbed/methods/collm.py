"""CoLLM (seed 002): collaborative embeddings mapped by an MLP into the LLM's token space.

- CIE = a collaborative model's user/item representations (``cf``: mf | lightgcn | sasrec | din, exported by
  the run's embedding source (``RunContext.embeddings``) and cached, or a ``.npz`` file with ``user``/``item``
  arrays aligned with benchbed ids) + MLP d -> mlp_ratio*d -> hidden with ReLU (the paper: 10x).
- Prompt: the bank's ``cf`` view; ``{user_emb}``/``{item_emb}`` are one position each, overwritten by the
  mapped vectors (``benchbed.llm.injectors.prompts``).
- Tuning (``tuning``): ``default`` = two steps, step 1 = the TALLRec stage (LoRA on text-only prompts, shared
  with ``tallrec`` through the stage cache), step 2 = LoRA and CF model frozen, only the MLP trained on the
  full prompt. ``t1``: step 2 also tunes the CF representations from their pretrained values; ``t2``: from
  scratch; ``t3``: one step, LoRA and MLP together on the full prompt (CF frozen). For MF the representation
  tables are the CF model itself; for LightGCN/SASRec/DIN t1/t2 tune their exported output representations.
- Companions: running ``collm`` also runs (or reuses) ``tallrec`` and the CF model with the same split and
  seed (``companions()``), so its leaderboard compares the three.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from benchbed.api import RunContext
from benchbed.cards import MethodCard, ctr_llm
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.injectors.prompts import Batch
from benchbed.llm.lora import add_lora, count_trainable, load_lora_state, lora_state
from benchbed.llm.recipes.ctr import TEXT_STAGE_KEYS, LoraPromptParams, Prepared, PromptCTRMethod
from benchbed.llm.stages import StageChain, StageSpec
from benchbed.llm.yesno.scorer import Rows
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param

TUNINGS = ("default", "t1", "t2", "t3")
# what the run record keeps of the CF export's manifest
MANIFEST_KEYS = (
    "model",
    "params",
    "params_hash",
    "seed",
    "task",
    "split_hash",
    "dims",
    "fit_seconds",
    "path",
)
CF_MODELS = ("mf", "lightgcn", "sasrec", "din")


class CIE(nn.Module):
    """Collaborative information encoder: representation tables + the mapping MLP g_phi."""

    def __init__(
        self, user: np.ndarray, item: np.ndarray, hidden: int, ratio: int, *, tune_tables: bool, scratch: bool
    ) -> None:
        super().__init__()
        self.user = nn.Embedding.from_pretrained(
            torch.as_tensor(user, dtype=torch.float32), freeze=not tune_tables
        )
        self.item = nn.Embedding.from_pretrained(
            torch.as_tensor(item, dtype=torch.float32), freeze=not tune_tables
        )
        if scratch:
            for table in (self.user, self.item):
                nn.init.normal_(table.weight, std=float(table.weight.std().clamp(min=1e-3)))
        d_user, d_item = user.shape[1], item.shape[1]
        # one mapping for users and items (the paper's g_phi); a second input layer only when dims differ
        self.mlp = nn.Sequential(
            nn.Linear(d_item, ratio * d_item), nn.ReLU(), nn.Linear(ratio * d_item, hidden)
        )
        self.user_in = None if d_user == d_item else nn.Linear(d_user, d_item, bias=False)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.user(users)
        if self.user_in is not None:
            u = self.user_in(u)
        return self.mlp(u), self.mlp(self.item(items))


@dataclass(frozen=True)
class CoLLMParams(LoraPromptParams):
    """TALLRec's training settings (step 1) plus the CF model and the mapping (step 2)."""

    # mf | lightgcn | sasrec | din (a companion run), or a .npz file with user/item arrays (opened and checked
    # before any work: preflight)
    cf: str = param(
        "mf",
        Param(
            kind="str",
            pattern=rf"(?:{'|'.join(CF_MODELS)})|.+\.npz",
            help="mf | lightgcn | sasrec | din | a .npz file",
        ),
    )
    # passed to the CF model (e.g. {"embedding_size": 256})
    cf_params: dict[str, Any] = param(
        {}, Param(kind="dict", help="parameters of the cf model (checked by it before any work)")
    )
    tuning: str = param("default", Param(kind="str", choices=TUNINGS))  # default (two-step) | t1 | t2 | t3
    lr_cie: float = 1e-2  # step-2 lr (CoLLM code: Amazon-Book with MF/LightGCN/DIN 1e-2; ML-1M 1e-3)
    mlp_ratio: int = 10  # hidden layer = 10 x input size (paper)
    # negative control: CF rows permuted across users and across items (seeded), so the vectors keep
    # their distribution but no longer belong to their ids; the step-2 stage is keyed by their content
    permute_cf: bool = False


class CoLLM(PromptCTRMethod):
    """CoLLM: a CF model's user/item embeddings mapped by an MLP into the prompt; LoRA from tallrec."""

    name: ClassVar[str] = "collm"
    card: ClassVar[MethodCard] = ctr_llm(
        "CoLLM (Zhang et al., seed 002)",
        "slot",
        "decoder-or-encoder",
        ("tuning=t1", "tuning=t2", "tuning=t3", "cf=lightgcn|sasrec|din", "permute_cf"),
        "zyang1580/CoLLM",
    )
    view: ClassVar[str] = "cf"
    shared_slots: ClassVar[tuple[str, ...]] = ("user_emb",)  # the user vector is CIE(user id) only
    needs_decoder: ClassVar[bool] = False  # an encoder reads the answer at [MASK] (yesno.masked_head)
    Params: ClassVar[type[ParamSet]] = CoLLMParams
    p: CoLLMParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # tuning, cf and cf_params are declared in param_specs
        self.cie: CIE | None = None

    def companions(self) -> list[tuple[str, dict[str, Any]]]:
        """(method, params) the runner runs first with the same dataset/split/seed: the CF model whose
        embeddings CoLLM maps (when it is a benchbed method) and ``tallrec`` with the step-1 parameters, so it
        reuses the same cached stage. Only non-default values are passed, so the records match plain runs."""
        from benchbed.methods.tallrec import TALLRec

        out: list[tuple[str, dict[str, Any]]] = []
        cf = self.p.cf
        if cf in CF_MODELS:
            out.append((cf, dict(self.p.cf_params)))
        keys = (*TEXT_STAGE_KEYS, "eval_unseen")
        shared = {k: self.params[k] for k in keys if self.params[k] != TALLRec.defaults[k]}
        out.append(("tallrec", shared))
        return out

    # --- fit ------------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        self.setup(split, ctx)
        self.resolve_budget(ctx)
        user, item, manifest = self.cf_embeddings(split, ctx)
        prep = self.prepare_rows(split, ctx.seed)
        self.announce_budget(prep, ctx)
        tuning = self.p.tuning
        info: dict[str, Any] = {"cf": manifest}
        chain = self.stage_chain(split, ctx)
        if tuning == "t3":
            torch.manual_seed(ctx.seed)
            self.model, lora_info = add_lora(self.backbone.model, self.lora_spec())  # type: ignore[union-attr]
            self.backbone_info["lora_targets"] = lora_info.targets
        else:
            info["stage1"] = self.text_stage(chain, ctx, prep)
        self.cie = self._build_cie(user, item, ctx.seed)
        info["stage2"] = self._cie_stage(chain, ctx, prep, manifest)
        self._freeze_after_fit()
        self.fit_info = info

    def _cie_stage(
        self, chain: StageChain, ctx: RunContext, prep: Prepared, manifest: dict[str, Any]
    ) -> dict[str, Any]:
        """CoLLM's step 2: the mapping (CIE) tuned on prompts whose slots hold the mapped CF vectors, with
        the step-1 LoRA frozen (t3: both tuned together from scratch; t1/t2: the CF tables too)."""
        assert self.cie is not None
        tuning = self.p.tuning
        reads = {
            "params": self.stage_params((*TEXT_STAGE_KEYS, "tuning", "lr_cie", "mlp_ratio")),
            "stage": "cie",
            **({"stage1": "none"} if tuning == "t3" else {}),
            "cf": manifest["hash"],
            "bank": self.bank.hash("cf"),
        }
        spec = StageSpec(
            "cie", reads, after={} if tuning == "t3" else {"stage1": "lora-text"}, folder=f"cie-{tuning}"
        )
        st = chain.stage(spec)
        cie = self.cie

        def train_fn(ckpt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            ctx.say(f"collm: step 2 ({self._step2_text()}) training -> {ckpt}")
            extra = {f"cie.{n}": p for n, p in cie.named_parameters() if p.requires_grad}
            modules: list[nn.Module] = [cie, self.model] if tuning == "t3" else [cie]
            result = self.train_prompts(
                self.model,
                prep,
                view="cf",
                vector_fn=self.slot_vectors,
                ctx=ctx,
                ckpt=ckpt,
                modules=modules,
                extra_params=extra,
                lr=self.p.lr if tuning == "t3" else self.p.lr_cie,
            )
            meta = {"stage": f"cie-{tuning}", "key": st.key, "train": result.as_dict()}
            blob = {"cie": {k: v.detach().cpu() for k, v in cie.state_dict().items()}}
            if tuning == "t3":
                blob["lora"] = lora_state(self.model)
            return blob, meta

        def load_fn(blob: dict[str, Any]) -> None:
            cie.load_state_dict(blob["cie"])
            if tuning == "t3":
                load_lora_state(self.model, blob["lora"])

        run = chain.run(spec, train_fn, load_fn)
        if run.loaded:
            ctx.say(f"collm: step 2 ({tuning}) loaded from {st.dir}")
        return run.outcome.info()

    def _freeze_after_fit(self) -> None:
        """Everything frozen and in eval mode for scoring; the trainable count the record states."""
        assert self.cie is not None
        for p in [*self.cie.parameters(), *self.model.parameters()]:
            p.requires_grad_(False)
        self.cie.eval()
        self.model.eval()
        lora_n = sum(p.numel() for n, p in self.model.named_parameters() if "lora_" in n)
        tables = self.cie.user.weight.numel() + self.cie.item.weight.numel()
        self._trainable = (
            lora_n
            + sum(p.numel() for p in self.cie.mlp.parameters())
            + (tables if self.p.tuning in ("t1", "t2") else 0)
        )

    def _step2_text(self) -> str:
        return {
            "default": "MLP only; LoRA and CF frozen",
            "t1": "MLP + CF representations from pretrained; LoRA frozen",
            "t2": "MLP + CF representations from scratch; LoRA frozen",
            "t3": "one step: LoRA + MLP; CF frozen",
        }[self.p.tuning]

    def _build_cie(self, user: np.ndarray, item: np.ndarray, seed: int) -> CIE:
        assert self.backbone is not None
        tuning = self.p.tuning
        torch.manual_seed(seed + 1)
        cie = CIE(
            user,
            item,
            self.backbone.hidden_size,
            self.p.mlp_ratio,
            tune_tables=tuning in ("t1", "t2"),
            scratch=tuning == "t2",
        )
        if tuning == "t3":
            for n, p in self.model.named_parameters():
                p.requires_grad_("lora_" in n)
        else:
            for p in self.model.parameters():
                p.requires_grad_(False)
        assert count_trainable(cie) > 0
        return cie.to(self.backbone.device)

    def cf_embeddings(self, split: Split, ctx: RunContext) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """User and item representation matrices aligned with the split's dense ids (checked)."""
        cf = self.p.cf
        if cf.endswith(".npz"):
            path = Path(cf)
            if not path.is_file():
                raise ConfigError(f"method 'collm': cf file {cf} not found")
            with np.load(path) as z:
                if "user" not in z or "item" not in z:
                    raise ConfigError(f"method 'collm': cf file {cf} must hold arrays 'user' and 'item'")
                user, item = np.asarray(z["user"]), np.asarray(z["item"])
            manifest: dict[str, Any] = {"model": "file", "path": str(path.resolve())}
        else:
            emb = ctx.embedding_source(self.name).get(
                split, cf, params=dict(self.p.cf_params) or None, seed=ctx.seed, feedback=ctx.feedback
            )
            # for sequence models (SASRec, DIN) the export's user rows are already their sequence
            # representation of the user's training history, as CoLLM feeds it to the LLM
            user, item = np.asarray(emb.user), np.asarray(emb.item)
            manifest = {k: v for k, v in (emb.manifest or {}).items() if k in MANIFEST_KEYS}
            manifest.setdefault("model", cf)
        check_alignment(cf, user, item, split)
        if self.p.permute_cf:
            rng = np.random.default_rng([ctx.seed, 41])
            user, item = user[rng.permutation(len(user))], item[rng.permutation(len(item))]
            manifest["permuted"] = True
        # the step-2 stage is keyed by the embeddings' content, so retrained embeddings retrain the mapping
        digest = hashlib.sha256(np.ascontiguousarray(user, np.float32).tobytes())
        digest.update(np.ascontiguousarray(item, np.float32).tobytes())
        manifest["hash"] = digest.hexdigest()[:16]
        return user.astype(np.float32), item.astype(np.float32), manifest

    # --- scoring --------------------------------------------------------------------------------------------
    def slot_vectors(self, rows: Rows, batch: Batch) -> dict[int, torch.Tensor]:
        assert self.cie is not None and self.backbone is not None
        idx = batch.rows
        dev = self.backbone.device
        eu, ei = self.cie(
            torch.as_tensor(rows.users[idx], device=dev), torch.as_tensor(rows.items[idx], device=dev)
        )
        return {0: eu, 1: ei}

    def vectors_for(self, rows: Rows) -> Any:
        return lambda batch: self.slot_vectors(rows, batch)


def check_alignment(cf: str, user: np.ndarray, item: np.ndarray, split: Split) -> None:
    """One-line error when CF embeddings were not built for this split's ids."""
    if user.ndim != 2 or item.ndim != 2:
        raise ConfigError(
            f"CF model {cf!r}: embeddings must be 2-D (rows x dims); got user {user.shape}, item {item.shape}"
        )
    if user.shape[0] != split.n_users or item.shape[0] != split.n_items:
        raise ConfigError(
            f"CF model {cf!r}: embeddings have {user.shape[0]} users x {item.shape[0]} items but split "
            f"{split.data.name!r} has {split.n_users} x {split.n_items}; export them for this split "
            f"(--cf mf) or pass matching arrays"
        )
    if not (np.isfinite(user).all() and np.isfinite(item).all()):
        raise ConfigError(f"CF model {cf!r}: embeddings contain NaN or inf")
