#!/usr/bin/env bash
# Issue 26: TALLRec and CoLLM on the real pretrained MiniLM encoder, ml-100k temporal-window CTR, seeds 0-2.
# One process at a time (2 shared CPU cores). Per seed: `collm` runs its companions first (mf, whose embeddings
# it maps, and tallrec, whose LoRA stage is CoLLM's step 1 through the stage cache), then the negative control
# (CF rows permuted across users and items) reuses both. Budget: the cpu-encoder profile (benchbed.llm.budget)
# plus the parameters below; evals_per_epoch=4 records the learning curve (valid AUC every 512 rows).
#   BENCHBED_RESULTS=/tmp/i26/results BENCHBED_CACHE=/tmp/i26/cache nice -n 2 bash benchmarks/minilm_ctr_runs.sh
# then: python benchmarks/minilm_ctr_curve.py $BENCHBED_RESULTS/ml-100k/ctr
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2"}
COMMON=(--backbone minilm -p history_len=5 -p evals_per_epoch=4 -p eval_unseen=false)
for seed in $SEEDS; do
  benchbed run -m collm "${COMMON[@]}" --seed "$seed"
  benchbed run -m collm "${COMMON[@]}" -p permute_cf=true --seed "$seed"
done
