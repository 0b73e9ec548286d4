"""Performance benchmark: ``benchbed report`` of the committed results, time per stage and the file's size.

Run: ``taskset -c 0 python benchmarks/perf_report.py [--results results] [--repeats 3]`` (one core: the
issue's budget is "under 10 s on one core" for about 100 records; the goal for the file is under 5 MB).
Not a test: it prints, for the best of ``--repeats`` runs, the seconds of each stage (read records,
boards + tables + figures + page, significance marks) side by side, the total with and without marks, and
the HTML size in KiB with how much of it is SVG. Thread pools are pinned to one thread before numpy loads.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402


def one_run(results: Path, marks: bool) -> tuple[dict[str, float], str, int]:
    from benchbed.cli.board_defaults import registry_defaults
    from benchbed.report.build import build_report
    from benchbed.results.reference import load_references
    from benchbed.results.store import load_records

    times: dict[str, float] = {}
    cpu = time.process_time()
    start = time.perf_counter()
    loaded = load_records([results])
    refs = load_references(None)
    times["read"] = time.perf_counter() - start
    pairs = loaded.records
    annotate = None
    if marks:
        from benchbed.results.significance import annotate_boards

        def annotate(boards: list) -> None:
            t = time.perf_counter()
            annotate_boards(boards, pairs)
            times["marks"] = time.perf_counter() - t

    t = time.perf_counter()
    report = build_report([r for _, r in pairs], refs, defaults=registry_defaults, annotate=annotate)
    times["boards+tables+figures"] = time.perf_counter() - t - times.get("marks", 0.0)
    times["total"] = time.perf_counter() - start
    times["cpu"] = time.process_time() - cpu  # this process's CPU seconds: what a busy shared core hides
    return times, report.html, len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import matplotlib

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"python {platform.python_version()}, matplotlib {matplotlib.__version__}, cores {cores}")
    t = time.perf_counter()
    import benchbed.report.build  # noqa: F401 - imports (matplotlib, scipy) once, outside the timings
    import benchbed.results.significance  # noqa: F401

    print(f"imports: {time.perf_counter() - t:.2f} s (once per process)")
    for marks in (False, True):
        best: dict[str, float] | None = None
        html, records = "", 0
        for _ in range(args.repeats):
            times, html, records = one_run(args.results, marks)
            if best is None or times["total"] < best["total"]:
                best = times
        assert best is not None
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in best.items() if k not in ("total", "cpu"))
        print(
            f"marks {'on ' if marks else 'off'}: {records} records, wall {best['total']:.2f} s, "
            f"CPU {best['cpu']:.2f} s ({stages})"
        )
    size = len(html.encode("utf-8"))
    svg = sum(len(part.split("</svg>")[0].encode("utf-8")) for part in html.split("<svg")[1:])
    print(
        f"size: {size / 1024:.0f} KiB ({svg / 1024:.0f} KiB of it inline SVG, {html.count('<svg')} figures)"
    )


if __name__ == "__main__":
    main()
