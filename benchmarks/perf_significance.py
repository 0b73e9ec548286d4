"""Performance benchmark: benchbed.stats' paired tests against naive loops, on one core, in one run.

Run: ``python benchmarks/perf_significance.py [--rows 1000000] [--users 10000] [--draws 10000]``. Not a test:
it prints CPU times (``time.process_time``: one thread, so not inflated by other jobs on a shared machine),
ratios and the largest disagreement between the fast and the naive side, so a speed-up can never hide a wrong
number. BLAS and numpy are limited to one thread (``threadpoolctl``).

- DeLong on ``--rows`` labeled rows, two correlated score vectors: the fast midrank form
  (``structural_components`` + ``delong_from_components``) against the definition, every positive compared
  with every negative (a loop over positives, each against all negatives with numpy). The definition is
  O(m·n): at 1M rows that is 2.5e11 comparisons, so it runs on ``--naive-rows`` rows and its time is scaled
  by (rows / naive rows)^2 (printed as an estimate); the fast form runs on both sizes, and both sides'
  p-values are compared on the small one.
- Fisher's randomisation test on ``--users`` per-user differences x ``--draws`` sign-flip draws:
  ``randomisation_p`` (chunked bit matrices times the differences: one BLAS call per chunk) against a loop
  over draws (each draw flips all signs with numpy), and against a pure Python loop over draws and users run
  on 1% of the draws and scaled up (an estimate). Both draw-loop sides use the same seed and random bits,
  so their p-values are equal.
- The paired bootstrap CI (same sizes) is timed alongside.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from benchbed.stats.delong import delong_from_components, structural_components
from benchbed.stats.paired import bootstrap_ci, randomisation_p


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()  # CPU time of this (one-thread) process: fair on a shared machine
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def ctr_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.45).astype(np.int64)
    shared = rng.normal(size=n)
    a = np.round(0.6 * y + shared + 0.7 * rng.normal(size=n), 3)  # rounded: ties, as real scores have
    b = np.round(0.65 * y + shared + 0.7 * rng.normal(size=n), 3)
    return y, a, b


def delong_fast(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ca, cb = structural_components(y, np.vstack([a, b]))
    return delong_from_components(ca, cb).p_value


def delong_naive(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The definition: psi(x, y) for every (positive, negative) pair, a loop over positives."""
    from benchbed.stats.delong import Components

    comps = []
    for s in (a, b):
        x, z = s[y == 1], s[y == 0]
        v10 = np.empty(x.size)
        v01 = np.zeros(z.size)
        for i, xi in enumerate(x):
            psi = (xi > z) + 0.5 * (xi == z)
            v10[i] = psi.mean()
            v01 += psi
        comps.append(Components(v10, v01 / x.size))
    return delong_from_components(comps[0], comps[1]).p_value


def randomisation_draw_loop(d: np.ndarray, draws: int, seed: int) -> float:
    """Same bits as ``randomisation_p`` (one chunk per draw), flipped with numpy one draw at a time."""
    rng = np.random.default_rng(seed)
    total = float(d.sum())
    tol = 1e-9 * float(np.abs(d).sum())
    nbytes = (d.size + 7) // 8
    hits = 0
    from benchbed.stats.paired import _chunks  # the same chunking, so the same random stream

    for size in _chunks(draws, d.size):
        bits = np.unpackbits(rng.integers(0, 256, size=(size, nbytes), dtype=np.uint8), axis=1)[:, : d.size]
        for row in bits:
            flipped = total - 2.0 * float(d[row.astype(bool)].sum())
            hits += abs(flipped) >= abs(total) - tol
    return (1 + hits) / (1 + draws)


def randomisation_python(d: np.ndarray, draws: int, seed: int) -> float:
    """Pure Python: a coin per user per draw."""
    import random

    rnd = random.Random(seed)
    values = d.tolist()
    total = sum(values)
    hits = 0
    for _ in range(draws):
        s = sum(v if rnd.random() < 0.5 else -v for v in values)
        hits += abs(s) >= abs(total) - 1e-9
    return (1 + hits) / (1 + draws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=160)
    table = Table(
        title=f"benchbed.stats vs naive loops · one thread · {platform.processor() or platform.machine()}"
    )
    for col in ("what", "size", "benchbed CPU s", "naive CPU s", "ratio", "max |p difference|"):
        table.add_column(col, justify="left" if col in ("what", "size") else "right")
    with threadpool_limits(1):
        y, a, b = ctr_rows(args.rows, args.seed)
        fast_big, _ = timed(lambda: delong_fast(y, a, b), args.repeats)
        ys, as_, bs = ctr_rows(args.naive_rows, args.seed)
        fast_small, p_fast = timed(lambda: delong_fast(ys, as_, bs), args.repeats)
        naive_small, p_naive = timed(lambda: delong_naive(ys, as_, bs))
        scale = (args.rows / args.naive_rows) ** 2
        table.add_row(
            "DeLong (2 models)", f"{args.naive_rows:,} rows", f"{fast_small:.3f}", f"{naive_small:.2f}",
            f"{naive_small / fast_small:,.0f}x", f"{abs(p_fast - p_naive):.1e}",
        )  # fmt: skip
        naive_big = naive_small * scale
        table.add_row(
            "DeLong (2 models)", f"{args.rows:,} rows", f"{fast_big:.3f}", f"~{naive_big:,.0f} (est.)",
            f"~{naive_big / fast_big:,.0f}x", "",
        )  # fmt: skip

        rng = np.random.default_rng(args.seed)
        d = 0.003 + 0.2 * rng.normal(size=args.users)
        w = np.ones_like(d)
        t_fast, p1 = timed(lambda: randomisation_p(d, w, args.draws, args.seed), args.repeats)
        t_loop, p2 = timed(lambda: randomisation_draw_loop(d, args.draws, args.seed))
        few = max(1, args.draws // 100)
        t_py, _ = timed(lambda: randomisation_python(d, few, args.seed))
        size = f"{args.users:,} users x {args.draws:,} draws"
        table.add_row(
            "randomisation",
            size,
            f"{t_fast:.3f}",
            f"{t_loop:.2f}",
            f"{t_loop / t_fast:,.0f}x",
            f"{abs(p1 - p2):.1e}",
        )
        py_full = t_py * args.draws / few
        table.add_row(
            "randomisation, pure Python",
            size,
            f"{t_fast:.3f}",
            f"~{py_full:,.0f} (est.)",
            f"~{py_full / t_fast:,.0f}x",
            "",
        )
        t_boot, _ = timed(lambda: bootstrap_ci(d, w, args.draws, args.seed), args.repeats)
        table.add_row("paired bootstrap CI", size, f"{t_boot:.3f}", "", "", "")
    console.print(table)
    console.print(
        f"[dim]CPU seconds of this process with one BLAS/numpy thread; best of {args.repeats} for benchbed, "
        f"naive sides once. p (randomisation) = {p1:.4f}; estimates scale naive time by the work ratio.[/]"
    )


if __name__ == "__main__":
    main()
