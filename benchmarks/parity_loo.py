"""Leave-one-out parity with RecBole on ml-100k: benchbed's split and task against RecBole's own pipeline.

Run: ``python benchmarks/parity_loo.py [--epochs 20] [--seed 0] [--models pop,mf-bpr]``. Not a test. For each
model it prints HR@10 / NDCG@10 on the test users of

- benchbed: ``benchbed run --task topk --split leave-one-out`` on ml-100k, tie rule ``file`` (the default
  since data layer 2) and ``item`` (the rule before it: highest item id among same-second ratings);
- RecBole 1.2.1 alone on its own ``ml-100k.inter``: ``eval_args: {split: {LS: valid_and_test}, order: TO,
  group_by: user, mode: full}``, which stable-sorts by time (file order among ties) and holds out each user's
  last two interactions, full ranking with the user's earlier items masked.

Same seed, same epochs, RecBole's defaults for everything else on both sides (BPR: lr 1e-3, d 64, batch
2048, patience 10 on NDCG@10). For ``pop`` a fourth column computes it by hand with pandas on RecBole's LS
split (train counts, the user's train + valid items masked, ties by item id): RecBole's own ``Pop`` (which
counts the item of every row its loader yields, sampled negatives included) lands elsewhere, with or
without sampled negatives, for a reason not pinned down here, so it is no reference for the split.
It also prints, per tie rule, how many test items differ from RecBole's and the mean training popularity of
the test items (the bias the ``item`` rule introduced, issue 13).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

RECBOLE_MODEL = {"pop": "Pop", "mf-bpr": "BPR"}


def recbole_own(model: str, epochs: int, seed: int) -> dict[str, float]:
    """RecBole's own LS split and full-ranking evaluation of ``model`` on its packaged ml-100k."""
    from benchbed.baselines.recbole_containment import recbole_scope

    work = Path(tempfile.mkdtemp(prefix="parity-"))
    spec = importlib.util.find_spec("recbole")
    assert spec is not None and spec.submodule_search_locations
    data_path = Path(list(spec.submodule_search_locations)[0]) / "dataset_example"
    with recbole_scope(work):
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_seed

        config = Config(
            model=RECBOLE_MODEL[model],
            dataset="ml-100k",
            config_dict={
                "data_path": str(data_path),
                "gpu_id": "",
                "use_gpu": False,
                "checkpoint_dir": str(work / "saved"),
                "show_progress": False,
                "seed": seed,
                "reproducibility": True,
                "epochs": epochs,
                "eval_args": {
                    "split": {"LS": "valid_and_test"},
                    "order": "TO",
                    "group_by": "user",
                    "mode": "full",
                },
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "metrics": ["Hit", "NDCG"],
                "topk": [10],
                "valid_metric": "NDCG@10",
            },
        )
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        init_seed(config["seed"], config["reproducibility"])
        net = get_model(config["model"])(config, train._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        trainer.fit(train, valid, saved=True, show_progress=False)
        result = trainer.evaluate(test, load_best_model=True, show_progress=False)
        trainer.tensorboard.close()
    return {"hr@10": float(result["hit@10"]), "ndcg@10": float(result["ndcg@10"])}


def benchbed_run(model: str, tie_break: str, epochs: int, seed: int) -> dict[str, float]:
    """``benchbed run`` of ``model`` on ml-100k leave-one-out (top-K task) with the given tie rule."""
    from benchbed.config import RunConfig
    from benchbed.orchestration.runner import execute

    params: dict[str, Any] = {} if model == "pop" else {"epochs": epochs}
    config = RunConfig(
        method=model,
        dataset="ml-100k",
        task="topk",
        split="leave-one-out",
        split_params={"tie_break": tie_break},
        method_params=params,
        seed=seed,
        device="cpu",
    )
    metrics = execute(config, progress=False).record.metrics["all"]
    return {"hr@10": float(metrics["hr@10"]), "ndcg@10": float(metrics["ndcg@10"])}


def _recbole_ls_frames() -> tuple[Any, Any, Any]:
    """RecBole's LS split of its ml-100k file, written out: stable time sort, last = test, second = valid."""
    import pandas as pd

    spec = importlib.util.find_spec("recbole")
    assert spec is not None and spec.submodule_search_locations
    raw = pd.read_csv(
        Path(list(spec.submodule_search_locations)[0]) / "dataset_example/ml-100k/ml-100k.inter", sep="\t"
    )
    raw.columns = [c.split(":")[0] for c in raw.columns]
    ordered = raw.sort_values("timestamp", kind="stable").reset_index(drop=True)
    from_end = ordered.groupby("user_id").cumcount(ascending=False)
    return ordered[from_end >= 2], ordered[from_end == 1], ordered[from_end == 0]


def pop_by_hand() -> dict[str, float]:
    """Most-popular (train counts) HR@10 / NDCG@10 on RecBole's LS split, train + valid items masked."""
    import math

    import pandas as pd

    train, valid, test = _recbole_ls_frames()
    counts = train["item_id"].value_counts()
    items = sorted(set(train["item_id"]) | set(valid["item_id"]) | set(test["item_id"]))
    score = pd.Series(0, index=items)
    score[counts.index] = counts.to_numpy()
    order = score.sort_values(ascending=False, kind="stable").index.to_numpy()  # ties: lower item id first
    seen = pd.concat([train, valid]).groupby("user_id")["item_id"].apply(set)
    hr = ndcg = 0.0
    for user, item in zip(test["user_id"], test["item_id"], strict=True):
        mask = seen.get(user, set())
        top = [x for x in order[: 10 + len(mask)] if x not in mask][:10]
        if item in top:
            hr += 1
            ndcg += 1 / math.log2(top.index(item) + 2)
    return {"hr@10": hr / len(test), "ndcg@10": ndcg / len(test)}


def test_item_bias() -> dict[str, dict[str, float]]:
    """Per tie rule: test items unlike RecBole's choice and the mean training popularity of the test items."""
    import numpy as np

    from benchbed.data.prepare import prepare_split

    last = _recbole_ls_frames()[2]
    theirs = set(zip(last["user_id"].astype(str), last["item_id"].astype(str), strict=True))
    out = {}
    for rule in ("file", "item"):
        split = prepare_split("ml-100k", "leave-one-out", {"tie_break": rule}).split
        users = split.data.users["raw_id"].to_numpy()[split.test["user"].to_numpy()]
        items = split.data.items["raw_id"].to_numpy()[split.test["item"].to_numpy()]
        ours = set(zip(users.astype(str), items.astype(str), strict=True))
        counts = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items)
        out[rule] = {
            "test items unlike RecBole's": float(len(ours - theirs)),
            "mean train popularity of test items": float(counts[split.test["item"].to_numpy()].mean()),
        }
    return out


test_item_bias.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="pop,mf-bpr")
    args = parser.parse_args()
    os.environ.setdefault("BENCHBED_RESULTS", tempfile.mkdtemp(prefix="parity-results-"))

    from rich.console import Console
    from rich.table import Table

    from benchbed.settings import Settings, set_settings

    set_settings(Settings.from_env())
    console = Console()
    bias = Table(title="ml-100k leave-one-out: which test items each tie rule picks")
    for col in ("tie rule", "test items unlike RecBole's (of 943)", "mean train popularity of test items"):
        bias.add_column(col)
    for rule, facts in test_item_bias().items():
        bias.add_row(rule, *(f"{v:.1f}" for v in facts.values()))
    console.print(bias)
    table = Table(title=f"HR@10 / NDCG@10, seed {args.seed}, at most {args.epochs} epochs (early stop 10)")
    columns = ("model", "benchbed tie=file", "benchbed tie=item", "RecBole LS valid_and_test", "by hand, LS")
    for col in columns:
        table.add_column(col)
    for model in args.models.split(","):
        cells = [benchbed_run(model, rule, args.epochs, args.seed) for rule in ("file", "item")]
        cells.append(recbole_own(model, args.epochs, args.seed))
        texts = [f"{c['hr@10']:.4f} / {c['ndcg@10']:.4f}" for c in cells]
        if model == "pop":
            hand = pop_by_hand()
            texts.append(f"{hand['hr@10']:.4f} / {hand['ndcg@10']:.4f}")
        table.add_row(model, *texts)
    console.print(table)


if __name__ == "__main__":
    main()
