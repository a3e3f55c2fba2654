#!/usr/bin/env python3
"""The Python binding's overhead: checkpoint.CheckpointManager from Python against the same
calls made from C++ (`checkpoint_bench --profile`, a child process run between the Python
rounds), and against the original Python class made durable (fsync of the file and of the
directory per save). Every comparison alternates the two sides round by round and reports
the medians; the ratio is the median of the per-round ratios, so load drifts hit both sides.

    PYTHONPATH=build/python /usr/bin/python3 tools/bench/python_bench.py \\
        --checkpoint-bench build/tools/checkpoint_bench --dir build
    ... --quick          a few seconds (fewer rounds and operations)

Goals (issue 14): a Python save_checkpoint costs at most 1.2x the C++ call + 5 us, and is
faster than the original class made durable. Exit status: 0 when every measurement ran
(whether the goals were met or not), 1 on an error. Timing never fails a run.
"""

import argparse
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import checkpoint

UNITS = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def cpp_seconds(bench, operation, count, directory, stages):
    """Seconds per operation of `checkpoint_bench --profile OPERATION` (C++)."""
    result = subprocess.run([bench, "--profile", operation, "--count", str(count),
                             "--stages", str(stages), "--dir", directory],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"checkpoint_bench failed: {result.stderr.strip()}")
    match = re.search(r"operations, ([0-9.]+) (ns|µs|ms|s) each", result.stdout)
    if not match:
        raise RuntimeError(f"unexpected checkpoint_bench output: {result.stdout!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def names(prefix, start, count):
    return [f"{prefix}{i:07d}" for i in range(start, start + count)]


def python_saves(directory, durability, count):
    """Seconds per save_checkpoint from Python, on a fresh database."""
    stages = names("stage_", 0, count)
    with checkpoint.CheckpointManager(directory, durability=durability) as manager:
        save = manager.save_checkpoint
        started = time.perf_counter()
        for stage in stages:
            save(stage)
        elapsed = time.perf_counter() - started
        if len(manager.history()) != count:
            raise RuntimeError("saves missing")
    return elapsed / count


def python_has(directory, count, stage_count):
    """Seconds per has_checkpoint hit from Python, on stage_count stages."""
    with checkpoint.CheckpointManager(directory, durability="normal") as filler:
        for stage in names("stage_", 0, stage_count):
            filler.save_checkpoint(stage)
    keys = [f"stage_{(i * 7919) % stage_count:07d}" for i in range(4096)]
    with checkpoint.CheckpointManager(directory) as manager:
        has = manager.has_checkpoint
        started = time.perf_counter()
        for i in range(count):
            if not has(keys[i & 4095]):
                raise RuntimeError("a saved stage was not found")
        return (time.perf_counter() - started) / count


class Original:
    """The original design's CheckpointManager, made durable: the file is fsynced, and so is
    the directory that names it."""

    def __init__(self, checkpoint_dir="checkpoints"):
        self.checkpoint_dir = checkpoint_dir
        os.makedirs(self.checkpoint_dir, exist_ok=True)

    def save_checkpoint(self, stage_name):
        path = os.path.join(self.checkpoint_dir, f"{stage_name}.checkpoint")
        with open(path, "w") as f:
            f.write("COMPLETED")
            f.flush()
            os.fsync(f.fileno())
        directory = os.open(self.checkpoint_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def original_saves(directory, count):
    stages = names("stage_", 0, count)
    manager = Original(directory)
    started = time.perf_counter()
    for stage in stages:
        manager.save_checkpoint(stage)
    return (time.perf_counter() - started) / count


def compare(rounds, ours, baseline, fresh):
    """Medians of ours and the baseline, alternating which goes first, the median of the
    per-round ratios ours/baseline, and the median per-round excess over 1.2x the baseline
    (the overhead goal: at most 5 us)."""
    mine, theirs, ratios = [], [], []
    for round_number in range(rounds):
        if round_number % 2 == 0:
            a = ours(fresh())
            b = baseline(fresh())
        else:
            b = baseline(fresh())
            a = ours(fresh())
        mine.append(a)
        theirs.append(b)
        ratios.append(a / b)
    excess = statistics.median(a - 1.2 * b for a, b in zip(mine, theirs))
    return statistics.median(mine), statistics.median(theirs), statistics.median(ratios), excess


def duration(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e3:.3f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-bench", required=True,
                        help="the checkpoint_bench binary (build/tools/checkpoint_bench)")
    parser.add_argument("--dir", default=".", help="where the working directory is made "
                        "(give a directory on the disk to measure; default: .)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and operations")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    full_count, normal_count, has_count, has_stages = (
        (100, 500, 20_000, 2_000) if args.quick else (400, 3_000, 200_000, 10_000))

    work = tempfile.mkdtemp(prefix="python_bench.", dir=args.dir)
    sequence = iter(range(1_000_000))

    def fresh():
        path = os.path.join(work, f"d{next(sequence)}")
        os.mkdir(path)
        return path

    rows = []
    try:
        bench = args.checkpoint_bench
        for label, durability, operation, count in (
                ("durable save (`durability=\"full\"`)", "full", "save-full", full_count),
                ("save, `durability=\"normal\"`", "normal", "save-normal", normal_count)):
            py, cpp, ratio, excess = compare(
                rounds, lambda d, du=durability, n=count: python_saves(d, du, n),
                lambda d, op=operation, n=count: cpp_seconds(bench, op, n, d, has_stages),
                fresh)
            rows.append((f"{label}: Python vs C++", py, cpp, ratio, excess <= 5e-6,
                         "≤ 1.2× C++ + 5 µs"))
        py, cpp, ratio, excess = compare(
            rounds, lambda d: python_has(d, has_count, has_stages),
            lambda d: cpp_seconds(bench, "has-hit", has_count, d, has_stages), fresh)
        rows.append((f"has_checkpoint hit, {has_stages:,} stages: Python vs C++", py, cpp, ratio,
                     excess <= 5e-6, "≤ 1.2× C++ + 5 µs"))
        py, original, ratio, _ = compare(
            rounds, lambda d: python_saves(d, "full", full_count),
            lambda d: original_saves(d, full_count), fresh)
        rows.append(("durable save: Python vs the original class made durable (fsync file + "
                     "dir)", py, original, ratio, py < original, "< 1× (faster)"))
        # Information: the same save with the logger `checkpoint` at DEBUG (one record per
        # save through Python's logging, to a NullHandler; saves log at debug).
        logger = logging.getLogger("checkpoint")
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        py_info, cpp, ratio, _ = compare(
            rounds, lambda d: python_saves(d, "normal", normal_count),
            lambda d: cpp_seconds(bench, "save-normal", normal_count, d, has_stages), fresh)
        logger.setLevel(logging.NOTSET)
        rows.append(("save, `normal`, logger `checkpoint` at DEBUG (Python logging): Python vs "
                     "C++", py_info, cpp, ratio, None, "— (info)"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    print(f"checkpoint {checkpoint.__version__}, Python {sys.version.split()[0]}, {rounds} "
          f"rounds, {os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    print("(met? for the overhead goal: the median over rounds of Python - 1.2 x C++ is at "
          "most 5 µs)\n")
    print("| operation | Python | baseline | ratio | goal | met? |")
    print("|---|---|---|---|---|---|")
    for label, ours, baseline, ratio, met, goal in rows:
        verdict = "info" if met is None else ("yes" if met else "NO")
        print(f"| {label} | {duration(ours)} | {duration(baseline)} | {ratio:.2f}× | {goal} | "
              f"{verdict} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError, checkpoint.Error) as error:
        print(f"python_bench: {error}", file=sys.stderr)
        sys.exit(1)
