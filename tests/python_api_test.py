"""The Python API, method by method: arguments, results and their types, every error class
and its code, hostile stage names, outputs and metadata, stages as context managers and
decorators, close and `with`, fork, logging, and the type stubs against the module."""

import ast
import datetime
import gc
import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import checkpoint
from checkpoint import CheckpointManager

from conftest import TIMEOUT, module_path, run_python

MIB = 1024 * 1024
INLINE_LIMIT = 3 * MIB // 2  # Options::max_inline_output's default


def nested_lists(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


DEEP = nested_lists(1000)

HOSTILE_NAMES = [
    "'; DROP TABLE checkpoints; --",
    "../../etc/passwd",
    "/absolute/path",
    "with spaces and\ttabs\nand newlines",
    "quotes \" and ' and `",
    "emoji 🚀 and ünïcödé 日本語",
    "%s %d {} {0} %(name)s",  # printf, format and logging placeholders
    "\\backslash\\",
    "x" * 1024,  # the longest accepted (bytes)
    "é" * 512,  # 1024 bytes of UTF-8
    ".",
    "..",
    "*",
    "CON",
]


# ---- Construction and options -------------------------------------------------------------

def test_options_are_keyword_arguments_with_the_documented_defaults(directory):
    with CheckpointManager(directory, pipeline="etl", durability="normal", busy_timeout=5,
                           read_only=False, database_file="other.db", file_mode=0o640,
                           max_inline_output=10) as manager:
        assert manager.pipeline == "etl"
        assert manager.database_path == str(directory / "other.db")
        assert manager.outputs_directory == str(directory / "other.db-outputs")
        manager.save_checkpoint("s", output=b"more than ten bytes")
        assert manager.latest("s").output.in_database is False
    assert (directory / "other.db").stat().st_mode & 0o777 == 0o640
    with pytest.raises(TypeError):
        CheckpointManager(directory, "etl")  # options are keyword-only


@pytest.mark.parametrize("make_path", [str, Path, os.fsencode], ids=["str", "Path", "bytes"])
def test_the_directory_may_be_str_pathlike_or_bytes(tmp_path, make_path):
    given = make_path(tmp_path / "dir")
    with CheckpointManager(given) as manager:
        manager.save_checkpoint("s")
        assert manager.checkpoint_dir == given
    assert (tmp_path / "dir" / "checkpoints.db").is_file()


def test_a_directory_name_that_is_not_utf8_round_trips(tmp_path):
    given = tmp_path / os.fsdecode(b"dir\xff")
    with CheckpointManager(given) as manager:
        manager.save_checkpoint("s")
        assert manager.database_path == str(given / "checkpoints.db")
        assert "dir\\udcff" in repr(manager)  # escaped, as repr() escapes a str
    assert os.path.isfile(os.fsencode(tmp_path) + b"/dir\xff/checkpoints.db")


def test_an_unknown_url_is_refused_without_quoting_its_secret(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(checkpoint.InvalidArgumentError) as raised:
        CheckpointManager("mysql://user:s3cret-pw@db.example/pipelines")
    assert raised.value.code == "invalid_argument"
    assert "mysql://" in str(raised.value)
    assert "s3cret" not in str(raised.value) and "user" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_an_unreachable_postgresql_url_raises_unavailable_without_its_secret(tmp_path):
    with pytest.raises(checkpoint.Error) as raised:
        CheckpointManager("postgresql://user:s3cret-pw@127.0.0.1:1/pipelines?connect_timeout=2")
    assert raised.value.code == "unavailable"
    assert "127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_postgresql_database_works_like_a_directory():
    server = os.environ.get("CHECKPOINT_TEST_PG_URL")
    if not server:
        pytest.fail("CHECKPOINT_TEST_PG_URL is not set: run through tools/test.sh, or start a "
                    'server with eval "$(tools/pg_server.sh start)"', pytrace=False)
    psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    # psql is not built with the sanitizers: without the runtime CTest preloads into Python
    # in the sanitized phases (under it, psql hangs).
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    name = "py_" + os.urandom(8).hex()
    subprocess.run([psql, server, "-qAtc", f"CREATE DATABASE {name}"], check=True, timeout=60,
                   env=env)
    try:
        url = server.rsplit("/", 1)[0] + "/" + name
        with CheckpointManager(url, pipeline="py") as manager:
            manager.save_checkpoint("ingest", output=b"\x00bytes\xff" * 1000,
                                    metadata={"rows": 3})
            assert manager.has_checkpoint("ingest")
            assert manager.load_output("ingest") == b"\x00bytes\xff" * 1000
            assert manager.latest("ingest").metadata == {"rows": 3}
            assert manager.location == url
            assert manager.database_path == ""
            assert manager.verify() == []
        with CheckpointManager(url, pipeline="py", read_only=True) as reader:
            assert [run.outcome for run in reader.runs()] == ["finished"]
    finally:
        subprocess.run([psql, server, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                       check=True, timeout=60, env=env)


@pytest.mark.parametrize("options, text", [
    ({"durability": "fast"}, "durability"),
    ({"pipeline": ""}, "pipeline"),
    ({"busy_timeout": -1}, "busy_timeout"),
    ({"database_file": "a/b.db"}, "database_file"),
    ({"file_mode": 0o400}, "file_mode"),
    ({"max_inline_output": 1024 * MIB}, "max_inline_output"),
])
def test_bad_options_raise_invalid_argument_and_create_nothing(directory, options, text):
    with pytest.raises(checkpoint.InvalidArgumentError, match=text) as raised:
        CheckpointManager(directory, **options)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, checkpoint.Error)
    assert not (directory / "checkpoints.db").exists()


@pytest.mark.parametrize("options", [{"durability": 1}, {"busy_timeout": "30"},
                                     {"pipeline": b"etl"}, {"file_mode": "600"}])
def test_options_of_the_wrong_type_raise_type_error(directory, options):
    with pytest.raises(TypeError):
        CheckpointManager(directory, **options)


def test_busy_timeout_takes_a_timedelta(directory):
    with CheckpointManager(directory, busy_timeout=datetime.timedelta(seconds=2)) as manager:
        manager.save_checkpoint("s")
        assert manager.has_checkpoint("s")


def test_read_only_reads_and_refuses_writes(directory):
    with CheckpointManager(directory) as writer:
        writer.save_checkpoint("s", output=b"out")
    before = (directory / "checkpoints.db").read_bytes()
    with CheckpointManager(directory, read_only=True) as reader:
        assert reader.has_checkpoint("s") and reader.load_output("s") == b"out"
        for write in (lambda: reader.save_checkpoint("t"), reader.clear_checkpoints,
                      lambda: reader.begin_stage("t"), lambda: reader.fail_stage("t", "x")):
            with pytest.raises(checkpoint.ReadOnlyError) as raised:
                write()
            assert raised.value.code == "read_only"
    assert (directory / "checkpoints.db").read_bytes() == before


def test_read_only_without_a_database_is_not_found(directory):
    with pytest.raises(checkpoint.NotFoundError) as raised:
        CheckpointManager(directory, read_only=True)
    assert raised.value.code == "not_found"
    assert not directory.exists()


def test_a_file_that_is_not_a_database_is_refused_and_left_unchanged(directory):
    directory.mkdir()
    (directory / "checkpoints.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(checkpoint.NotADatabaseError) as raised:
        CheckpointManager(directory)
    assert raised.value.code == "not_a_database"
    assert isinstance(raised.value, checkpoint.DatabaseError)
    assert str(directory / "checkpoints.db") in str(raised.value)
    assert (directory / "checkpoints.db").read_bytes() == b"this is not SQLite" * 100


def test_a_database_of_a_newer_schema_is_refused(directory):
    CheckpointManager(directory).close()
    with sqlite3.connect(directory / "checkpoints.db") as db:
        db.execute(f"PRAGMA user_version = {checkpoint.schema_version() + 1}")
    with pytest.raises(checkpoint.SchemaTooNewError) as raised:
        CheckpointManager(directory)
    assert raised.value.code == "schema_too_new"


def test_a_symbolic_link_is_unsafe(tmp_path, directory):
    CheckpointManager(tmp_path / "real").close()
    directory.mkdir()
    (directory / "checkpoints.db").symlink_to(tmp_path / "real" / "checkpoints.db")
    with pytest.raises(checkpoint.UnsafeError) as raised:
        CheckpointManager(directory)
    assert raised.value.code == "unsafe"


def test_an_unwritable_directory_is_an_io_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(checkpoint.IoError) as raised:
        CheckpointManager(blocker / "checkpoints")
    assert raised.value.code == "io"


def test_busy_when_another_process_holds_the_lock(directory):
    manager = CheckpointManager(directory, busy_timeout=0.2)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\nsys.stdin.readline()\n"
         "db.execute('COMMIT')\n", str(directory / "checkpoints.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with manager:
            with pytest.raises(checkpoint.BusyError) as raised:
                manager.save_checkpoint("s")
            assert raised.value.code == "busy"
            assert manager.has_checkpoint("s") is False  # reads are not blocked (WAL)
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(TIMEOUT) == 0
            manager.save_checkpoint("s")
            assert manager.has_checkpoint("s")
    finally:
        holder.kill()
        holder.wait()


def test_the_error_classes_and_their_codes():
    codes = {
        "InvalidArgumentError": "invalid_argument", "NotFoundError": "not_found",
        "NotADatabaseError": "not_a_database", "CorruptError": "corrupt",
        "SchemaTooNewError": "schema_too_new", "SchemaTooOldError": "schema_too_old",
        "IoError": "io", "DiskFullError": "disk_full", "BusyError": "busy",
        "ReadOnlyError": "read_only", "InternalError": "internal", "UnsafeError": "unsafe",
        "OutputDamagedError": "output_damaged", "ClosedError": "closed", "ForkedError": "forked",
        "UnavailableError": "unavailable", "LeaseLostError": "lease_lost",
        "KeyRequiredError": "key_required", "WrongKeyError": "wrong_key",
    }
    for name, code in codes.items():
        error_class = getattr(checkpoint, name)
        assert issubclass(error_class, checkpoint.Error) and error_class.code == code
        assert error_class.__module__ == "checkpoint"
    assert issubclass(checkpoint.Error, Exception)
    assert issubclass(checkpoint.InvalidArgumentError, ValueError)
    assert issubclass(checkpoint.DiskFullError, checkpoint.IoError)
    for name in ("NotADatabaseError", "CorruptError", "SchemaTooNewError", "SchemaTooOldError"):
        assert issubclass(getattr(checkpoint, name), checkpoint.DatabaseError)
    assert not issubclass(checkpoint.BusyError, ValueError)


# ---- Stage names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_names_are_data_stored_verbatim(manager, directory, name):
    manager.save_checkpoint(name, output=name.encode(), metadata={"name": name})
    assert manager.has_checkpoint(name)
    row = manager.latest(name)
    assert row.stage == name and row.metadata == {"name": name}
    assert manager.load_output(name) == name.encode()
    assert [c.stage for c in manager.stages()] == [name]
    assert manager.clear_checkpoint(name) == [name]
    assert not manager.has_checkpoint(name)
    assert sorted(p.name for p in directory.iterdir()) == [
        "checkpoints.db", "checkpoints.db-shm", "checkpoints.db-wal"]


@pytest.mark.parametrize("name, text", [
    ("", "empty"),
    ("x" * 1025, "1024"),
    ("nul\0byte", "NUL"),
    ("lone \udc80 surrogate", "surrogate"),
])
def test_invalid_names_raise_invalid_argument_and_write_nothing(manager, name, text):
    calls = [lambda: manager.save_checkpoint(name), lambda: manager.has_checkpoint(name),
             lambda: manager.begin_stage(name), lambda: manager.fail_stage(name, "m"),
             lambda: manager.clear_checkpoint(name), lambda: manager.latest(name),
             lambda: manager.load_output(name)]
    for call in calls:
        with pytest.raises(checkpoint.InvalidArgumentError, match=text) as raised:
            call()
        assert raised.value.code == "invalid_argument" and isinstance(raised.value, ValueError)
    assert manager.history() == [] and manager.runs() == []


@pytest.mark.parametrize("name", [42, None, b"bytes", ["list"]])
def test_names_of_the_wrong_type_raise_type_error(manager, name):
    for call in (manager.save_checkpoint, manager.has_checkpoint, manager.begin_stage,
                 manager.latest, manager.load_output, manager.clear_checkpoint):
        with pytest.raises(TypeError, match="str"):
            call(name)
    assert manager.history() == []


# ---- Saves, outputs, metadata, fingerprints, inputs ------------------------------------------

@pytest.mark.parametrize("size, in_database", [(0, True), (1, True), (INLINE_LIMIT, True),
                                               (INLINE_LIMIT + 1, False)])
def test_outputs_come_back_byte_for_byte(manager, size, in_database):
    data = os.urandom(size)
    manager.save_checkpoint("s", output=data)
    loaded = manager.load_output("s")
    assert type(loaded) is bytes and loaded == data
    output = manager.latest("s").output
    assert output.size == size and output.in_database is in_database
    assert output.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("make", [bytearray, memoryview, lambda b: memoryview(bytearray(b))])
def test_outputs_may_be_any_bytes_like(manager, make):
    manager.save_checkpoint("s", output=make(b"\x00\xffbytes"))
    assert manager.load_output("s") == b"\x00\xffbytes"


def test_outputs_of_the_wrong_type_raise_type_error(manager):
    with pytest.raises(TypeError, match="encode"):
        manager.save_checkpoint("s", output="text")
    with pytest.raises(TypeError):
        manager.save_checkpoint("s", output=12)
    assert manager.history() == []


def test_load_output_by_version_and_none_when_absent(manager):
    assert manager.load_output("never") is None
    manager.save_checkpoint("s")
    assert manager.load_output("s") is None  # saved without an output
    manager.save_checkpoint("s", output=b"two")
    manager.save_checkpoint("s", output=b"three")
    assert manager.load_output("s") == b"three"
    assert manager.load_output("s", 2) == b"two"
    assert manager.load_output("s", version=1) is None
    assert manager.load_output("s", 99) is None
    manager.clear_checkpoint("s")
    assert manager.load_output("s") is None


def test_a_damaged_output_raises_output_damaged(manager):
    data = b"x" * (INLINE_LIMIT + 10)
    manager.save_checkpoint("s", output=data)
    file = Path(manager.outputs_directory) / hashlib.sha256(data).hexdigest()
    file.write_bytes(b"y" * len(data))
    with pytest.raises(checkpoint.OutputDamagedError) as raised:
        manager.load_output("s")
    assert raised.value.code == "output_damaged" and str(file) in str(raised.value)


def test_metadata_round_trips(manager):
    metadata = {
        "rows": 977, "ratio": 0.25, "negative": -3, "big": 2**63 - 1, "huge_unsigned": 2**64 - 1,
        "ok": True, "no": False, "nothing": None, "text": "ünïcödé 🚀 \"quoted\"",
        "list": [1, "two", [3.5, None]], "tuple": (1, 2), "nested": {"a": {"b": {"c": []}}},
        "": "empty key",
    }
    manager.save_checkpoint("s", metadata=metadata)
    expected = dict(metadata, tuple=[1, 2])
    assert manager.latest("s").metadata == expected
    assert manager.history(stage="s")[0].metadata == expected
    with sqlite3.connect(manager.database_path) as db:
        assert db.execute("SELECT json_extract(metadata, '$.rows') FROM checkpoints").fetchone() \
            == (977,)
    assert type(manager.latest("s").metadata["big"]) is int


def test_no_metadata_reads_as_an_empty_dict(manager):
    manager.save_checkpoint("s")
    manager.save_checkpoint("t", metadata=None, output=b"")
    assert manager.latest("s").metadata == {} and manager.latest("t").metadata == {}


@pytest.mark.parametrize("metadata, text", [
    ({"set": {1, 2}}, "set"),
    ({"nan": float("nan")}, "nan"),
    ({"inf": float("inf")}, "inf"),
    ({1: "int key"}, "key"),
    ({"big": 2**64}, "64-bit"),
    ({"bytes": b"x"}, "bytes"),
    ({"deep": DEEP}, "nested"),
    ({"surrogate": "\udc80"}, "surrogate"),
])
def test_metadata_json_cannot_hold_raises_invalid_argument(manager, metadata, text):
    with pytest.raises(checkpoint.InvalidArgumentError, match=text):
        manager.save_checkpoint("s", metadata=metadata)
    assert manager.history() == []


def test_self_referencing_metadata_is_refused(manager):
    looped = {}
    looped["self"] = looped
    with pytest.raises(checkpoint.InvalidArgumentError, match="refers to itself"):
        manager.save_checkpoint("s", metadata=looped)
    with pytest.raises(TypeError, match="dict"):
        manager.save_checkpoint("s", metadata=[1, 2])
    assert manager.history() == []


def test_fingerprints(manager, tmp_path):
    manager.save_checkpoint("s", fingerprint="fp1")
    assert manager.has_checkpoint("s", "fp1")
    assert manager.has_checkpoint("s", fingerprint="fp1")
    assert not manager.has_checkpoint("s", "fp2")
    assert manager.has_checkpoint("s")
    assert manager.latest("s").fingerprint == "fp1"
    assert checkpoint.fingerprint_of("abc") == hashlib.sha256(b"abc").hexdigest()
    assert checkpoint.fingerprint_of(b"\xff") == hashlib.sha256(b"\xff").hexdigest()
    file = tmp_path / "input.txt"
    file.write_bytes(b"content")
    assert checkpoint.fingerprint_of_file(file) == hashlib.sha256(b"content").hexdigest()
    assert checkpoint.fingerprint_of_file(str(tmp_path / "missing")) is None
    built = checkpoint.Fingerprint().add("code v3").add(b"config").add_file(file)
    assert built.str() == str(built) and len(built.str()) == 64
    assert built.str() != checkpoint.Fingerprint().add("code v3").add(b"config").str()
    assert checkpoint.Fingerprint().add("ab").add("c").str() != \
        checkpoint.Fingerprint().add("a").add("bc").str()
    with pytest.raises(checkpoint.NotFoundError):
        checkpoint.Fingerprint().add_file(tmp_path / "missing")


def test_inputs_make_a_consumer_stale_and_downstream_clears(manager):
    manager.save_checkpoint("a", output=b"raw")
    manager.save_checkpoint("b", inputs=["a"])
    manager.save_checkpoint("c", inputs=("b",))
    assert [(i.stage, i.version) for i in manager.latest("c").inputs] == [("b", 1)]
    assert manager.has_checkpoint("c")
    manager.save_checkpoint("a")  # a new version upstream
    assert not manager.has_checkpoint("b") and not manager.has_checkpoint("c")
    assert manager.latest("b").stale and "'a'" in manager.latest("b").stale_reason
    manager.save_checkpoint("b", inputs=["a"])
    manager.save_checkpoint("c", inputs=["b"])
    assert manager.clear_checkpoint("a", downstream=True) == ["a", "b", "c"]
    with pytest.raises(checkpoint.InvalidArgumentError, match="input"):
        manager.save_checkpoint("d", inputs=["a"])  # a is cleared now
    with pytest.raises(TypeError, match="list"):
        manager.save_checkpoint("d", inputs="a")
    with pytest.raises(checkpoint.InvalidArgumentError, match="own input"):
        manager.save_checkpoint("d", inputs=["d"])


# ---- Reads ------------------------------------------------------------------------------------

def test_latest_stages_history_and_runs(manager):
    assert manager.latest("s") is None and manager.stages() == [] and manager.runs() == []
    manager.begin_stage("s")
    assert manager.latest("s").status == "started" and not manager.has_checkpoint("s")
    manager.fail_stage("s", "lone \udc80 surrogate")
    assert manager.latest("s").message == "lone \ufffd surrogate"
    manager.fail_stage("s", b"invalid \xff utf-8")
    assert manager.latest("s").message == "invalid \ufffd utf-8"
    manager.begin_stage("s")
    manager.fail_stage("s", "connection refused")
    failed = manager.latest("s")
    assert failed.status == "failed" and failed.message == "connection refused"
    assert isinstance(failed.duration, datetime.timedelta)
    manager.save_checkpoint("s")
    manager.save_checkpoint("t")
    row = manager.latest("s")
    assert (row.stage, row.status, row.version, row.pipeline) == ("s", "completed", 1, "default")
    assert row.run_id == manager.run_id and row.output is None and row.inputs == []
    assert row.timestamp.endswith("Z") and datetime.datetime.fromisoformat(row.timestamp[:-1])
    assert [c.stage for c in manager.stages()] == ["s", "t"]
    history = manager.history()
    assert [(h.stage, h.status) for h in history] == [
        ("s", "started"), ("s", "failed"), ("s", "failed"), ("s", "started"), ("s", "failed"),
        ("s", "completed"), ("t", "completed")]
    assert [h.id for h in history] == sorted(h.id for h in history)
    assert [h.stage for h in manager.history(stage="t")] == ["t"]
    assert [h.status for h in manager.history(status="failed")] == ["failed"] * 3
    assert len(manager.history(limit=2)) == 2
    assert len(manager.history(run_id=manager.run_id)) == 7
    assert manager.history(run_id="another") == []
    assert len(manager.history(since="2000-01-01", until="2999-01-01")) == 7
    now = datetime.datetime.now(datetime.timezone.utc)
    assert manager.history(since=now + datetime.timedelta(hours=1)) == []
    assert len(manager.history(until=now + datetime.timedelta(hours=1))) == 7
    with pytest.raises(checkpoint.InvalidArgumentError, match="naive"):
        manager.history(since=datetime.datetime.now())
    with pytest.raises(checkpoint.InvalidArgumentError, match="status"):
        manager.history(status="done")
    with pytest.raises(checkpoint.InvalidArgumentError):
        manager.history(since="yesterday")
    (run,) = manager.runs()
    assert (run.run_id, run.pid, run.outcome, run.ended_at) == (manager.run_id, os.getpid(),
                                                                 "running", None)
    assert run.stages_completed == 2 and run.stages_failed == 3 and run.host and run.user
    assert repr(row).startswith("Checkpoint(") and repr(run).startswith("Run(")


def test_history_of_all_pipelines(directory):
    with CheckpointManager(directory, pipeline="a") as a, \
            CheckpointManager(directory, pipeline="b") as b:
        a.save_checkpoint("s")
        b.save_checkpoint("s")
        a.clear_checkpoints()
        assert not a.has_checkpoint("s") and b.has_checkpoint("s")
        assert [h.pipeline for h in a.history()] == ["a", "a"]
        assert sorted(h.pipeline for h in a.history(all_pipelines=True)) == ["a", "a", "b"]


def test_a_closed_run_reads_finished_and_a_failed_one_failed(directory):
    with CheckpointManager(directory) as manager:
        manager.save_checkpoint("s")
    with CheckpointManager(directory) as manager:
        manager.begin_stage("t")
        manager.fail_stage("t", "boom")
    with CheckpointManager(directory) as manager:
        runs = manager.runs()
    assert [r.outcome for r in runs] == ["finished", "failed"]
    assert all(r.ended_at for r in runs)


def test_prune_and_verify(manager):
    for _ in range(5):
        manager.save_checkpoint("s", output=os.urandom(100))
    assert manager.verify() == []
    result = manager.prune(keep_last=2)
    # this manager's run is still running: its rows are kept until a later run prunes
    assert (result.rows_deleted, result.runs_deleted) == (0, 0)
    manager.close()
    with CheckpointManager(manager.checkpoint_dir) as later:
        result = later.prune(keep_last=2, older_than=0, orphan_grace=datetime.timedelta(0))
        assert result.rows_deleted == 3 and result.bytes_freed == 300
        assert [h.version for h in later.history()] == [4, 5]
        assert later.load_output("s", 3) is None and later.load_output("s", 4) is not None
        assert later.verify() == []
        with pytest.raises(checkpoint.InvalidArgumentError):
            later.prune(keep_last=0)
        with pytest.raises(TypeError):
            later.prune(keep_last="2")
    assert repr(result).startswith("PruneResult(rows_deleted=3")


def test_verify_reports_a_damaged_output(manager):
    data = os.urandom(INLINE_LIMIT + 1)
    manager.save_checkpoint("s", output=data)
    (Path(manager.outputs_directory) / hashlib.sha256(data).hexdigest()).unlink()
    problems = manager.verify()
    assert len(problems) == 1 and "s" in problems[0]
    assert not manager.has_checkpoint("s")  # missing output file: stale


def test_import_checkpoint(manager):
    assert manager.import_checkpoint("old", "2024-01-02T03:04:05.678Z", "legacy/old.checkpoint")
    assert not manager.import_checkpoint("old", "2024-01-02T03:04:05.678Z",
                                         "legacy/old.checkpoint")
    assert manager.latest("old").timestamp == "2024-01-02T03:04:05.678Z"
    with pytest.raises(checkpoint.InvalidArgumentError):
        manager.import_checkpoint("old", "yesterday", "x")


# ---- Stages: context manager, decorator, run_stage -------------------------------------------

def test_stage_as_a_context_manager(manager):
    ran = []
    for _ in range(2):
        with manager.stage("train") as s:
            if not s.done:
                ran.append(1)
                s.output = b"model"
                s.metadata = {"loss": 0.5}
    assert ran == [1]
    assert manager.load_output("train") == b"model"
    assert manager.latest("train").metadata == {"loss": 0.5}
    assert [h.status for h in manager.history(stage="train")] == ["started", "completed"]
    assert isinstance(manager.latest("train").duration, datetime.timedelta)


def test_a_stage_body_that_raises_is_recorded_as_failed_and_the_exception_goes_on(manager):
    with pytest.raises(KeyError, match="boom"):
        with manager.stage("s") as s:
            assert not s.done
            raise KeyError("boom")
    row = manager.latest("s")
    assert row.status == "failed" and row.message == "KeyError: 'boom'"
    assert not manager.has_checkpoint("s")
    with pytest.raises(RuntimeError):
        with manager.stage("t"):
            raise RuntimeError()
    assert manager.latest("t").message == "RuntimeError"
    with pytest.raises(ValueError):
        with manager.stage("u"):
            raise ValueError("bad \udc80 byte")
    assert manager.latest("u").message == "ValueError: bad \ufffd byte"


def test_stage_with_fingerprint_and_inputs(manager):
    manager.save_checkpoint("a")
    with manager.stage("b", fingerprint="v1", inputs=["a"]) as s:
        assert not s.done
    with manager.stage("b", fingerprint="v1", inputs=["a"]) as s:
        assert s.done
    with manager.stage("b", fingerprint="v2", inputs=["a"]) as s:
        assert not s.done  # another fingerprint: runs again
    row = manager.latest("b")
    assert row.fingerprint == "v2" and [i.stage for i in row.inputs] == ["a"]
    assert repr(s) == "<checkpoint.Stage 'b'>" and s.name == "b"


def test_stage_as_a_decorator(manager):
    calls = []

    @manager.stage("ingest")
    def ingest(path, *, rows):
        """Reads the input."""
        calls.append((path, rows))
        return f"{path}:{rows}".encode()

    assert ingest.__name__ == "ingest" and ingest.__doc__ == "Reads the input."
    assert ingest("in.csv", rows=3) == b"in.csv:3"
    assert ingest("other.csv", rows=4) == b"in.csv:3"  # done: the stored output, not rerun
    assert calls == [("in.csv", 3)]

    @manager.stage("count")
    def count():
        return 42  # not bytes: returned, not stored

    assert count() == 42 and count() is None
    assert manager.has_checkpoint("count") and manager.load_output("count") is None

    @manager.run_stage("fails")
    def fails():
        raise ValueError("bad row 7")

    with pytest.raises(ValueError, match="bad row 7"):
        fails()
    assert manager.latest("fails").message == "ValueError: bad row 7"
    with pytest.raises(TypeError):
        manager.stage("x")(42)


def test_coroutine_and_generator_functions_cannot_be_decorated(manager):
    async def coroutine():
        return b"x"

    def generator():
        yield b"x"

    async def async_generator():
        yield b"x"

    for function in (coroutine, generator, async_generator):
        with pytest.raises(TypeError, match="saved before its body ran"):
            manager.stage("s")(function)
    assert manager.history() == []


def test_run_stage_with_a_function(manager):
    calls = []
    assert manager.run_stage("s", lambda: calls.append(1)) is True
    assert manager.run_stage("s", lambda: calls.append(2)) is False
    assert calls == [1]

    def broken():
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        manager.run_stage("t", broken)
    assert manager.latest("t").status == "failed"
    assert manager.latest("t").message == "OSError: disk on fire"
    assert [h.status for h in manager.history(stage="s")] == ["started", "completed"]


# ---- close, with, garbage collection, exit --------------------------------------------------

def test_close_and_with(directory):
    manager = CheckpointManager(directory)
    manager.save_checkpoint("s")
    assert not manager.closed
    with manager as same:
        assert same is manager
    assert manager.closed
    manager.close()  # again: nothing
    for call in (lambda: manager.save_checkpoint("s"), lambda: manager.has_checkpoint("s"),
                 manager.history, lambda: manager.run_id):
        with pytest.raises(checkpoint.ClosedError) as raised:
            call()
        assert raised.value.code == "closed" and str(directory) in str(raised.value)
    assert "closed" in repr(manager)
    with CheckpointManager(directory) as reader:
        assert [r.outcome for r in reader.runs()] == ["finished"]


def test_with_closes_the_run_even_when_the_body_raises(directory):
    with pytest.raises(ZeroDivisionError):
        with CheckpointManager(directory) as manager:
            manager.save_checkpoint("s")
            1 / 0
    assert manager.closed
    with CheckpointManager(directory) as reader:
        assert reader.runs()[0].ended_at is not None


def test_garbage_collection_closes_the_run(directory):
    manager = CheckpointManager(directory)
    manager.save_checkpoint("s")
    del manager
    gc.collect()
    with CheckpointManager(directory) as reader:
        assert reader.runs()[0].outcome == "finished"


def test_a_manager_left_open_is_closed_at_exit_even_with_a_daemon_thread_saving(tmp_path):
    code = (
        "import sys, threading, time\n"
        "import checkpoint\n"
        "manager = checkpoint.CheckpointManager(sys.argv[1])\n"
        "started = threading.Event()\n"
        "def loop():\n"
        "    while True:\n"
        "        try:\n"
        "            manager.save_checkpoint('daemon')\n"
        "            started.set()\n"
        "        except checkpoint.ClosedError:\n"
        "            return\n"
        "threading.Thread(target=loop, daemon=True).start()\n"
        "started.wait(60)\n"
        "print('exiting', flush=True)\n")
    result = run_python(code, tmp_path, tmp_path / "dir")
    assert result.stdout == "exiting\n"
    with CheckpointManager(tmp_path / "dir") as reader:
        (run,) = reader.runs()
        assert run.outcome == "finished" and run.stages_completed >= 1
        assert reader.latest("daemon").version == run.stages_completed
        assert reader.verify() == []


# ---- fork -----------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_gets_forked_error_and_its_own_manager_works(directory):
    with CheckpointManager(directory) as manager:
        manager.save_checkpoint("parent")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report on the pipe, exit without cleanup
            status = 1
            try:
                try:
                    manager.save_checkpoint("child")
                    report = "no error"
                except checkpoint.ForkedError as error:
                    report = f"{error.code}|{os.getpid()}|{error}"
                with CheckpointManager(directory) as own:
                    own.save_checkpoint("child")
                    report += "|own:" + str(own.has_checkpoint("parent"))
                manager.close()  # forgets the parent's connection, touches nothing
                del manager
                gc.collect()
                os.write(write, report.encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            report = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, report
        code, child_pid, message, own = report.split("|")
        assert code == "forked" and own == "own:True"
        assert f"opened by process {os.getpid()}" in message and child_pid in message
        assert "Open a new CheckpointManager" in message
        # the parent's manager is unharmed and sees the child's save
        manager.save_checkpoint("after")
        assert manager.has_checkpoint("child") and manager.has_checkpoint("after")
        assert manager.verify() == []
    with CheckpointManager(directory) as reader:
        assert sorted(r.outcome for r in reader.runs()) == ["finished", "finished"]


# ---- threads ----------------------------------------------------------------------------------

def test_close_waits_for_calls_in_flight_and_later_calls_raise_closed(directory):
    manager = CheckpointManager(directory)
    errors, saved = [], []
    go = threading.Barrier(5)

    def save(index):
        manager.save_checkpoint(f"t{index}-first")
        saved.append(f"t{index}-first")
        go.wait()
        for n in range(50):
            try:
                manager.save_checkpoint(f"t{index}-{n}")
                saved.append(f"t{index}-{n}")
            except checkpoint.ClosedError:
                return
            except Exception as error:  # noqa: BLE001 - any other error fails the test
                errors.append(error)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    go.wait()
    manager.close()
    for thread in threads:
        thread.join()
    assert errors == []
    with CheckpointManager(directory) as reader:
        stored = {row.stage for row in reader.history()}
        assert stored == set(saved)  # every acknowledged save is there, nothing else
        assert reader.runs()[0].outcome == "finished"


# ---- logging ----------------------------------------------------------------------------------

def test_log_lines_go_to_the_python_logger_checkpoint(manager, caplog):
    # Quiet at INFO: only the failed stage, as a warning; a raised error is not logged.
    caplog.set_level(logging.INFO, logger="checkpoint")
    manager.save_checkpoint("s0")
    manager.begin_stage("t0")
    manager.fail_stage("t0", "boom %s {}")
    with pytest.raises(checkpoint.InvalidArgumentError):
        manager.save_checkpoint("")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("checkpoint", logging.WARNING, "stage 't0' failed: boom %s {}")]
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="checkpoint")
    manager.save_checkpoint("s")
    manager.begin_stage("t")
    manager.fail_stage("t", "boom %s {}")
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records[0][:2] == ("checkpoint", logging.DEBUG) and "saved stage 's'" in records[0][2]
    assert ("checkpoint", logging.DEBUG, "started stage 't'") in records
    assert ("checkpoint", logging.WARNING, "stage 't' failed: boom %s {}") in records
    assert all(r.threadName == threading.current_thread().name for r in caplog.records)
    assert caplog.records[0].filename == Path(__file__).name  # the caller's line


def test_debug_lines_only_when_enabled(manager, caplog):
    caplog.set_level(logging.INFO, logger="checkpoint")
    manager.has_checkpoint("s")
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]
    caplog.set_level(logging.DEBUG, logger="checkpoint")
    manager.has_checkpoint("s")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG] == [
        "has_checkpoint('s') = false"]
    caplog.clear()
    caplog.set_level(logging.ERROR, logger="checkpoint")
    manager.save_checkpoint("s")
    assert caplog.records == []


def test_logging_from_threads_and_a_handler_that_calls_the_manager(manager):
    logger = logging.getLogger("checkpoint")
    seen, errors = [], []

    class Reentrant(logging.Handler):
        def emit(self, record):
            # a handler may call the library (it must not close the manager); its own
            # lookup logs a debug line too, which comes back here (and stops here)
            if record.getMessage().startswith("saved stage"):
                seen.append((record.threadName, manager.has_checkpoint("probe")))

    handler = Reentrant()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        def save(index):
            try:
                for n in range(25):
                    manager.save_checkpoint(f"t{index}-{n}")
            except Exception as error:  # noqa: BLE001
                errors.append(error)

        threads = [threading.Thread(target=save, args=(i,), name=f"saver-{i}") for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert errors == []
    assert len(seen) == 100
    assert {name for name, _ in seen} == {f"saver-{i}" for i in range(4)}


def test_logging_at_exit_does_not_crash(tmp_path):
    code = ("import logging, sys\n"
            "import checkpoint\n"
            "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format='%(message)s')\n"
            "manager = checkpoint.CheckpointManager(sys.argv[1])\n"
            "manager.save_checkpoint('s')\n")
    result = run_python(code, tmp_path, tmp_path / "dir")
    assert "saved stage 's' version 1" in result.stdout
    assert result.stderr == ""


# ---- the module and its stubs -----------------------------------------------------------------

def stub_tree():
    stub = module_path().parent / "checkpoint.pyi"
    assert stub.is_file(), f"no type stubs beside {module_path()}"
    return ast.parse(stub.read_text(encoding="utf-8"))


def public(names):
    return {name for name in names if not name.startswith("_")}


def test_the_stubs_name_exactly_what_the_module_has():
    tree = stub_tree()
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            stubbed.add(node.target.id)
    assert public(stubbed) == public(dir(checkpoint)) - {"annotations"}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not issubclass(getattr(checkpoint, node.name),
                                                             BaseException):
            members = {item.name for item in node.body
                       if isinstance(item, ast.FunctionDef)} | {
                item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
            actual = public(dir(getattr(checkpoint, node.name)))
            assert public(members) == actual, node.name


def test_the_stubs_keyword_names_match_the_module():
    tree = stub_tree()
    (manager_class,) = [n for n in tree.body
                        if isinstance(n, ast.ClassDef) and n.name == "CheckpointManager"]
    for method in manager_class.body:
        if not isinstance(method, ast.FunctionDef) or method.name.startswith("__"):
            continue
        if any(isinstance(d, ast.Name) and d.id == "property" for d in method.decorator_list):
            continue
        arguments = [a.arg for a in method.args.args[1:] + method.args.kwonlyargs]
        doc = getattr(CheckpointManager, method.name).__doc__
        for argument in arguments:
            assert f"{argument}:" in doc.splitlines()[0] or f"{argument}=" in doc, \
                (method.name, argument, doc.splitlines()[0])


def test_module_metadata():
    assert checkpoint.__version__.count(".") == 2
    assert checkpoint.schema_version() >= 2
    assert checkpoint.MAX_NAME_BYTES == 1024
    assert "CheckpointManager" in checkpoint.__doc__
