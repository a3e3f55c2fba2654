"""A 100 MiB output from Python: stored as a file (fsynced before its row commits), loaded
back byte for byte with its SHA-256 checked, older versions kept until pruned, and the GIL
released meanwhile (another thread keeps running Python code)."""

import hashlib
import os
import threading
from pathlib import Path

import checkpoint
from checkpoint import CheckpointManager

MIB = 1024 * 1024


def test_a_100_mib_output_round_trips_through_a_file(directory):
    data = os.urandom(100 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    ticks = []
    stop = threading.Event()

    def tick():  # runs only while the saving thread does not hold the GIL
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        with CheckpointManager(directory) as manager:
            before = len(ticks)
            manager.save_checkpoint("big", output=data, metadata={"sha256": digest})
            saved_ticks = len(ticks) - before
            output = manager.latest("big").output
            assert (output.size, output.sha256, output.in_database) == (100 * MIB, digest, False)
            file = Path(manager.outputs_directory) / digest
            assert file.stat().st_size == 100 * MIB and file.stat().st_mode & 0o777 == 0o600
            before = len(ticks)
            loaded = manager.load_output("big")
            loaded_ticks = len(ticks) - before
            assert len(loaded) == len(data) and loaded == data
            del loaded
            manager.save_checkpoint("big", output=b"small now")
            assert manager.load_output("big", 1) == data  # the older version, still kept
    finally:
        stop.set()
        ticker.join()
    # hashing, writing, syncing and reading back 100 MiB take hundreds of milliseconds, with
    # the GIL released: the other thread ran meanwhile (held, it could not run at all)
    assert saved_ticks + loaded_ticks > 0, (saved_ticks, loaded_ticks)
    with CheckpointManager(directory) as later:
        result = later.prune(keep_last=1)
        assert result.files_deleted == 1 and result.bytes_freed >= 100 * MIB
        assert not (Path(later.outputs_directory) / digest).exists()
        assert later.load_output("big") == b"small now"
        assert later.verify() == []


def test_a_damaged_100_mib_output_is_detected(directory):
    data = b"\xab" * (100 * MIB)
    with CheckpointManager(directory) as manager:
        manager.save_checkpoint("big", output=memoryview(data))
        file = Path(manager.outputs_directory) / hashlib.sha256(data).hexdigest()
        with open(file, "r+b") as damaged:
            damaged.seek(50 * MIB)
            damaged.write(b"\x00")
        try:
            manager.load_output("big")
            raise AssertionError("a damaged output was loaded")
        except checkpoint.OutputDamagedError as error:
            assert error.code == "output_damaged" and str(file) in str(error)
