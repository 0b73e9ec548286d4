"""Performance benchmark: what verifying cache entries against their manifests costs (issue 14).

Run: ``python benchmarks/perf_cache_verify.py [--mb 256] [--repeat 5]``. Not a test. Every read of a cached
dataset or split checks each frame file's size and sha256 against the manifest (``benchbed.data.cache``),
and ``benchbed run`` reads the split manifest once more to compare a found record's content hashes. It prints:

- ml-100k's default (temporal-window) split and dataset entries: their sizes and the seconds one
  ``verify_entry`` takes (the median of ``--repeat``), next to the seconds a cache-hit ``prepare_split`` takes
  in all (read + verify), so the share is visible;
- a synthetic entry of ``--mb`` megabytes of parquet (random int64 columns), to give the cost per MB for the
  big Amazon datasets (the hash reads the whole file; a footer-only hash would not see edited values).

Uses a temporary cache directory; nothing is downloaded (ml-100k comes from RecBole's wheel).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def median_seconds(fn, repeat: int) -> float:
    from benchbed.data import cache

    times = []
    for _ in range(repeat):
        cache._VERIFIED.clear()  # measure the hashing, not the once-per-process memo
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def entry_mb(entry: Path) -> float:
    return sum(p.stat().st_size for p in entry.glob("*.parquet")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the synthetic entry")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BENCHBED_CACHE"] = str(Path(tmp) / "cache")
        from benchbed.data import cache
        from benchbed.data.prepare import prepare_split
        from benchbed.settings import Settings, set_settings

        set_settings(Settings.from_env())
        prepare_split("ml-100k")  # build once
        hit = median_seconds(lambda: prepare_split("ml-100k"), args.repeat)
        root = Path(tmp) / "cache"
        print(f"cache-hit prepare_split('ml-100k'), read + verify: {hit * 1000:.1f} ms")
        for kind in ("splits", "data"):
            for entry in sorted((root / kind).iterdir()):
                manifest = cache.read_manifest(entry)
                assert manifest is not None
                secs = median_seconds(lambda e=entry, m=manifest: cache.verify_entry(e, m), args.repeat)
                print(f"verify {kind}/{entry.name}: {entry_mb(entry):.2f} MB in {secs * 1000:.1f} ms")

        big = root / "synthetic" / "entry"
        big.mkdir(parents=True)
        rows = args.mb * 2**20 // (8 * 4)
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({f"c{i}": rng.integers(0, 2**62, rows) for i in range(4)})
        frame.to_parquet(big / "frame.parquet", index=False, compression=None)
        cache.write_manifest(big, {"note": "synthetic"})
        manifest = cache.read_manifest(big)
        assert manifest is not None
        secs = median_seconds(lambda: cache.verify_entry(big, manifest), args.repeat)
        mb = entry_mb(big)
        print(f"verify synthetic: {mb:.0f} MB in {secs:.3f} s ({secs / mb * 1000:.2f} ms per MB)")


if __name__ == "__main__":
    main()
