"""Python and C++ in one pipeline: a C++ process (tests/worker.cpp, linked against the
library) and this Python process save stages of one pipeline in one database; each sees
the other's stages, clears and runs, and `checkpointctl history` shows both."""

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from checkpoint import CheckpointManager

from conftest import TIMEOUT, required_binary

WORKER = required_binary("CHECKPOINT_TEST_WORKER")
CTL = required_binary("CHECKPOINTCTL")


class Worker:
    """`checkpoint_test_worker serve DIR`: one C++ manager, one command per line."""

    def __init__(self, directory, pipeline="default"):
        self.process = subprocess.Popen(
            [WORKER, "serve", str(directory), "--pipeline", pipeline], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.expect("ready")

    def expect(self, line):
        got = self.process.stdout.readline()
        assert got == line + "\n", (got, self.process.stderr.read() if not got else "")

    def do(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        self.expect("ok")

    def close(self):
        self.process.stdin.close()
        assert self.process.wait(TIMEOUT) == 0, self.process.stderr.read()


def ctl(*args):
    result = subprocess.run([CTL, *map(str, args)], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_each_language_sees_the_others_stages_and_clears(directory):
    directory.mkdir()
    worker = Worker(directory)
    try:
        with CheckpointManager(directory) as manager:
            manager.save_checkpoint("py-ingest")
            worker.do("save cpp-transform")
            assert manager.has_checkpoint("cpp-transform")  # C++'s save, seen at once
            worker.do("begin cpp-train")
            assert manager.latest("cpp-train").status == "started"
            assert not manager.has_checkpoint("cpp-train")
            manager.save_checkpoint("cpp-train")  # Python finishes what C++ began
            worker.do("clear py-ingest")  # C++ clears Python's stage
            assert not manager.has_checkpoint("py-ingest")
            assert manager.latest("py-ingest").status == "cleared"
            manager.save_checkpoint("py-ingest")
            assert manager.latest("py-ingest").version == 2
            worker.do("clear-all")
            assert [s.status for s in manager.stages()] == ["cleared"] * 3
            manager.save_checkpoint("py-report")
            python_run = manager.run_id
    finally:
        worker.close()
    with CheckpointManager(directory, read_only=True) as reader:
        runs = reader.runs()
        assert len(runs) == 2 and all(r.outcome == "finished" for r in runs)
        cpp_run = next(r.run_id for r in runs if r.run_id != python_run)
        writers = [(h.stage, h.status, "py" if h.run_id == python_run else "cpp")
                   for h in reader.history()]
    assert writers == [
        ("py-ingest", "completed", "py"), ("cpp-transform", "completed", "cpp"),
        # begun by C++ and never completed in its run, which has ended: incomplete
        ("cpp-train", "incomplete", "cpp"), ("cpp-train", "completed", "py"),
        ("py-ingest", "cleared", "cpp"), ("py-ingest", "completed", "py"),
        ("", "cleared", "cpp"), ("py-report", "completed", "py")]
    # checkpointctl (C++) shows both languages' rows and runs
    rows = list(csv.DictReader(io.StringIO(ctl("history", "--dir", directory, "--format",
                                               "csv"))))
    assert [(r["stage"], r["status"]) for r in rows] == [(s, st) for s, st, _ in writers]
    assert {r["run_id"] for r in rows} == {python_run, cpp_run}
    runs = json.loads(ctl("runs", "--dir", directory, "--format", "json"))
    assert {r["pid"] for r in runs} == {os.getpid(), worker.process.pid}
    status = {s["stage"]: s["status"]
              for s in json.loads(ctl("status", "--dir", directory, "--format", "json"))}
    assert status == {"py-ingest": "cleared", "cpp-transform": "cleared",
                      "cpp-train": "cleared", "py-report": "completed"}


def test_a_cpp_process_and_python_threads_save_at_once(directory):
    directory.mkdir()
    gate = directory.parent / "gate"
    worker = subprocess.Popen([WORKER, "save", str(directory), "cpp", "200", "--gate", str(gate)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert worker.stdout.readline() == "ready\n"
    with CheckpointManager(directory) as manager:
        gate.touch()  # both start now
        for n in range(200):
            manager.save_checkpoint(f"py-{n}")
        out, err = worker.communicate(timeout=TIMEOUT)
        assert worker.returncode == 0, err
        assert out.splitlines()[-1] == "ack 199"
        stages = {s.stage for s in manager.stages() if s.status == "completed"}
        assert stages == {f"py-{n}" for n in range(200)} | {f"cpp-{n}" for n in range(200)}
        assert all(manager.has_checkpoint(f"cpp-{n}") for n in range(200))
        assert manager.verify() == []


def test_outputs_and_metadata_cross_languages(directory):
    """A stage saved by Python with an output and metadata, read by checkpointctl."""
    with CheckpointManager(directory) as manager:
        manager.save_checkpoint("features", output=b"\x00" * 2048, metadata={"rows": 7},
                                fingerprint="fp")
        manager.save_checkpoint("model", inputs=["features"])
    rows = json.loads(ctl("history", "--dir", directory, "--format", "json"))
    assert rows[0]["metadata"] == {"rows": 7} and rows[0]["output_size"] == 2048
    assert rows[0]["fingerprint"] == "fp" and rows[0]["output_location"] == "database"
    assert rows[1]["inputs"] == [{"stage": "features", "version": 1, "id": rows[0]["id"]}]
    result = subprocess.run([CTL, "verify", "--dir", str(directory)], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
