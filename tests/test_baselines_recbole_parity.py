"""BPR through benchbed's adapter vs plain RecBole on its own ``LS: valid_and_test`` split of ml-100k.

The benchbed split is leave-one-out over the same file with ties in time kept in file order, which is how
RecBole orders them, so both runs hold out the same items. Same seed, epochs and learning rate; the test
metrics must agree within seed noise (measured here: HR@10 0.100-0.117 over seeds 0-3 on both sides).

Why the tolerance catches a wrong split: training on a split that also contains the test rows gives
HR@10 ~0.15 (+0.05), and benchbed's own leave-one-out of ml-100k (ties broken by item id, 30% of test items
differ) gives ~0.07 (-0.03); both are outside it. The first assertion checks the rows themselves.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from test_baselines_support import leave_last_out, ml100k_recbole_order

from benchbed.api import RunContext, TaskSetup
from benchbed.baselines.recbole_containment import recbole_scope
from benchbed.methods import build_method
from benchbed.tasks.topk import TopKTask

TOPK = TaskSetup(task="topk", feedback="interactions")  # every training interaction a positive

EPOCHS, LR, SEED = 5, 0.01, 0


def _plain_recbole(tmp: Path) -> dict[str, float]:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import BPR
    from recbole.utils import get_trainer, init_seed

    with recbole_scope(tmp):
        config = Config(
            model="BPR",
            dataset="ml-100k",  # RecBole's own copy in its wheel
            config_dict={
                "eval_args": {
                    "split": {"LS": "valid_and_test"},
                    "order": "TO",
                    "group_by": "user",
                    "mode": "full",
                },
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "epochs": EPOCHS,
                "learning_rate": LR,
                "seed": SEED,
                "metrics": ["Hit", "NDCG"],
                "topk": [10],
                "valid_metric": "NDCG@10",
                "checkpoint_dir": str(tmp / "saved"),
                "show_progress": False,
                "gpu_id": "",
            },
        )
        init_seed(SEED, True)
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        init_seed(SEED, True)
        model = BPR(config, train._dataset)
        trainer = get_trainer(config["MODEL_TYPE"], "BPR")(config, model)
        trainer.fit(train, valid, saved=True, verbose=False)
        result = trainer.evaluate(test, load_best_model=True)  # torch.load shim: full checkpoint unpickle
        trainer.tensorboard.close()
    return {"hr@10": float(result["hit@10"]), "ndcg@10": float(result["ndcg@10"])}


@pytest.mark.slow
def test_bpr_through_benchbed_matches_plain_recbole(tmp_path: Path) -> None:
    split = leave_last_out(ml100k_recbole_order())
    method = build_method("mf-bpr", {"epochs": EPOCHS, "lr": LR})
    ctx = RunContext(setup=TOPK, seed=SEED)
    method.fit(split, ctx)

    # RecBole trained on exactly the split's rows (benchbed ids recovered through its token maps)
    session = method.session
    for stage, loader in (
        ("train", session.train_data),
        ("valid", session.valid_data),
        ("test", session.test_data),
    ):
        feat = loader._dataset.inter_feat
        users = session.dataset.id2token("user_id", feat["user_id"].numpy())
        items = session.dataset.id2token("item_id", feat["item_id"].numpy())
        got = Counter(zip(users.astype(int).tolist(), items.astype(int).tolist(), strict=True))
        frame = split.frames()[stage]
        assert got == Counter(zip(frame["user"].tolist(), frame["item"].tolist(), strict=True)), stage

    ours = TopKTask(ks=[10], metrics=["hr", "ndcg"]).evaluate(method, split, ctx).metrics["all"]
    plain = _plain_recbole(tmp_path)
    assert abs(ours["hr@10"] - plain["hr@10"]) <= 0.025, (ours, plain)
    assert abs(ours["ndcg@10"] - plain["ndcg@10"]) <= 0.015, (ours, plain)
    assert min(ours["hr@10"], plain["hr@10"]) > 0.05  # both learned: random ranking gives ~0.01 here
