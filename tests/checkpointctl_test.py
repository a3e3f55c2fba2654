#!/usr/bin/env python3
"""checkpointctl, driven as a child process: every subcommand and format, outputs parsed back
with Python's csv and json modules and compared field by field with the database read
independently (Python's sqlite3 on the `history` and `current_state` views and the `runs`
table); the read-only guarantee (sha256 of checkpoints.db and its -wal around every read
command, while a worker process holds the database open, paused); clear with and without a
terminal; verify on sound and damaged databases; migrate; import-legacy of a directory written
by the original Python CheckpointManager; every error with its exit code. Issue 4's columns
(metadata, fingerprint, stored outputs, inputs) in history and dump, stale stages in status,
prune (rows, runs and files counted before and after with sqlite3) and clear --downstream, on
databases written by the library through tests/ctl_fixture.cpp.

Environment (set by tests/CMakeLists.txt):
  CHECKPOINTCTL           the checkpointctl binary
  CHECKPOINT_TEST_WORKER  tests/worker.cpp (save / begin / fail / serve)
  CHECKPOINT_CTL_FIXTURE  tests/ctl_fixture.cpp (saves with SaveOptions, clears, reads)
  CHECKPOINT_EXAMPLE      the example pipeline
  SQLITE3                 the sqlite3 shell (unused: Python's sqlite3 reads the database)
  CHECKPOINT_TEST_SHARD   I/N: run only part I (0-based) of N (see load_tests; unset: all)
"""

import csv
import hashlib
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import unittest
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from unittest_support import postgres_database, shard  # noqa: E402


def _required_binary(variable):
    value = os.environ.get(variable)
    if not value or not os.access(value, os.X_OK):
        raise RuntimeError(f"{variable} must name an executable (got {value!r}); run through ctest")
    return value


CTL = _required_binary("CHECKPOINTCTL")
WORKER = _required_binary("CHECKPOINT_TEST_WORKER")
FIXTURE = _required_binary("CHECKPOINT_CTL_FIXTURE")
EXAMPLE = _required_binary("CHECKPOINT_EXAMPLE")

# Central European time, as a POSIX rule (no tzdata needed): UTC+1 in winter, UTC+2 in
# summer. Every child runs with it, so that naive local times have a known meaning.
TZ = "CET-1CEST,M3.5.0,M10.5.0/3"
ENV = dict(os.environ, TZ=TZ, LC_ALL="C.UTF-8")

# For peak memory measurements: AddressSanitizer (tools/test.sh's second phase) keeps freed
# memory in a quarantine of up to 256 MB to catch uses after free, so a peak grows with the
# number of allocations made, not only with what is held at once. Without it, the peak of a
# sanitized program grows like a plain one's. (No effect on other builds.)
WITHOUT_ASAN_QUARANTINE = dict(ENV, ASAN_OPTIONS=":".join(
    option for option in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
                          "thread_local_quarantine_size_kb=0") if option))

(EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_VERIFY, EXIT_NOT_FOUND, EXIT_NOT_A_DB, EXIT_SCHEMA,
 EXIT_BUSY, EXIT_UNAVAILABLE) = range(9)

# The schema version the tool writes: one per migration file.
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "sqlite"
SCHEMA_VERSION = len(list(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql")))
# A database written by the library at schema version 1 (tests/data/README.md).
SCHEMA1_DB = Path(__file__).resolve().parent / "data" / "schema1.db"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# The columns before issue 4: existing consumers rely on them, in this order, first.
ORIGINAL_HISTORY_COLUMNS = ["id", "pipeline", "stage", "status", "version", "timestamp",
                            "run_id", "duration_ms", "message"]
HISTORY_COLUMNS = ORIGINAL_HISTORY_COLUMNS + ["fingerprint", "metadata", "output_size",
                                              "output_sha256", "output_location", "inputs"]
ORIGINAL_STATUS_COLUMNS = ["stage", "status", "version", "last_change", "run_id"]
STATUS_COLUMNS = ORIGINAL_STATUS_COLUMNS + ["reason"]
RUNS_COLUMNS = ["run_id", "started_at", "ended_at", "host", "pid", "user", "completed", "failed",
                "outcome"]
# A history (and dump) table without --columns: what fits a 120-column terminal.
HISTORY_TABLE_COLUMNS = ["id", "stage", "status", "version", "timestamp", "message"]
DUMP_TABLE_COLUMNS = ["id", "pipeline", "stage", "status", "version", "timestamp"]
PIPELINE_COLUMNS = ["pipeline", "stages", "completed", "runs", "last_activity"]
SQLITE3 = os.environ.get("SQLITE3") or shutil.which("sqlite3")
FORMATS = ("csv", "json", "ndjson")

# Names and messages that break naive CSV / JSON / table writers.
ODD_PREFIX = 'odd, "stage"\nline two ü'          # saved as ODD_PREFIX-0, ODD_PREFIX-1
ODD_FAILED = 'failing, "quoted"\nstage — 日本'
ODD_MESSAGE = 'boom, "quoted"\nsecond line — ✓ 日本 🚀'
CRLF_MESSAGE = 'crlf\r\nend, "x"\ttab'
EMOJI_STAGE = "émoji 🚀 ☃"
OTHER = 'other, "pipe"'                         # a second pipeline with an odd name
# Issue 4's fields, saved through the library (tests/ctl_fixture.cpp) into the reference.
RAW = 'raw, "data"'
FEATURES = 'features @v;2\nü'                   # '@' and ';' as in the inputs column's text
ODD_METADATA = {"rows": 1200, "source": 'commas, "quotes"\nline two — ✓ 日本 🚀',
                "nested": {"list": [1, "two", None, True, False], "empty": {}},
                "tab\tkey": -7, "ratio": 0.25}
ODD_FINGERPRINT = 'fp, "1"\n✓'

TIMEOUT = 30


# ---------------------------------------------------------------------------------------------
# Running things


def ctl(*args, cwd=None, stdin=subprocess.DEVNULL, input=None, env=None):
    """Runs checkpointctl; stdout and stderr captured as bytes."""
    kwargs = dict(cwd=cwd, capture_output=True, timeout=TIMEOUT, env=env or ENV)
    if input is not None:
        kwargs["input"] = input
    else:
        kwargs["stdin"] = stdin
    return subprocess.run([CTL, *[str(a) for a in args]], **kwargs)


def run_worker(*args):
    result = subprocess.run([WORKER, *[str(a) for a in args]], capture_output=True,
                            timeout=TIMEOUT, env=ENV, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"worker {args!r} exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace')}")
    return result


def run_fixture(directory, commands, *options):
    """Runs tests/ctl_fixture.cpp (one CheckpointManager: one run) over `commands` (dicts,
    see ctl_fixture.cpp); returns its replies (dicts), one per command."""
    text = "".join(json.dumps(command) + "\n" for command in commands)
    result = subprocess.run([FIXTURE, str(directory), *[str(o) for o in options]],
                            input=text.encode(), capture_output=True, timeout=120, env=ENV)
    if result.returncode != 0:
        raise AssertionError(f"fixture exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace')}")
    lines = result.stdout.decode().splitlines()
    if not lines or lines[0] != "ready" or len(lines) != len(commands) + 1:
        raise AssertionError(f"fixture printed {lines!r} for {commands!r}")
    return [json.loads(line) for line in lines[1:]]


def save(stage, **options):
    """A fixture save command: metadata=, fingerprint=, output=, inputs=."""
    return dict(op="save", stage=stage, **options)


class Worker:
    """A checkpoint_test_worker child that the test steps line by line (serve / begin)."""

    def __init__(self, test, *args):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([WORKER, *[str(a) for a in args]], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, bufsize=0,
                                     env=ENV)
        test.addCleanup(self.kill)

    def expect(self, line, timeout=20):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"worker did not print {line!r} within {timeout} s; "
                                 f"stderr: {self.stderr()}")
        got = self.proc.stdout.readline().decode().rstrip("\n")
        if got != line:
            raise AssertionError(f"worker printed {got!r}, expected {line!r}; "
                                 f"stderr: {self.stderr()}")

    def send(self, command):
        self.proc.stdin.write((command + "\n").encode())

    def do(self, command):
        self.send(command)
        self.expect("ok")

    def close(self):
        """Ends a serve worker (end of stdin) and returns its exit code."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=TIMEOUT)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream and not stream.closed:
                stream.close()
        self.err.close()


def on_terminal(args, answer=None, stdout_terminal=False):
    """Runs checkpointctl with a pseudo-terminal as stdin (or as stdout). When `answer` is
    given, waits for the confirmation prompt on stderr first, then types the answer.
    Returns (exit code, stdout bytes, stderr bytes, the text seen before answering)."""
    master, slave = pty.openpty()
    try:
        if stdout_terminal:
            proc = subprocess.Popen([CTL, *args], stdin=subprocess.DEVNULL, stdout=slave,
                                    stderr=subprocess.PIPE, env=ENV)
        else:
            proc = subprocess.Popen([CTL, *args], stdin=slave, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=ENV)
    finally:
        os.close(slave)
    try:
        prompt = b""
        if answer is not None:
            deadline = time.monotonic() + TIMEOUT
            fd = proc.stderr.fileno()
            while b"continue:" not in prompt:
                remaining = deadline - time.monotonic()
                ready, _, _ = select.select([fd], [], [], max(remaining, 0))
                if not ready:
                    raise AssertionError(f"no confirmation prompt; stderr so far {prompt!r}")
                chunk = os.read(fd, 4096)
                if not chunk:
                    break  # the tool ended without asking
                prompt += chunk
            if proc.poll() is None:
                os.write(master, answer.encode() + b"\n")
        if stdout_terminal:
            output = b""
            while True:
                ready, _, _ = select.select([master], [], [], TIMEOUT)
                if not ready:
                    raise AssertionError("no output on the terminal")
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            err = proc.stderr.read()
            code = proc.wait(timeout=TIMEOUT)
            return code, output, err, prompt
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out, prompt + err, prompt
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


# ---------------------------------------------------------------------------------------------
# Reading the database independently


def connect_ro(db):
    uri = "file:" + urllib.parse.quote(str(db)) + "?mode=ro"
    return sqlite3.connect(uri, uri=True)


def process_alive(host, pid):
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reported_status(status, run_outcome, host, pid, open_attempt=True):
    """The status as the library reports it: a started row whose run has ended, or whose
    process is gone, reads 'incomplete'."""
    if status == "started" and open_attempt and run_outcome == "running" and \
            not process_alive(host, pid):
        return "incomplete"
    return status


def db_history(db, pipeline=None):
    """The history view, oldest first, as dicts with the tool's column names."""
    with connect_ro(db) as conn:
        sql = ("SELECT id, pipeline, stage, status, version, timestamp, run_id, duration_ms, "
               "message, run_outcome, host, pid, open_attempt, fingerprint, metadata, "
               "output_size, output_sha256, output_in_database, inputs FROM history")
        params = ()
        if pipeline is not None:
            sql += " WHERE pipeline = ?"
            params = (pipeline,)
        rows = conn.execute(sql + " ORDER BY id", params).fetchall()
    result = []
    for row in rows:
        record = dict(zip(HISTORY_COLUMNS, row[:9]))
        record["status"] = reported_status(record["status"], row[9], row[10], row[11],
                                           bool(row[12]))
        fingerprint, metadata, size, digest, in_database, inputs = row[13:]
        record.update(fingerprint=fingerprint,
                      metadata=None if metadata is None else json.loads(metadata),
                      output_size=size, output_sha256=digest,
                      output_location={None: None, 1: "database", 0: "file"}[in_database],
                      inputs=None if inputs is None else json.loads(inputs))
        result.append(record)
    return result


class Reason:
    """A stale stage's reason: the library's words, which must mention each of `mentions`."""

    def __init__(self, *mentions):
        self.mentions = mentions

    def __eq__(self, other):
        if isinstance(other, Reason):
            return self.mentions == other.mentions
        return isinstance(other, str) and other != "" and all(m in other for m in self.mentions)

    __hash__ = None

    def __repr__(self):
        return f"<a reason mentioning {', '.join(map(repr, self.mentions))}>"


def outputs_directory(db):
    return Path(str(db) + "-outputs")


def stale_reason(db, heads, row, checked):
    """Why a completed row is not up to date (a Reason), or None when it is: its output
    file is missing or of another size, or an input it used is no longer the input stage's
    current row, or is stale itself (transitively). `heads` maps stage -> current_state row."""
    if row["id"] in checked:
        return None
    if row["output_in_database"] == 0:
        path = outputs_directory(db) / row["output_sha256"]
        if not path.is_file():
            return Reason(str(path), "missing")
        if path.stat().st_size != row["output_size"]:
            return Reason(str(path), str(path.stat().st_size), str(row["output_size"]))
    unchanged = []
    for used in json.loads(row["inputs"]) if row["inputs"] else []:
        head = heads.get(used["stage"])
        name = f"'{used['stage']}'"
        if head is None:
            return Reason(name)
        if head["id"] != used["id"]:
            if head["status"] == "completed":
                return Reason(name, "saved again", f"version {head['version']}",
                              f"version {used['version']}")
            if head["status"] == "cleared":
                return Reason(name, "cleared")
            return Reason(name)
        unchanged.append((name, head))
    for name, head in unchanged:
        if stale_reason(db, heads, head, checked) is not None:
            return Reason(name, "stale")
    checked.add(row["id"])
    return None


def db_status(db, pipeline="default"):
    """current_state as the tool reports it: a completed stage that is not up to date reads
    'stale', with a reason (see stale_reason)."""
    columns = ["stage", "status", "version", "timestamp", "run_id", "run_outcome", "host",
               "pid", "id", "inputs", "output_size", "output_sha256", "output_in_database"]
    with connect_ro(db) as conn:
        rows = [dict(zip(columns, row)) for row in conn.execute(
            f"SELECT {', '.join(columns)} FROM current_state WHERE pipeline = ? ORDER BY stage",
            (pipeline,))]
    heads = {r["stage"]: r for r in rows}
    result = []
    for r in rows:
        status = reported_status(r["status"], r["run_outcome"], r["host"], r["pid"])
        reason = stale_reason(db, heads, r, set()) if status == "completed" else None
        result.append(dict(zip(STATUS_COLUMNS, (r["stage"], "stale" if reason else status,
                                                r["version"], r["timestamp"], r["run_id"],
                                                reason))))
    return result


def db_runs(db, pipeline="default"):
    with connect_ro(db) as conn:
        rows = conn.execute(
            "SELECT run_id, started_at, ended_at, host, pid, user, "
            "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.run_id "
            " AND c.status = 'completed'), "
            "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.run_id "
            " AND c.status = 'failed'), outcome "
            "FROM runs r WHERE pipeline = ? ORDER BY started_at, run_id", (pipeline,)).fetchall()
    result = []
    for row in rows:
        record = dict(zip(RUNS_COLUMNS, row))
        if record["outcome"] == "running" and not process_alive(record["host"], record["pid"]):
            record["outcome"] = "died"
        result.append(record)
    return result


def db_count(db, table):
    with connect_ro(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def db_rows(db, sql, params=()):
    with connect_ro(db) as conn:
        return conn.execute(sql, params).fetchall()


def sha256(path):
    path = Path(path)
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def directory_digest(directory):
    """sha256 over the names, sizes and contents of the files in `directory` (None when
    absent)."""
    directory = Path(directory)
    if not directory.exists():
        return None
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def db_files(db):
    """sha256 of the database file, of its -wal (None when absent) and of its outputs
    directory."""
    return {"db": sha256(db), "wal": sha256(str(db) + "-wal"),
            "outputs": directory_digest(outputs_directory(db))}


# ---------------------------------------------------------------------------------------------
# Parsing the tool's outputs


def parse_output(fmt, stdout, columns):
    """Parses csv / json / ndjson output into a list of dicts, checking its framing."""
    text = stdout.decode("utf-8")  # strict: the output must be valid UTF-8
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        if not rows or rows[0] != columns:
            raise AssertionError(f"CSV header {rows[:1]!r}, expected {columns!r}")
        for row in rows[1:]:
            if len(row) != len(columns):
                raise AssertionError(f"CSV row with {len(row)} fields: {row!r}")
        return [dict(zip(columns, row)) for row in rows[1:]]
    if fmt == "json":
        document = json.loads(text)  # one document: raises on anything else
        if not isinstance(document, list):
            raise AssertionError(f"JSON document is not an array: {text[:200]!r}")
        objects = document
    elif fmt == "ndjson":
        if text and not text.endswith("\n"):
            raise AssertionError("NDJSON output does not end with a newline")
        objects = [json.loads(line) for line in text.split("\n")[:-1]] if text else []
    else:
        raise ValueError(fmt)
    for obj in objects:
        if not isinstance(obj, dict) or list(obj.keys()) != columns:
            raise AssertionError(f"object {obj!r} does not have the columns {columns!r}")
    return objects


def text_form(column, value):
    """What a field reads as in CSV and tables: metadata as compact JSON (keys sorted, as
    stored), inputs as stage@version;stage@version, anything else as text."""
    if isinstance(value, Reason):
        return value
    if column == "metadata":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if column == "inputs":
        return ";".join(f"{i['stage']}@{i['version']}" for i in value)
    return str(value)


def as_csv(records):
    """What a record reads as in CSV: every field text, NULL as the empty field."""
    return [{k: "" if v is None else text_form(k, v) for k, v in r.items()} for r in records]


def char_width(c):
    """Terminal columns of one character, from Python's own Unicode tables (independent of
    the tool's): 2 for East Asian Wide and Fullwidth, 0 for combining marks and format
    characters, else 1."""
    if ord(c) < 0x300:
        return 1
    if unicodedata.category(c) in ("Mn", "Me", "Cf") or 0xFE00 <= ord(c) <= 0xFE0F:
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def display_width(text):
    return sum(char_width(c) for c in text)


def cut_to_width(text, width):
    if display_width(text) <= width:
        return text
    kept, used = "", 0
    for c in text:
        if used + char_width(c) > width - 1:
            break
        kept += c
        used += char_width(c)
    return kept + "\u2026"


def escaped(text):
    """A name or message as a table shows it: one line, unambiguous."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0:
            out.append("".join(f"\\x{b:02X}" for b in c.encode()))
        else:
            out.append(c)
    return "".join(out)


# Table cells are cut to these widths (csv and json hold the values whole).
UNCUT_COLUMNS = {"run_id", "timestamp", "last_change", "started_at", "ended_at", "last_activity"}


def table_cell(value, column=None):
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = text_form(column, value)
    if isinstance(text, Reason):
        return text
    cell = escaped(text)
    structured = column in ("metadata", "inputs")
    if not structured and (cell in ("", "-") or cell[0] in ' "' or cell[-1] == " "):
        cell = '"' + cell.replace('"', '\\"') + '"'
    if column == "output_sha256":
        return cell[:12]
    if column in UNCUT_COLUMNS:
        return cell
    return cut_to_width(cell, 32 if column in ("message", "reason", "metadata", "inputs") else 24)


# ---------------------------------------------------------------------------------------------
# The reference database, built once by real writers, copied into each test's own directory


TEMPLATE = None  # tempfile.TemporaryDirectory holding checkpoints.db


def build_reference(directory):
    """Writes a database with odd names and messages through the library (worker)."""
    d = str(directory)
    run_worker("save", d, "ok", 3, "begin")         # started + completed, with durations
    run_worker("save", d, ODD_PREFIX, 2)             # completed ODD_PREFIX-0 and -1
    run_worker("fail", d, ODD_FAILED, ODD_MESSAGE)   # started + failed, odd message
    run_worker("fail", d, "crlf stage", CRLF_MESSAGE)
    serve = subprocess.run(
        [WORKER, "serve", d], input="save twice\nsave twice\nbegin left-open\nclear ok-1\n"
        f"save {EMOJI_STAGE}\n".encode(), capture_output=True, timeout=TIMEOUT, env=ENV)
    assert serve.returncode == 0, serve.stderr
    # Issue 4: metadata, a fingerprint, outputs in the database and in files (the limit is
    # 64 bytes here), inputs; odd names and values. All up to date: none is stale.
    run_fixture(d, [
        save(RAW, metadata=ODD_METADATA, fingerprint=ODD_FINGERPRINT, output="raw bytes"),
        save(FEATURES, inputs=[RAW, ODD_PREFIX + "-1"], output="f" * 200,
             metadata={"score": 0.25}),
        save("report", inputs=[FEATURES], output="r" * 200),
        save("summary", inputs=[FEATURES, "report", RAW], fingerprint="v2", output=""),
    ], "--max-inline", 64)
    serve = subprocess.run(
        [WORKER, "serve", d, "--pipeline", OTHER],
        input=b"save s1\nsave s2\nclear-all\nsave s3\n", capture_output=True, timeout=TIMEOUT,
        env=ENV)
    assert serve.returncode == 0, serve.stderr
    run_worker("fail", d, "s4", "other failure", "--pipeline", OTHER)
    # One file, no -wal: fold the WAL into the database so that copies are exact.
    conn = sqlite3.connect(os.path.join(d, "checkpoints.db"))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        path = Path(d) / ("checkpoints.db" + suffix)
        if path.exists():
            path.unlink()


def setUpModule():
    global TEMPLATE
    TEMPLATE = tempfile.TemporaryDirectory(prefix="checkpointctl-template-")
    build_reference(TEMPLATE.name)


def tearDownModule():
    if TEMPLATE is not None:
        TEMPLATE.cleanup()


class CtlTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="checkpointctl-test-")
        self.addCleanup(self._tmp.cleanup)
        self.tmp = Path(self._tmp.name)

    def reference_copy(self, name="ck"):
        """A copy of the reference database in this test's directory: (dir, db file)."""
        directory = self.tmp / name
        directory.mkdir()
        shutil.copy2(Path(TEMPLATE.name) / "checkpoints.db", directory / "checkpoints.db")
        shutil.copytree(Path(TEMPLATE.name) / "checkpoints.db-outputs",
                        directory / "checkpoints.db-outputs")
        return directory, directory / "checkpoints.db"

    # ---- assertions on a finished command

    def describe(self, result):
        return (f"command {result.args!r} exited {result.returncode}\n"
                f"stdout: {result.stdout.decode(errors='replace')[:3000]}\n"
                f"stderr: {result.stderr.decode(errors='replace')[:3000]}")

    def assert_ok(self, result):
        self.assertEqual(result.returncode, EXIT_OK, self.describe(result))
        self.assert_no_crash(result)

    def assert_no_crash(self, result):
        err = result.stderr.decode(errors="replace")
        for marker in ("Traceback", "terminate called", "what():", "Segmentation", "Aborted",
                       "core dumped"):
            self.assertNotIn(marker, err, self.describe(result))

    def assert_error(self, result, code, mentions=None):
        """A runtime error: the exit code, nothing on stdout, one checkpointctl: line."""
        self.assertEqual(result.returncode, code, self.describe(result))
        self.assertEqual(result.stdout, b"", self.describe(result))
        self.assert_no_crash(result)
        lines = result.stderr.decode(errors="replace").splitlines()
        self.assertEqual(len(lines), 1, self.describe(result))
        self.assertTrue(lines[0].startswith("checkpointctl: "), self.describe(result))
        if mentions:
            self.assertIn(mentions, lines[0], self.describe(result))

    def assert_usage(self, result):
        """A usage error: exit 2, nothing on stdout, something on stderr."""
        self.assertEqual(result.returncode, EXIT_USAGE, self.describe(result))
        self.assertEqual(result.stdout, b"", self.describe(result))
        self.assertNotEqual(result.stderr.strip(), b"", self.describe(result))
        self.assert_no_crash(result)

    def assert_timestamps(self, records, *fields):
        for record in records:
            for field in fields:
                value = record[field]
                if value not in (None, ""):
                    self.assertRegex(value, ISO_UTC, f"{field} of {record!r}")

    def check_every_format(self, args, columns, expected, timestamp_fields=()):
        """Runs `args --format F` for csv, json and ndjson; compares each with `expected`."""
        for fmt in FORMATS:
            with self.subTest(args=args, format=fmt):
                result = ctl(*args, "--format", fmt)
                self.assert_ok(result)
                got = parse_output(fmt, result.stdout, columns)
                self.assertEqual(got, as_csv(expected) if fmt == "csv" else expected)
                self.assert_timestamps(got, *timestamp_fields)
                if fmt == "csv":
                    self.assertTrue(result.stdout.endswith(b"\r\n") or not expected)

    def check_table(self, result, columns, expected):
        """A table: a header, then one line per record (control characters escaped), each
        holding the record's cells in order."""
        self.assert_ok(result)
        text = result.stdout.decode("utf-8")
        self.assertNotIn("\r", text)
        lines = text.split("\n")
        self.assertEqual(lines[-1], "", "the table ends with a newline")
        lines = lines[:-1]
        self.assertEqual(lines[0].split(), columns)
        self.assertEqual(len(lines), len(expected) + 1, text)
        # where each column starts, in terminal columns: the same on every line
        starts, end = [], 0
        for column in columns:
            starts.append(lines[0].index(column, end))
            end = starts[-1] + len(column)
        for line, record in zip(lines[1:], expected):
            position = 0
            for column, start in zip(columns, starts):
                cell = table_cell(record[column], column)
                if isinstance(cell, Reason):  # the library's words: in the rest of the line
                    rest = line[position:].strip()
                    if rest.endswith("\u2026"):  # cut to its width
                        self.assertEqual(display_width(rest), 32, line)
                    else:
                        self.assertEqual(rest, cell, line)
                    continue
                found = line.find(cell, position)
                self.assertGreaterEqual(found, 0, f"cell {cell!r} of {column} in {line!r}")
                if column != columns[0]:
                    self.assertEqual(display_width(line[:found]), start,
                                     f"{column} misaligned in {line!r}")
                position = found + len(cell)


# ---------------------------------------------------------------------------------------------


class HelpTest(CtlTestCase):
    SUBCOMMANDS = ["status", "history", "runs", "dump", "clear", "prune", "verify", "migrate",
                   "import-legacy"]

    def test_help_of_every_subcommand_shows_an_example(self):
        for subcommand in [None] + self.SUBCOMMANDS:
            for flag in ("--help", "-h"):
                args = [flag] if subcommand is None else [subcommand, flag]
                with self.subTest(args=args):
                    result = ctl(*args, cwd=self.tmp)
                    self.assert_ok(result)
                    text = result.stdout.decode()
                    self.assertRegex(text, r"(?m)^Example: checkpointctl ")
                    if subcommand:
                        self.assertIn(subcommand, text)
                        self.assertIn("--dir", text)
                        self.assertIn("--db", text)
                        self.assertIn("--pipeline", text)
        # help never creates anything
        self.assertEqual(list(self.tmp.iterdir()), [])

    def test_help_names_the_options_of_each_subcommand(self):
        expected = {
            "status": ["--format"],
            "history": ["--format", "--stage", "--run", "--status", "--since", "--until",
                        "--limit"],
            "runs": ["--format"],
            "dump": ["--format"],
            "clear": ["--stage", "--yes", "--downstream"],
            "prune": ["--older-than", "--keep-last", "--orphan-grace", "--yes", "30d",
                      "only removes orphaned output files"],
            "import-legacy": ["legacy_dir"],
        }
        for subcommand, options in expected.items():
            text = ctl(subcommand, "--help").stdout.decode()
            for option in options:
                self.assertIn(option, text, subcommand)
        main = ctl("--help").stdout.decode()
        for subcommand in self.SUBCOMMANDS:
            self.assertIn(subcommand, main)


class FormatTest(CtlTestCase):
    """status, history, runs and dump in every format, compared with the database."""

    def test_reference_database_holds_the_odd_cases(self):
        # The fixture itself: if these fail, the other tests would prove less.
        _, db = self.reference_copy()
        history = db_history(db)
        stages = {r["stage"] for r in history}
        self.assertIn(ODD_PREFIX + "-0", stages)
        self.assertIn(ODD_FAILED, stages)
        self.assertIn(EMOJI_STAGE, stages)
        messages = {r["message"] for r in history}
        self.assertIn(ODD_MESSAGE, messages)
        self.assertIn(CRLF_MESSAGE, messages)
        statuses = {r["status"] for r in db_history(db)}
        self.assertTrue({"started", "completed", "failed", "cleared", "incomplete"} <= statuses)
        other = db_history(db, OTHER)
        self.assertTrue(any(r["stage"] is None and r["status"] == "cleared" for r in other))
        # issue 4's fields, as the library stored them
        by_stage = {r["stage"]: r for r in history if r["status"] == "completed"}
        self.assertEqual(by_stage[RAW]["metadata"], ODD_METADATA)
        self.assertEqual(by_stage[RAW]["fingerprint"], ODD_FINGERPRINT)
        self.assertEqual(by_stage[RAW]["output_location"], "database")
        self.assertEqual(by_stage[FEATURES]["output_location"], "file")
        self.assertEqual(by_stage["summary"]["output_size"], 0)
        self.assertEqual([i["stage"] for i in by_stage["summary"]["inputs"]],
                         [FEATURES, "report", RAW])
        self.assertTrue(all(r["status"] != "stale" for r in db_status(db)))

    def test_status_every_format_matches_the_database(self):
        directory, db = self.reference_copy()
        for pipeline in ("default", OTHER):
            expected = db_status(db, pipeline)
            self.assertGreater(len(expected), 3)
            self.check_every_format(["status", "--dir", directory, "--pipeline", pipeline],
                                    STATUS_COLUMNS, expected, ["last_change"])
        # the derived states are reported as the library defines them
        states = {r["stage"]: r["status"] for r in db_status(db)}
        self.assertEqual(states["ok-1"], "cleared")
        self.assertEqual(states["left-open"], "incomplete")
        self.assertEqual(states[ODD_FAILED], "failed")
        self.assertEqual(states["twice"], "completed")
        other = {r["stage"]: r["status"] for r in db_status(db, OTHER)}
        self.assertEqual(other, {"s1": "cleared", "s2": "cleared", "s3": "completed",
                                 "s4": "failed"})

    def test_status_of_named_stages_in_the_order_given(self):
        directory, db = self.reference_copy()
        current = {r["stage"]: r for r in db_status(db)}
        names = ["twice", "never-ran", ODD_PREFIX + "-1", ODD_FAILED]
        expected = [current.get(name) or {"stage": name, "status": "not run", "version": None,
                                          "last_change": None, "run_id": None, "reason": None}
                    for name in names]
        self.assertEqual(expected[0]["version"], 2)
        self.check_every_format(["status", "--dir", directory, *names], STATUS_COLUMNS,
                                expected, ["last_change"])

    def test_history_every_format_matches_the_database(self):
        directory, db = self.reference_copy()
        for pipeline in ("default", OTHER):
            expected = db_history(db, pipeline)
            self.assertGreater(len(expected), 5)
            self.check_every_format(["history", "--dir", directory, "--pipeline", pipeline],
                                    HISTORY_COLUMNS, expected, ["timestamp"])

    def test_history_filters_match_the_database(self):
        directory, db = self.reference_copy()
        everything = db_history(db, "default")
        runs = db_runs(db)
        failing_run = next(r["run_id"] for r in runs if r["failed"] > 0)
        middle, late = everything[len(everything) // 3], everything[2 * len(everything) // 3]
        self.assertLess(middle["timestamp"], late["timestamp"])
        today = everything[0]["timestamp"][:10]
        cases = [
            (["--stage", "twice"], lambda r: r["stage"] == "twice"),
            (["--stage", ODD_FAILED], lambda r: r["stage"] == ODD_FAILED),
            (["--run", failing_run], lambda r: r["run_id"] == failing_run),
            (["--status", "completed"], lambda r: r["status"] == "completed"),
            (["--status", "failed"], lambda r: r["status"] == "failed"),
            (["--status", "cleared"], lambda r: r["status"] == "cleared"),
            (["--status", "started"], lambda r: r["status"] == "started"),
            (["--status", "incomplete"], lambda r: r["status"] == "incomplete"),
            (["--since", middle["timestamp"]], lambda r: r["timestamp"] >= middle["timestamp"]),
            (["--until", late["timestamp"]], lambda r: r["timestamp"] < late["timestamp"]),
            (["--since", middle["timestamp"], "--until", late["timestamp"]],
             lambda r: middle["timestamp"] <= r["timestamp"] < late["timestamp"]),
            (["--since", today], lambda r: True),
            (["--since", middle["timestamp"][:16]],
             lambda r: r["timestamp"] >= middle["timestamp"][:16]),
            (["--until", "2000-01-01"], lambda r: False),
            (["--since", "2999-01-01T00:00:00.000Z"], lambda r: False),
            (["--status", "completed", "--stage", "twice"],
             lambda r: r["status"] == "completed" and r["stage"] == "twice"),
        ]
        for args, keep in cases:
            expected = [r for r in everything if keep(r)]
            self.check_every_format(["history", "--dir", directory, *args], HISTORY_COLUMNS,
                                    expected, ["timestamp"])
        # sanity of the cases: the filters did select something different
        self.assertEqual([r["version"] for r in everything
                          if r["stage"] == "twice" and r["status"] == "completed"], [1, 2])
        self.assertEqual(len([r for r in everything if r["status"] == "incomplete"]), 1)
        # --stage also shows the pipeline-wide clears
        other_all = db_history(db, OTHER)
        expected = [r for r in other_all if r["stage"] in ("s1", None)]
        self.assertTrue(any(r["stage"] is None for r in expected))
        self.check_every_format(["history", "--dir", directory, "--pipeline", OTHER, "--stage",
                                 "s1"], HISTORY_COLUMNS, expected, ["timestamp"])
        # --limit: the oldest rows first
        for limit in (0, 1, 4, 10_000):
            self.check_every_format(["history", "--dir", directory, "--limit", limit],
                                    HISTORY_COLUMNS, everything[:limit], ["timestamp"])
        failed = [r for r in everything if r["status"] == "failed"]
        self.check_every_format(["history", "--dir", directory, "--status", "failed", "--limit",
                                 1], HISTORY_COLUMNS, failed[:1], ["timestamp"])

    def test_runs_every_format_matches_the_database(self):
        directory, db = self.reference_copy()
        for pipeline in ("default", OTHER):
            expected = db_runs(db, pipeline)
            self.assertGreater(len(expected), 1)
            self.check_every_format(["runs", "--dir", directory, "--pipeline", pipeline],
                                    RUNS_COLUMNS, expected, ["started_at", "ended_at"])
        outcomes = {r["outcome"] for r in db_runs(db)}
        self.assertEqual(outcomes, {"finished", "failed"})
        self.assertEqual(sum(r["failed"] for r in db_runs(db)), 2)

    def test_dump_every_format_holds_every_pipeline(self):
        directory, db = self.reference_copy()
        expected = db_history(db)  # every pipeline
        self.assertEqual({r["pipeline"] for r in expected}, {"default", OTHER})
        self.check_every_format(["dump", "--dir", directory], HISTORY_COLUMNS, expected,
                                ["timestamp"])
        # without --format it is NDJSON; --pipeline narrows it to that pipeline
        for args, rows in ((["dump", "--dir", directory], expected),
                           (["dump", "--dir", directory, "--pipeline", OTHER], db_history(db, OTHER)),
                           (["--pipeline", "default", "dump", "--dir", directory],
                            db_history(db, "default"))):
            result = ctl(*args)
            self.assert_ok(result)
            self.assertEqual(parse_output("ndjson", result.stdout, HISTORY_COLUMNS), rows)
        self.assertTrue(db_history(db, OTHER) and db_history(db, OTHER) != expected)
        self.assert_error(ctl("dump", "--dir", directory, "--pipeline", "nope"), EXIT_NOT_FOUND,
                          "pipeline 'nope' has no rows")
        self.check_table(ctl("dump", "--dir", directory, "--format", "table", "--columns",
                             ",".join(HISTORY_COLUMNS)), HISTORY_COLUMNS, expected)
        self.check_table(ctl("dump", "--dir", directory, "--format", "table"), DUMP_TABLE_COLUMNS,
                         expected)

    def test_dump_of_a_long_history(self):
        directory = self.tmp / "big"
        run_worker("save", directory, "big", 1500, "normal")
        db = directory / "checkpoints.db"
        expected = db_history(db)
        self.assertEqual(len(expected), 1500)
        for fmt in FORMATS:
            result = ctl("dump", "--dir", directory, "--format", fmt)
            self.assert_ok(result)
            self.assertEqual(parse_output(fmt, result.stdout, HISTORY_COLUMNS),
                             as_csv(expected) if fmt == "csv" else expected)
        # more rows than a table samples for its widths: every row still printed, aligned
        result = ctl("dump", "--dir", directory, "--format", "table")
        self.check_table(result, DUMP_TABLE_COLUMNS, expected)

    def test_tables(self):
        directory, db = self.reference_copy()
        self.check_table(ctl("status", "--dir", directory, "--format", "table"),
                         STATUS_COLUMNS, db_status(db))
        self.check_table(ctl("history", "--dir", directory, "--format", "table", "--columns",
                             ",".join(HISTORY_COLUMNS)), HISTORY_COLUMNS, db_history(db, "default"))
        self.check_table(ctl("history", "--dir", directory, "--format", "table"),
                         HISTORY_TABLE_COLUMNS, db_history(db, "default"))
        self.check_table(ctl("runs", "--dir", directory, "--pipeline", OTHER, "--format",
                             "table"), RUNS_COLUMNS, db_runs(db, OTHER))
        table = ctl("history", "--dir", directory, "--format", "table").stdout.decode()
        self.assertIn("boom, \"quoted\"\\nsecond line", table)
        self.assertIn("crlf\\r\\nend", table)

    def test_default_format_is_csv_when_piped_and_a_table_on_a_terminal(self):
        directory, db = self.reference_copy()
        for command, columns, expected, table in (
                ("status", STATUS_COLUMNS, db_status(db), STATUS_COLUMNS),
                ("history", HISTORY_COLUMNS, db_history(db, "default"), HISTORY_TABLE_COLUMNS),
                ("runs", RUNS_COLUMNS, db_runs(db), RUNS_COLUMNS)):
            with self.subTest(command=command):
                result = ctl(command, "--dir", directory)
                self.assert_ok(result)
                self.assertEqual(parse_output("csv", result.stdout, columns), as_csv(expected))
                code, output, err, _ = on_terminal([command, "--dir", str(directory)],
                                                   stdout_terminal=True)
                self.assertEqual(code, 0, err)
                lines = output.decode().replace("\r\n", "\n").split("\n")
                self.assertEqual(lines[0].split(), table, output)
                self.assertEqual(len([line for line in lines if line]), len(expected) + 1)

    def test_unknown_pipeline_is_not_found(self):
        # A typo in --pipeline must not read as "no stage has run": exit 4, naming the
        # pipelines there are.
        directory, _ = self.reference_copy()
        for command in ("status", "history", "runs"):
            for fmt in ("csv", "json", "table"):
                with self.subTest(command=command, format=fmt):
                    result = ctl(command, "--dir", directory, "--pipeline", "nothing-here",
                                 "--format", fmt)
                    self.assert_error(result, EXIT_NOT_FOUND,
                                      "pipeline 'nothing-here' has no rows in ")
                    self.assertIn("'default'", result.stderr.decode())

    def test_empty_pipeline_in_every_format(self):
        # A pipeline that exists but whose history matches nothing: empty, in every format.
        directory, _ = self.reference_copy()
        for command, columns in (("history", HISTORY_COLUMNS),):
            base = [command, "--dir", directory, "--status", "started", "--since", "2999-01-01"]
            result = ctl(*base, "--format", "csv")
            self.assert_ok(result)
            self.assertEqual(result.stdout, (",".join(columns) + "\r\n").encode())
            result = ctl(*base, "--format", "json")
            self.assert_ok(result)
            self.assertEqual(json.loads(result.stdout), [])
            result = ctl(*base, "--format", "ndjson")
            self.assert_ok(result)
            self.assertEqual(result.stdout, b"")
            result = ctl(*base, "--format", "table", "--columns", ",".join(columns))
            self.assert_ok(result)
            self.assertEqual(result.stdout.decode().split(), columns)

    def test_example_pipeline_crash_and_resume(self):
        directory = self.tmp / "example"
        crashed = subprocess.run([EXAMPLE, "--dir", directory, "--crash-after",
                                  "data_preprocessing"], capture_output=True, timeout=TIMEOUT,
                                 env=ENV)
        self.assertEqual(crashed.returncode, 3, crashed.stderr)
        db = directory / "checkpoints.db"
        result = ctl("status", "--dir", directory, "--format", "json")
        self.assert_ok(result)
        status = json.loads(result.stdout)
        self.assertEqual(status, db_status(db))
        self.assertEqual([(s["stage"], s["status"]) for s in status],
                         [("data_ingestion", "completed"), ("data_preprocessing", "completed")])
        runs = json.loads(ctl("runs", "--dir", directory, "--format", "json").stdout)
        self.assertEqual([(r["outcome"], r["ended_at"], r["completed"]) for r in runs],
                         [("died", None, 2)])
        self.assertIsInstance(runs[0]["pid"], int)
        self.assertEqual(runs, db_runs(db))

        resumed = subprocess.run([EXAMPLE, "--dir", directory], capture_output=True,
                                 timeout=TIMEOUT, env=ENV)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.check_every_format(["status", "--dir", directory], STATUS_COLUMNS, db_status(db),
                                ["last_change"])
        self.check_every_format(["runs", "--dir", directory], RUNS_COLUMNS, db_runs(db),
                                ["started_at", "ended_at"])
        self.check_every_format(["history", "--dir", directory], HISTORY_COLUMNS,
                                db_history(db), ["timestamp"])
        runs = json.loads(ctl("runs", "--dir", directory, "--format", "json").stdout)
        self.assertEqual([(r["outcome"], r["completed"]) for r in runs],
                         [("died", 2), ("finished", 1)])
        history = json.loads(ctl("history", "--dir", directory, "--format", "json").stdout)
        completed = [r for r in history if r["status"] == "completed"]
        self.assertEqual([r["stage"] for r in completed],
                         ["data_ingestion", "data_preprocessing", "model_training"])
        self.assertTrue(all(isinstance(r["duration_ms"], int) for r in completed))

    def test_running_and_died_runs_and_incomplete_stages(self):
        directory = self.tmp / "live"
        worker = Worker(self, "begin", directory, "long stage, \"x\"")
        worker.expect("begun")
        db = directory / "checkpoints.db"
        status = json.loads(ctl("status", "--dir", directory, "--format", "json").stdout)
        self.assertEqual([(s["stage"], s["status"]) for s in status],
                         [("long stage, \"x\"", "started")])
        runs = json.loads(ctl("runs", "--dir", directory, "--format", "json").stdout)
        self.assertEqual([(r["pid"], r["outcome"], r["ended_at"]) for r in runs],
                         [(worker.proc.pid, "running", None)])
        self.assertEqual(runs, db_runs(db))
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=TIMEOUT)
        status = json.loads(ctl("status", "--dir", directory, "--format", "json").stdout)
        self.assertEqual([s["status"] for s in status], ["incomplete"])
        self.assertEqual(status, db_status(db))
        runs = json.loads(ctl("runs", "--dir", directory, "--format", "json").stdout)
        self.assertEqual([(r["outcome"], r["ended_at"]) for r in runs], [("died", None)])
        self.check_every_format(["history", "--dir", directory, "--status", "incomplete"],
                                HISTORY_COLUMNS, db_history(db), ["timestamp"])
        self.assertEqual(len(db_history(db)), 1)


class OptionPlacementTest(CtlTestCase):
    def test_options_before_or_after_the_subcommand(self):
        directory, db = self.reference_copy()
        for command, extra, columns in (("status", [], STATUS_COLUMNS),
                                        ("history", ["--status", "completed"], HISTORY_COLUMNS),
                                        ("runs", [], RUNS_COLUMNS),
                                        ("dump", [], HISTORY_COLUMNS)):
            spellings = [
                ["--dir", directory, "--pipeline", OTHER, command, *extra],
                [command, *extra, "--dir", directory, "--pipeline", OTHER],
                ["--pipeline", OTHER, command, "--dir", directory, *extra],
                ["--dir", directory, command, "--pipeline", OTHER, *extra],
                ["--db", db, "--pipeline", OTHER, command, *extra],
                [command, "--pipeline", OTHER, "--db", db, *extra],
                ["--pipeline", OTHER, command, *extra, "--db", db],
            ]
            outputs = []
            for spelling in spellings:
                with self.subTest(args=spelling):
                    result = ctl(*spelling, "--format", "json")
                    self.assert_ok(result)
                    outputs.append(json.loads(result.stdout))
            expected = {"status": db_status(db, OTHER),
                        "history": [r for r in db_history(db, OTHER)
                                    if r["status"] == "completed"],
                        "runs": db_runs(db, OTHER),
                        "dump": db_history(db, OTHER)}[command]  # --pipeline narrows it
            for spelling, output in zip(spellings, outputs):
                self.assertEqual(output, expected, spelling)

    def test_default_directory_is_checkpoints(self):
        directory, db = self.reference_copy("checkpoints")
        result = ctl("status", "--format", "json", cwd=self.tmp)
        self.assert_ok(result)
        self.assertEqual(json.loads(result.stdout), db_status(db))
        result = ctl("history", "--format", "json", "--db", "checkpoints/checkpoints.db",
                     cwd=self.tmp)
        self.assert_ok(result)
        self.assertEqual(json.loads(result.stdout), db_history(db, "default"))
        # elsewhere there is no ./checkpoints: not found, and none is created
        elsewhere = self.tmp / "elsewhere"
        elsewhere.mkdir()
        self.assert_error(ctl("status", cwd=elsewhere), EXIT_NOT_FOUND)
        self.assertEqual(list(elsewhere.iterdir()), [])

    def test_write_commands_take_options_anywhere(self):
        directory, db = self.reference_copy()
        before = db_count(db, "checkpoints")
        self.assert_ok(ctl("--dir", directory, "--pipeline", OTHER, "clear", "--stage", "s3",
                           "--yes"))
        self.assert_ok(ctl("clear", "--stage", "s4", "--pipeline", OTHER, "-y", "--db", db))
        self.assertEqual({r["stage"]: r["status"] for r in db_status(db, OTHER)}["s3"],
                         "cleared")
        self.assertEqual({r["stage"]: r["status"] for r in db_status(db, OTHER)}["s4"],
                         "cleared")
        self.assertEqual(db_count(db, "checkpoints"), before + 2)
        self.assertNotEqual({r["stage"]: r["status"] for r in db_status(db)}["twice"], "cleared")
        for args in (["--dir", directory, "verify"], ["verify", "--dir", directory],
                     ["--db", db, "verify"], ["verify", "--db", db],
                     ["--dir", directory, "migrate"], ["migrate", "--db", db]):
            with self.subTest(args=args):
                self.assert_ok(ctl(*args))
        legacy = self.tmp / "legacy"
        legacy.mkdir()
        (legacy / "moved.checkpoint").write_text("COMPLETED\nTimestamp: 2024-07-01T12:00:00Z\n")
        (legacy / "kept.checkpoint").write_text("COMPLETED\nTimestamp: 2024-07-01T13:00:00Z\n")
        self.assert_ok(ctl("--pipeline", "imported", "--dir", directory, "import-legacy",
                           legacy))
        self.assert_ok(ctl("import-legacy", legacy, "--db", db, "--pipeline", "imported2"))
        for pipeline in ("imported", "imported2"):
            self.assertEqual([(r["stage"], r["status"], r["last_change"])
                              for r in db_status(db, pipeline)],
                             [("kept", "completed", "2024-07-01T13:00:00.000Z"),
                              ("moved", "completed", "2024-07-01T12:00:00.000Z")])


class ReadOnlyTest(CtlTestCase):
    """status/history/runs/dump/verify never change checkpoints.db or its -wal."""

    def read_commands(self, directory, db):
        return [
            ["status", "--dir", directory],
            ["status", "--dir", directory, "--format", "json", "twice", "not-there"],
            ["--db", db, "status", "--format", "table"],
            ["history", "--dir", directory, "--format", "csv"],
            ["history", "--dir", directory, "--format", "ndjson", "--status", "failed"],
            ["--pipeline", OTHER, "history", "--db", db, "--format", "table"],
            ["runs", "--dir", directory, "--format", "json"],
            ["runs", "--db", db, "--format", "csv"],
            ["dump", "--dir", directory],
            ["dump", "--db", db, "--format", "json"],
            ["verify", "--dir", directory],
            ["--db", db, "verify"],
        ]

    def test_reads_change_nothing_while_a_writer_holds_the_database_open(self):
        directory, db = self.reference_copy()
        writer = Worker(self, "serve", directory)
        writer.expect("ready")
        writer.do("save live-0")
        for round in range(3):
            before = db_files(db)
            self.assertIsNotNone(before["wal"], "the writer's WAL exists")
            for args in self.read_commands(directory, db):
                with self.subTest(round=round, args=args):
                    result = ctl(*args)
                    self.assert_ok(result)
                    self.assertEqual(db_files(db), before, "a read command changed the files")
            # the reads see the writer's latest committed save, and its run as running
            status = json.loads(ctl("status", "--dir", directory, "--format", "json").stdout)
            self.assertIn((f"live-{round}", "completed"),
                          [(s["stage"], s["status"]) for s in status])
            self.assertEqual(status, db_status(db))
            runs = json.loads(ctl("runs", "--dir", directory, "--format", "json").stdout)
            self.assertEqual([r["outcome"] for r in runs if r["pid"] == writer.proc.pid],
                             ["running"])
            self.assertEqual(db_files(db), before)
            # the writer writes between our reads; the hashes do notice a write
            writer.do(f"save live-{round + 1}")
            self.assertNotEqual(db_files(db), before)
        self.assertEqual(writer.close(), 0, writer.stderr())

    def test_reads_change_nothing_without_a_writer(self):
        directory, db = self.reference_copy()
        # 1. a database alone, no -wal
        before = db_files(db)
        self.assertIsNone(before["wal"])
        for args in self.read_commands(directory, db) + [["migrate", "--dir", directory]]:
            with self.subTest(args=args):
                self.assert_ok(ctl(*args))
                after = db_files(db)
                self.assertEqual(after["db"], before["db"])
                # no -wal, or an empty one (SQLite's read-only WAL open): nothing logged
                self.assertIn(after["wal"], (None, hashlib.sha256(b"").hexdigest()))
        # 2. a database whose last writer left its -wal behind
        run_worker("save", directory, "more", 3)
        before = db_files(db)
        for args in self.read_commands(directory, db) + [["migrate", "--dir", directory]]:
            with self.subTest(args=args):
                self.assert_ok(ctl(*args))
                self.assertEqual(db_files(db), before)

    def test_reads_never_fail_while_a_worker_writes(self):
        directory, db = self.reference_copy()
        stop = self.tmp / "stop"
        err = self.tmp / "worker.err"  # a file: the worker logs every save on stderr
        with open(err, "wb") as err_file:
            proc = subprocess.Popen([WORKER, "save", directory, "w", "1000000", "--stop", stop],
                                    stdout=subprocess.PIPE, stderr=err_file, env=ENV)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(),
                                 proc.stdout.close()))
        acks = []
        first = threading.Event()

        def drain():
            for line in proc.stdout:
                if line.startswith(b"ack "):
                    acks.append(int(line.split()[1]))
                    first.set()
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        self.assertTrue(first.wait(20), "the worker never acknowledged a save")
        start_acks = len(acks)
        previous_count = 0
        deadline = time.monotonic() + 8
        rounds = 0
        while rounds < 8 and time.monotonic() < deadline or rounds < 3:
            rounds += 1
            acked = len(acks)  # saves w-0 .. w-(acked-1) are committed before this read
            result = ctl("history", "--dir", directory, "--format", "ndjson")
            self.assert_ok(result)
            rows = parse_output("ndjson", result.stdout, HISTORY_COLUMNS)
            ids = [r["id"] for r in rows]
            self.assertEqual(ids, sorted(set(ids)))
            saved = {r["stage"] for r in rows if r["stage"] and r["stage"].startswith("w-")}
            self.assertTrue({f"w-{i}" for i in range(acked)} <= saved,
                            "an acknowledged save is missing from history")
            self.assertGreaterEqual(len(rows), previous_count)
            previous_count = len(rows)
            for args, fmt, columns in ((["status"], "json", STATUS_COLUMNS),
                                       (["runs"], "csv", RUNS_COLUMNS),
                                       (["dump"], "json", HISTORY_COLUMNS)):
                result = ctl(*args, "--dir", directory, "--format", fmt)
                self.assert_ok(result)
                parse_output(fmt, result.stdout, columns)
            result = ctl("verify", "--dir", directory)
            self.assert_ok(result)
            self.assertIn(b": ok", result.stdout)
        self.assertGreater(len(acks), start_acks, "the worker wrote while we read")
        stop.touch()
        self.assertEqual(proc.wait(timeout=TIMEOUT), 0, err.read_text(errors="replace"))
        reader.join(TIMEOUT)
        self.assertEqual(len([r for r in db_history(db)
                              if r["stage"] and r["stage"].startswith("w-")]), len(acks))


class ClearTest(CtlTestCase):
    def snapshot(self, db):
        return (db_count(db, "checkpoints"), db_count(db, "runs"), db_status(db),
                db_status(db, OTHER))

    def test_clear_everything_with_yes(self):
        directory, db = self.reference_copy()
        other_before = db_status(db, OTHER)
        last_id = db_history(db)[-1]["id"]
        result = ctl("clear", "--dir", directory, "--yes")
        self.assert_ok(result)
        self.assertIn(b"cleared every stage of pipeline 'default'", result.stdout)
        self.assertEqual({s["status"] for s in db_status(db)}, {"cleared"})
        self.assertEqual(db_status(db, OTHER), other_before)
        new = [r for r in db_history(db) if r["id"] > last_id]
        self.assertEqual([(r["pipeline"], r["stage"], r["status"]) for r in new],
                         [("default", None, "cleared")])
        status = json.loads(ctl("status", "--dir", directory, "--format", "json").stdout)
        self.assertEqual({s["status"] for s in status}, {"cleared"})
        self.assertEqual(status, db_status(db))
        # in the outputs, a pipeline-wide clear has no stage
        history = ctl("history", "--dir", directory, "--format", "csv").stdout
        rows = parse_output("csv", history, HISTORY_COLUMNS)
        self.assertEqual((rows[-1]["stage"], rows[-1]["status"]), ("", "cleared"))

    def test_clear_named_stages_with_yes(self):
        directory, db = self.reference_copy()
        odd = ODD_PREFIX + "-0"
        last_id = db_history(db)[-1]["id"]
        result = ctl("--dir", directory, "clear", "--stage", "twice", "--stage", odd, "-y")
        self.assert_ok(result)
        states = {s["stage"]: s["status"] for s in db_status(db)}
        self.assertEqual(states["twice"], "cleared")
        self.assertEqual(states[odd], "cleared")
        self.assertEqual(states[ODD_PREFIX + "-1"], "completed")
        self.assertEqual(states["ok-0"], "completed")
        new = [(r["stage"], r["status"]) for r in db_history(db) if r["id"] > last_id]
        self.assertEqual(sorted(new), sorted([("twice", "cleared"), (odd, "cleared")]))

    def test_clear_refused_without_a_terminal(self):
        directory, db = self.reference_copy()
        before = self.snapshot(db)
        for stdin_kind in ("devnull", "piped yes"):
            for args in (["clear", "--dir", directory],
                         ["clear", "--dir", directory, "--stage", "twice"]):
                with self.subTest(stdin=stdin_kind, args=args):
                    if stdin_kind == "devnull":
                        result = ctl(*args)
                    else:
                        result = ctl(*args, input=b"yes\n")
                    self.assertNotEqual(result.returncode, 0, self.describe(result))
                    self.assertEqual(result.returncode, EXIT_ERROR, self.describe(result))
                    self.assertEqual(result.stdout, b"")
                    self.assert_no_crash(result)
                    err = result.stderr.decode()
                    self.assertTrue(err.startswith("checkpointctl: "), err)
                    self.assertIn("--yes", err)
                    self.assertEqual(self.snapshot(db), before, "something was cleared")

    def test_clear_on_a_terminal_answered_yes(self):
        directory, db = self.reference_copy()
        code, out, err, prompt = on_terminal(["clear", "--dir", str(directory), "--stage",
                                              "twice"], answer="yes")
        self.assertEqual(code, 0, err)
        self.assertIn(b"Type 'yes'", prompt)
        self.assertIn(b"'default'", prompt)
        self.assertIn(b"clear 'twice' of pipeline 'default'", prompt)  # names the stage
        self.assertIn(b"cleared stage 'twice'", out)
        self.assertEqual({s["stage"]: s["status"] for s in db_status(db)}["twice"], "cleared")
        self.assertEqual({s["stage"]: s["status"] for s in db_status(db)}["ok-0"], "completed")

        code, out, err, prompt = on_terminal(["--pipeline", OTHER, "clear", "--dir",
                                              str(directory)], answer="yes")
        self.assertEqual(code, 0, err)
        self.assertIn(b"every stage", prompt)
        self.assertIn(b"(now 's3', 's4')", prompt)  # the stages not cleared already
        self.assertEqual({s["status"] for s in db_status(db, OTHER)}, {"cleared"})

    def test_clear_on_a_terminal_answered_no(self):
        directory, db = self.reference_copy()
        before = self.snapshot(db)
        for answer in ("no", "", "n", "YES please", "yess", "ye"):
            with self.subTest(answer=answer):
                code, out, err, prompt = on_terminal(["clear", "--dir", str(directory)],
                                                     answer=answer)
                self.assertIn(b"Type 'yes'", prompt)
                self.assertEqual(code, EXIT_ERROR, err)
                self.assertEqual(out, b"")
                self.assertIn(b"nothing was cleared", err)
                self.assertEqual(self.snapshot(db), before)

    def test_clear_on_a_terminal_accepts_y_and_yes_in_any_case(self):
        directory, db = self.reference_copy()
        for stage, answer in (("twice", "y"), ("ok-0", "YES"), ("ok-2", " Y ")):
            with self.subTest(answer=answer):
                code, out, err, prompt = on_terminal(["clear", "--dir", str(directory),
                                                      "--stage", stage], answer=answer)
                self.assertEqual(code, 0, err)
                self.assertIn(f"cleared stage '{stage}'".encode(), out)
                self.assertEqual({s["stage"]: s["status"] for s in db_status(db)}[stage],
                                 "cleared")

    def test_clear_of_a_stage_never_recorded_is_refused_unless_forced(self):
        directory, db = self.reference_copy()
        before = self.snapshot(db)
        result = ctl("clear", "--dir", directory, "--stage", "twcie", "--yes")
        self.assert_error(result, EXIT_NOT_FOUND, "'twcie' never recorded")
        self.assertIn("did you mean 'twice'", result.stderr.decode())
        self.assertIn("--force", result.stderr.decode())
        self.assertEqual(self.snapshot(db), before)
        # a stage named "-" is a stage, not a pipeline-wide clear: shown quoted in tables
        result = ctl("clear", "--dir", directory, "--stage", "-", "--yes", "--force")
        self.assert_ok(result)
        rows = db_history(db)
        self.assertEqual((rows[-1]["stage"], rows[-1]["status"]), ("-", "cleared"))
        table = ctl("history", "--dir", directory, "--format", "table", "--last", "1")
        self.assert_ok(table)
        self.assertRegex(table.stdout.decode().splitlines()[1], r'^\d+\s+"-"\s+cleared\s')
        self.assert_ok(ctl("clear", "--dir", directory, "--yes"))
        table = ctl("history", "--dir", directory, "--format", "table", "--last", "1")
        self.assertRegex(table.stdout.decode().splitlines()[1], r"^\d+\s+-\s+cleared\s")

    def test_clear_of_a_missing_database_creates_nothing(self):
        missing = self.tmp / "typo"
        self.assert_error(ctl("clear", "--dir", missing, "--yes"), EXIT_NOT_FOUND)
        self.assertFalse(missing.exists())
        self.assert_error(ctl("clear", "--db", self.tmp / "typo.db", "--yes"), EXIT_NOT_FOUND)
        self.assertEqual(list(self.tmp.iterdir()), [])


class BusyTest(CtlTestCase):
    def test_clear_against_a_held_write_lock_exits_busy_and_writes_nothing(self):
        directory, db = self.reference_copy()
        before = db_history(db, "default")
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            result = ctl("clear", "--dir", directory, "--yes", "--busy-timeout", "200")
            self.assertEqual(result.returncode, EXIT_BUSY, self.describe(result))
            self.assert_no_crash(result)
            self.assertIn(b"busy timeout (200 ms)", result.stderr)
            # the option to raise is the tool's, not the library's
            self.assertIn(b"raise --busy-timeout", result.stderr)
            self.assertNotIn(b"Options::", result.stderr)
            self.assertEqual(result.stdout, b"")
            # Readers are never blocked by a writer (WAL).
            status = ctl("status", "--dir", directory, "--format", "csv", "--busy-timeout", "200")
            self.assertEqual(status.returncode, EXIT_OK, self.describe(status))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        self.assertEqual(db_history(db, "default"), before)
        result = ctl("clear", "--dir", directory, "--yes", "--busy-timeout", "200")
        self.assertEqual(result.returncode, EXIT_OK, self.describe(result))


class VerifyTest(CtlTestCase):
    def test_verify_a_sound_database(self):
        directory, db = self.reference_copy()
        result = ctl("verify", "--dir", directory)
        self.assert_ok(result)
        self.assertEqual(result.stderr, b"")
        self.assertRegex(result.stdout.decode(), rf"^\S*checkpoints\.db: ok \(schema version {SCHEMA_VERSION}\)\n$")

    def damage(self, db, *statements):
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA ignore_check_constraints=1")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()

    def test_verify_reports_each_kind_of_damage(self):
        _, reference = self.reference_copy("reference")
        twice_v2 = db_rows(reference, "SELECT id FROM checkpoints WHERE stage = 'twice' "
                                       "AND status = 'completed' AND version = 2")[0][0]
        cases = [
            (["UPDATE checkpoints SET status = 'bogus' WHERE id = 1"], ["row 1", "bogus"]),
            ([f"UPDATE checkpoints SET version = 1 WHERE id = {twice_v2}"], ["twice"]),
            (["UPDATE checkpoints SET timestamp = 'yesterday' WHERE id = 2"],
             ["row 2", "yesterday"]),
            (["DELETE FROM stage_heads WHERE stage = 'ok-0'"], ["ok-0"]),
            (["DELETE FROM runs WHERE run_id = (SELECT run_id FROM checkpoints WHERE id = 1)"],
             ["row 1"]),
        ]
        for index, (statements, mentions) in enumerate(cases):
            with self.subTest(statements=statements):
                directory = self.tmp / f"damaged{index}"
                directory.mkdir()
                db = directory / "checkpoints.db"
                shutil.copy2(reference, db)
                self.damage(db, *statements)
                before = db_files(db)
                result = ctl("verify", "--dir", directory)
                self.assertEqual(result.returncode, EXIT_VERIFY, self.describe(result))
                self.assert_no_crash(result)
                out = result.stdout.decode()
                self.assertNotIn(": ok", out)
                for mention in mentions:
                    self.assertIn(mention, out)
                err = result.stderr.decode().splitlines()
                self.assertEqual(len(err), 1, err)
                self.assertRegex(err[0], r"^checkpointctl: .*problem")
                self.assertEqual(db_files(db)["db"], before["db"])

    def test_verify_a_truncated_database(self):
        directory, db = self.reference_copy()
        with open(db, "r+b") as f:
            f.truncate(db.stat().st_size // 2)
        before = db_files(db)
        for command in ("verify", "status", "history", "runs", "dump"):
            with self.subTest(command=command):
                self.assert_error(ctl(command, "--dir", directory), EXIT_NOT_A_DB)
                self.assertEqual(db_files(db)["db"], before["db"])


class MigrateTest(CtlTestCase):
    def test_migrate_a_current_database(self):
        directory, db = self.reference_copy()
        run_worker("save", directory, "more", 1)  # leaves a -wal behind
        before = db_files(db)
        result = ctl("migrate", "--dir", directory)
        self.assert_ok(result)
        self.assertRegex(result.stdout.decode(), rf"checkpoints\.db: already at schema version {SCHEMA_VERSION}\n$")
        self.assertEqual(db_files(db), before)
        result = ctl("--db", db, "migrate")
        self.assert_ok(result)
        self.assertIn(f"already at schema version {SCHEMA_VERSION}".encode(), result.stdout)

    def test_migrate_a_missing_database_creates_nothing(self):
        self.assert_error(ctl("migrate", "--dir", self.tmp / "nope"), EXIT_NOT_FOUND)
        self.assertEqual(list(self.tmp.iterdir()), [])

    def test_migrate_a_newer_schema(self):
        directory, db = self.reference_copy()
        conn = sqlite3.connect(db)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        before = db_files(db)
        self.assert_error(ctl("migrate", "--dir", directory), EXIT_SCHEMA)
        self.assertEqual(db_files(db)["db"], before["db"])
        with connect_ro(db) as conn:
            self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION + 1)

    def test_migrate_a_schema1_database(self):
        directory = self.tmp / "old"
        directory.mkdir()
        db = directory / "checkpoints.db"
        shutil.copyfile(SCHEMA1_DB, db)
        db.chmod(0o600)
        # Read commands never migrate: they say what to do, and leave the file alone.
        for command in ("status", "history", "runs", "dump", "verify"):
            with self.subTest(command=command):
                result = ctl(command, "--dir", directory, "--pipeline", "etl")
                self.assert_error(result, EXIT_SCHEMA)
                self.assertIn(b"checkpointctl migrate", result.stderr)
                self.assertEqual(db.read_bytes(), SCHEMA1_DB.read_bytes())
        result = ctl("migrate", "--dir", directory)
        self.assert_ok(result)
        self.assertIn(f"schema version {SCHEMA_VERSION}".encode(), result.stdout)
        result = ctl("history", "--dir", directory, "--pipeline", "etl", "--format", "csv")
        self.assert_ok(result)
        rows = list(csv.DictReader(io.StringIO(result.stdout.decode())))
        self.assertEqual(len(rows), 11)
        self.assertEqual(rows[4]["message"], 'connection refused, "db" at line 3')
        self.assertEqual([r["status"] for r in rows][-3:], ["cleared", "completed", "completed"])
        self.assert_ok(ctl("verify", "--dir", directory))


LEGACY_PY = r'''
"""The original design: one <stage>.checkpoint file per completed stage."""
import json
import os
import sys
from datetime import datetime, timezone


class CheckpointManager:
    def __init__(self, checkpoint_dir="checkpoints"):
        self.checkpoint_dir = checkpoint_dir
        os.makedirs(checkpoint_dir, exist_ok=True)

    def _path(self, stage):
        return os.path.join(self.checkpoint_dir, f"{stage}.checkpoint")

    def save_checkpoint(self, stage):
        with open(self._path(stage), "w") as f:
            f.write("COMPLETED")

    def has_checkpoint(self, stage):
        return os.path.exists(self._path(stage))

    def clear_checkpoints(self):
        for name in os.listdir(self.checkpoint_dir):
            if name.endswith(".checkpoint"):
                os.remove(os.path.join(self.checkpoint_dir, name))


class TimestampedCheckpointManager(CheckpointManager):
    """The variant that also records when the stage completed (naive local time)."""

    def save_checkpoint(self, stage):
        with open(self._path(stage), "w") as f:
            f.write("COMPLETED\n")
            f.write(f"Timestamp: {datetime.now().isoformat()}\n")


def utc_text(naive_local):
    moment = naive_local.astimezone(timezone.utc)  # naive: local time, per TZ
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (moment.microsecond // 1000)


directory = sys.argv[1]
plain = CheckpointManager(directory)
stamped = TimestampedCheckpointManager(directory)
plain.save_checkpoint("stale")          # an earlier run, cleared: must not be imported
plain.clear_checkpoints()
assert not plain.has_checkpoint("stale")
plain.save_checkpoint("data_ingestion")
plain.save_checkpoint("data_preprocessing")
stamped.save_checkpoint("model_training")
stamped.save_checkpoint('évaluation, "finale"')
expected = {}
for stage in ("data_ingestion", "data_preprocessing", "model_training", 'évaluation, "finale"'):
    assert plain.has_checkpoint(stage)
    with open(plain._path(stage)) as f:
        lines = f.read().splitlines()
    if len(lines) > 1:
        expected[stage] = utc_text(datetime.fromisoformat(lines[1][len("Timestamp: "):]))
    else:
        ns = os.stat(plain._path(stage)).st_mtime_ns
        moment = datetime.fromtimestamp(ns // 10**9, timezone.utc)
        expected[stage] = moment.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ns // 10**6 % 1000)
print(json.dumps(expected))
'''


class ImportLegacyTest(CtlTestCase):
    def write_legacy(self, directory):
        script = self.tmp / "legacy_design.py"
        script.write_text(LEGACY_PY)
        result = subprocess.run([sys.executable, script, directory], capture_output=True,
                                timeout=TIMEOUT, env=ENV)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def completed_rows(self, db, pipeline="default"):
        return sorted(db_rows(db, "SELECT stage, timestamp, version FROM checkpoints "
                                  "WHERE pipeline = ? AND status = 'completed'", (pipeline,)))

    def test_import_the_original_designs_directory(self):
        legacy = self.tmp / "old_checkpoints"
        expected = self.write_legacy(legacy)
        self.assertEqual(len(expected), 4)
        # written by hand, as the timestamped variant would have: a summer (UTC+2) and a
        # winter (UTC+1) local time, and a plain file with a known modification time
        (legacy / "summer.checkpoint").write_text(
            "COMPLETED\nTimestamp: 2024-07-01T12:34:56.789012\n")
        (legacy / "winter.checkpoint").write_text("COMPLETED\nTimestamp: 2024-01-15 12:00:00\n")
        (legacy / "utc.checkpoint").write_text("COMPLETED\nTimestamp: 2024-03-31T01:30:00Z\n")
        (legacy / "dated.checkpoint").write_text("COMPLETED")
        os.utime(legacy / "dated.checkpoint", ns=(1_600_000_000_123_456_789,) * 2)
        # empty: the original design treated a file's existence as completion
        (legacy / "empty.checkpoint").write_text("")
        os.utime(legacy / "empty.checkpoint", ns=(1_600_000_100_000_000_000,) * 2)
        expected.update({"summer": "2024-07-01T10:34:56.789Z",
                         "winter": "2024-01-15T11:00:00.000Z",
                         "utc": "2024-03-31T01:30:00.000Z",
                         "dated": "2020-09-13T12:26:40.123Z",
                         "empty": "2020-09-13T12:28:20.000Z"})
        # what must be reported and skipped
        bad = {
            "garbage.checkpoint": "INCOMPLETE",
            "badtime.checkpoint": "COMPLETED\nTimestamp: half past nine\n",
            "feb30.checkpoint": "COMPLETED\nTimestamp: 2024-02-30T10:00:00\n",
            "extra.checkpoint": "COMPLETED\nsomething else\n",
        }
        for name, text in bad.items():
            (legacy / name).write_text(text)
        (legacy / "subdir.checkpoint").mkdir()
        (legacy / "dangling.checkpoint").symlink_to(legacy / "nowhere")
        unreadable = ["subdir.checkpoint", "dangling.checkpoint"]
        if os.geteuid() != 0:  # root reads any file
            (legacy / "secret.checkpoint").write_text("COMPLETED")
            (legacy / "secret.checkpoint").chmod(0)
            unreadable.append("secret.checkpoint")
        (legacy / "notes.txt").write_text("not a checkpoint file")  # ignored
        skipped = sorted(list(bad) + unreadable)

        directory = self.tmp / "ck"
        result = ctl("import-legacy", legacy, "--dir", directory)
        self.assertEqual(result.returncode, EXIT_ERROR, self.describe(result))
        self.assert_no_crash(result)
        err = result.stderr.decode().splitlines()
        self.assertEqual(len(err), len(skipped), err)
        for line in err:
            self.assertTrue(line.startswith("checkpointctl: "), line)
        for name in skipped:
            self.assertEqual(len([line for line in err if name in line]), 1, (name, err))
        self.assertNotIn("notes.txt", result.stderr.decode())
        self.assertRegex(result.stdout.decode(),
                         rf"(?m)^{len(expected)} imported, 0 already imported, "
                         rf"{len(skipped)} skipped$")
        self.assertRegex(result.stdout.decode(),
                         r"(?m)^imported empty \(completed 2020-09-13T12:28:20.000Z, the file's "
                         r"modification time\): the file is empty, which the original design "
                         r"counted as completed$")
        db = directory / "checkpoints.db"
        self.assertEqual(self.completed_rows(db),
                         sorted((stage, ts, 1) for stage, ts in expected.items()))
        self.assertEqual(db_count(db, "checkpoints"), len(expected))  # nothing else written
        # they read as completed, with the legacy time as their last change
        status = json.loads(ctl("status", "--dir", directory, "--format", "json").stdout)
        self.assertEqual({s["stage"]: (s["status"], s["last_change"]) for s in status},
                         {stage: ("completed", ts) for stage, ts in expected.items()})
        self.assertEqual(status, db_status(db))

        # again: nothing imported twice, the same files skipped (and reported): success
        history = db_history(db)
        result = ctl("import-legacy", legacy, "--dir", directory)
        self.assert_ok(result)
        self.assertRegex(result.stdout.decode(),
                         rf"(?m)^0 imported, {len(expected)} already imported, "
                         rf"{len(skipped)} skipped$")
        self.assertEqual(len(result.stderr.decode().splitlines()), len(skipped))
        self.assertEqual(db_history(db), history)
        # a file dated by its modification time, touched since: not imported again
        for name in ("dated.checkpoint", "empty.checkpoint"):
            os.utime(legacy / name, ns=(1_700_000_000_000_000_000,) * 2)
        result = ctl("import-legacy", legacy, "--dir", directory)
        self.assert_ok(result)
        self.assertRegex(result.stdout.decode(), rf"(?m)^0 imported, {len(expected)} already")
        self.assertEqual(db_history(db), history)
        # without the bad files: success, still nothing new
        for name in skipped:
            path = legacy / name
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        result = ctl("import-legacy", legacy, "--dir", directory)
        self.assert_ok(result)
        self.assertEqual(result.stderr, b"")
        self.assertEqual(db_history(db), history)
        self.assert_ok(ctl("verify", "--dir", directory))

    def test_import_again_with_the_path_spelled_differently(self):
        legacy = self.tmp / "old"
        expected = self.write_legacy(legacy)
        result = ctl("import-legacy", "old", "--dir", "ck", cwd=self.tmp)
        self.assert_ok(result)
        db = self.tmp / "ck" / "checkpoints.db"
        self.assertEqual(self.completed_rows(db),
                         sorted((stage, ts, 1) for stage, ts in expected.items()))
        for spelling in ("old/", str(legacy), "./old", str(self.tmp / "ck" / ".." / "old")):
            with self.subTest(path=spelling):
                before = db_history(db)
                result = ctl("import-legacy", spelling, "--dir", "ck", cwd=self.tmp)
                self.assert_ok(result)
                self.assertRegex(result.stdout.decode(),
                                 rf"(?m)^0 imported, {len(expected)} already imported")
                self.assertEqual(db_history(db), before, "imported twice")

    def test_import_odd_stage_names_into_a_pipeline(self):
        legacy = self.tmp / "odd"
        legacy.mkdir()
        names = ['comma, "quote"\nnewline ü 🚀', "tab\there", "plain"]
        for i, name in enumerate(names):
            (legacy / f"{name}.checkpoint").write_text(
                f"COMPLETED\nTimestamp: 2023-05-0{i + 1}T08:00:00.500+02:00\n")
        (legacy / (b"\xff\xfe bad utf8.checkpoint").decode("utf-8", "surrogateescape")) \
            .write_text("COMPLETED")
        directory = self.tmp / "ck"
        result = ctl("--pipeline", "legacy, imported", "import-legacy", legacy, "--dir",
                     directory)
        self.assertEqual(result.returncode, EXIT_ERROR, self.describe(result))  # the bad name
        self.assertIn(b"bad utf8", result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        db = directory / "checkpoints.db"
        self.assertEqual(self.completed_rows(db, "legacy, imported"),
                         sorted((name, f"2023-05-0{i + 1}T06:00:00.500Z", 1)
                                for i, name in enumerate(names)))
        self.assertEqual(self.completed_rows(db), [])
        self.check_every_format(["status", "--dir", directory, "--pipeline",
                                 "legacy, imported"], STATUS_COLUMNS,
                                db_status(db, "legacy, imported"), ["last_change"])
        self.check_every_format(["dump", "--dir", directory], HISTORY_COLUMNS, db_history(db),
                                ["timestamp"])

    def test_import_from_a_missing_directory(self):
        directory = self.tmp / "ck"
        result = ctl("import-legacy", self.tmp / "no-such-dir", "--dir", directory)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(result.returncode, (EXIT_ERROR, EXIT_NOT_FOUND), self.describe(result))
        self.assert_error(result, result.returncode, "no-such-dir")
        self.assertFalse(directory.exists(), "a database was created for nothing")

    def test_import_needs_a_directory_argument(self):
        self.assert_usage(ctl("import-legacy", "--dir", self.tmp / "ck"))
        self.assertEqual(list(self.tmp.iterdir()), [])


class ErrorTest(CtlTestCase):
    READ = ["status", "history", "runs", "dump", "verify"]

    def check_all_commands(self, location, code, unchanged=None):
        legacy = self.tmp / "empty-legacy"
        legacy.mkdir(exist_ok=True)
        commands = [[c] for c in self.READ] + [["migrate"], ["clear", "--yes"],
                                               ["import-legacy", legacy]]
        for command in commands:
            for args in ([*location, *command], [*command, *location]):
                with self.subTest(args=args):
                    self.assert_error(ctl(*args), code)
                    if unchanged:
                        self.assertEqual(sha256(unchanged[0]), unchanged[1])

    def test_missing_database(self):
        missing = self.tmp / "missing"
        for command in self.READ + ["migrate"]:
            for location in (["--dir", missing], ["--db", missing / "checkpoints.db"],
                             ["--db", self.tmp / "missing.db"]):
                with self.subTest(command=command, location=location):
                    self.assert_error(ctl(command, *location), EXIT_NOT_FOUND)
        self.assert_error(ctl("clear", "--yes", "--dir", missing), EXIT_NOT_FOUND)
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), [])

    def test_directory_option_naming_a_file(self):
        text = self.tmp / "file.txt"
        text.write_text("hello\n")
        for command in self.READ:
            with self.subTest(command=command):
                # the database is not there: not found
                self.assert_error(ctl(command, "--dir", text), EXIT_NOT_FOUND)
        self.assertEqual(text.read_text(), "hello\n")

    def test_database_option_naming_a_directory(self):
        directory, _ = self.reference_copy()
        for command in self.READ:
            with self.subTest(command=command):
                result = ctl(command, "--db", directory)
                self.assertIn(result.returncode, (EXIT_NOT_FOUND, EXIT_NOT_A_DB))
                self.assert_error(result, result.returncode)

    def test_text_file_as_database(self):
        text = self.tmp / "notes.db"
        text.write_text("these are my notes, not a database\n" * 20)
        self.check_all_commands(["--db", text], EXIT_NOT_A_DB, (text, sha256(text)))
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["empty-legacy",
                                                                     "notes.db"])

    def test_another_applications_sqlite_database(self):
        other = self.tmp / "app" / "checkpoints.db"
        other.parent.mkdir()
        conn = sqlite3.connect(other)
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('alice')")
        conn.commit()
        conn.close()
        digest = sha256(other)
        self.check_all_commands(["--dir", other.parent], EXIT_NOT_A_DB, (other, digest))
        self.check_all_commands(["--db", other], EXIT_NOT_A_DB, (other, digest))
        with sqlite3.connect(other) as conn:
            self.assertEqual(conn.execute("SELECT name FROM sqlite_master").fetchall(),
                             [("customers",)])

    def test_schema_newer_than_the_tool(self):
        directory, db = self.reference_copy()
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        count = db_count(db, "checkpoints")
        self.check_all_commands(["--dir", directory], EXIT_SCHEMA, (db, sha256(db)))
        result = ctl("status", "--dir", directory)
        self.assertIn(b"99", result.stderr)
        self.assertEqual(db_count(db, "checkpoints"), count)

    def test_bad_time_filters(self):
        directory, db = self.reference_copy()
        for option in ("--since", "--until"):
            for value in ("yesterday", "27/11/2026", "2026-13-01", "2026-02-30",
                          "2026-11-27T25:00", "2026-11-27T06:37:61"):
                with self.subTest(option=option, value=value):
                    result = ctl("history", "--dir", directory, option, value, "--format",
                                 "csv")
                    self.assert_error(result, EXIT_USAGE)

    def test_time_filter_with_a_space_is_read_as_iso_or_refused(self):
        legacy = self.tmp / "legacy"
        legacy.mkdir()
        for stage, hour in (("early", 10), ("late", 12)):
            (legacy / f"{stage}.checkpoint").write_text(
                f"COMPLETED\nTimestamp: 2024-01-01T{hour}:00:00Z\n")
        directory = self.tmp / "ck"
        self.assert_ok(ctl("import-legacy", legacy, "--dir", directory))
        for option, stages in (("--since", ["late"]), ("--until", ["early"])):
            with self.subTest(option=option):
                with_t = ctl("history", "--dir", directory, option, "2024-01-01T11:00",
                             "--format", "json")
                self.assert_ok(with_t)
                self.assertEqual([r["stage"] for r in json.loads(with_t.stdout)], stages)
                spaced = ctl("history", "--dir", directory, option, "2024-01-01 11:00",
                             "--format", "json")
                if spaced.returncode == 0:
                    self.assertEqual([r["stage"] for r in json.loads(spaced.stdout)], stages,
                                     "'2024-01-01 11:00' must mean 2024-01-01T11:00 or be "
                                     "refused")
                else:
                    self.assert_error(spaced, EXIT_USAGE)

    def test_damaged_row_in_the_middle_of_the_history(self):
        directory, db = self.reference_copy()
        rows = db_history(db, "default")
        middle = rows[len(rows) // 2]["id"]
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA ignore_check_constraints=1")
        conn.execute("UPDATE checkpoints SET status = 'bogus' WHERE id = ?", (middle,))
        conn.commit()
        conn.close()
        for command in ("history", "dump"):
            for fmt in FORMATS + ("table",):
                with self.subTest(command=command, format=fmt):
                    result = ctl(command, "--dir", directory, "--format", fmt)
                    self.assertEqual(result.returncode, EXIT_NOT_A_DB, self.describe(result))
                    self.assert_no_crash(result)
                    err = result.stderr.decode().splitlines()
                    self.assertEqual(len(err), 1, err)
                    self.assertTrue(err[0].startswith("checkpointctl: "), err)
                    if fmt == "json":
                        with self.assertRaises(ValueError, msg="a complete JSON document"):
                            json.loads(result.stdout)
                    elif command == "history":
                        # not streamed: the rows before the damage must not pass for the
                        # complete history
                        self.assertEqual(result.stdout, b"", "partial output, exit 5")

    def test_usage_errors(self):
        directory, db = self.reference_copy()
        cases = [
            [],
            ["bogus"],
            ["--dir", directory, "bogus"],
            ["--bogus", "status"],
            ["status", "--bogus"],
            ["--dir", directory, "history", "--limit", "-1"],
            ["--dir", directory, "history", "--limit", "many"],
            ["--dir", directory, "history", "--status", "bogus"],
            ["--dir", directory, "status", "--format", "xml"],
            ["--dir", directory, "history", "--format"],
            ["--dir", directory, "verify", "--format", "csv"],
            ["--dir", directory, "history", "--limit", "99999999999"],
            ["--dir", directory, "history", "--limit", "1e3"],
            ["--dir", directory, "history", "--last", "0"],
            ["--dir", directory, "history", "--last", "-3"],
            ["--dir", directory, "history", "--last", "2", "--limit", "2"],
            ["--dir", directory, "history", "--columns", "id,bogus"],
            ["--dir", directory, "history", "--stage", ""],
            ["--dir", directory, "history", "--run", ""],
            ["--dir", directory, "history", "--since", ""],
            ["--dir", directory, "backup"],
            ["--dir", directory, "clear", "extra-argument", "--yes"],
            ["--dir", directory, "--db", db, "status"],
            ["status", "--dir", directory, "--db", db],
            ["--db", db, "--dir", directory, "history"],
            ["--dir", directory, "status", "--db", db],
            ["--db", db, "runs", "--dir", directory],
            ["--dir", directory, "clear", "--db", db, "--yes"],
        ]
        before = self.snapshot_db(db)
        for args in cases:
            with self.subTest(args=args):
                result = ctl(*args)
                self.assert_usage(result)
                # every usage error starts with the tool's name, and shows the usage
                err = result.stderr.decode()
                self.assertTrue(err.startswith("checkpointctl: "), err)
                self.assertIn("usage: checkpointctl", err)
        self.assertEqual(self.snapshot_db(db), before, "a usage error changed the database")

    def snapshot_db(self, db):
        return db_count(db, "checkpoints"), db_count(db, "runs"), sha256(db)


# ---------------------------------------------------------------------------------------------
# Issue 15: self-contained files, backups, reads that create nothing, a sharper tool


def sqlite3_shell(db, sql, *options):
    """The real sqlite3 shell, as an operator runs it (no busy timeout)."""
    return subprocess.run([SQLITE3, "-bail", "-batch", *options, str(db), sql],
                          capture_output=True, timeout=TIMEOUT)


def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# Stage names that break naive tables: long, wide, escaped, ambiguous.
LONG_STAGE = "a_stage_with_a_very_long_name_" + "x" * 40
CJK_STAGE = "日本語のステージ名"
EMOJI_STAGES = "🚀🚀 rocket"
BACKSLASH_N = "back\\nslash"     # a backslash and an n
NEWLINE = "back\nslash"           # a newline
CONTROL = "ctl\x01\x7fchar"
DASH = "-"
SPACED = " spaced "
ODD_TABLE_STAGES = [LONG_STAGE, CJK_STAGE, EMOJI_STAGES, BACKSLASH_N, NEWLINE, CONTROL, DASH,
                    SPACED, "ü", "e\u0301cole"]


class FilesAndToolsTest(CtlTestCase):
    def test_version(self):
        result = ctl("--version")
        self.assert_ok(result)
        self.assertRegex(result.stdout.decode(), r"^checkpointctl \d+\.\d+\.\d+\n$")
        self.assertEqual(list(self.tmp.iterdir()), [])

    def test_unknown_command_and_option_say_what_and_suggest(self):
        directory, db = self.reference_copy()
        cases = [
            (["stauts"], "checkpointctl: unknown command 'stauts' (did you mean 'status'?)"),
            (["--dir", directory, "histroy"],
             "checkpointctl: unknown command 'histroy' (did you mean 'history'?)"),
            (["frobnicate"], "checkpointctl: unknown command 'frobnicate'"),
            (["status", "--fromat", "csv"],
             "checkpointctl: unknown option '--fromat' (did you mean '--format'?)"),
            (["history", "--limt", "3"],
             "checkpointctl: unknown option '--limt' (did you mean '--limit'?)"),
            (["runs", "--zzzzzz"], "checkpointctl: unknown option '--zzzzzz'"),
            (["history", "--columns", "id,stgae"],
             "checkpointctl: --columns: unknown column 'stgae' (did you mean 'stage'?)"),
        ]
        for args, first_line in cases:
            with self.subTest(args=args):
                result = ctl(*args)
                self.assert_usage(result)
                lines = result.stderr.decode().splitlines()
                self.assertEqual(lines[0], first_line)
                self.assertTrue(lines[1].startswith("usage: checkpointctl"), lines)
        # the list of commands follows an unknown command (new subcommands included)
        err = ctl("stauts").stderr.decode()
        for command in ("status", "history", "pipelines", "backup", "verify"):
            self.assertIn(command, err)

    def test_history_last_and_columns(self):
        directory, db = self.reference_copy()
        everything = db_history(db, "default")
        for last in (1, 3, len(everything), len(everything) + 5):
            self.check_every_format(["history", "--dir", directory, "--last", last],
                                    HISTORY_COLUMNS, everything[-last:], ["timestamp"])
        failed = [r for r in everything if r["status"] == "completed"]
        self.check_every_format(["history", "--dir", directory, "--status", "completed",
                                 "--last", 2], HISTORY_COLUMNS, failed[-2:], ["timestamp"])
        columns = ["stage", "id", "run_id"]
        self.check_every_format(["history", "--dir", directory, "--columns", ",".join(columns)],
                                columns, [{c: r[c] for c in columns} for r in everything])
        self.check_table(ctl("history", "--dir", directory, "--format", "table", "--columns",
                             "stage,id,run_id", "--last", 4), columns, everything[-4:])
        # the other listings take --columns too
        self.check_every_format(["status", "--dir", directory, "--columns", "status,stage"],
                                ["status", "stage"],
                                [{"status": r["status"], "stage": r["stage"]}
                                 for r in db_status(db)])
        self.check_every_format(["runs", "--dir", directory, "--columns", "outcome"], ["outcome"],
                                [{"outcome": r["outcome"]} for r in db_runs(db)])

    def odd_names_database(self):
        directory = self.tmp / "odd"
        run_fixture(directory, [save(name) for name in ODD_TABLE_STAGES] + [
            dict(op="begin", stage="failing"),
            dict(op="fail", stage="failing", message="a very long failure message " * 8),
            dict(op="clear_all"), save(CJK_STAGE), save(DASH)])
        return directory, directory / "checkpoints.db"

    def test_tables_fit_120_columns_stay_aligned_and_escape_names(self):
        directory, db = self.odd_names_database()
        history = db_history(db)
        result = ctl("history", "--dir", directory, "--format", "table")
        self.check_table(result, HISTORY_TABLE_COLUMNS, history)  # aligned, as display widths
        lines = result.stdout.decode().splitlines()
        for line in lines:
            self.assertLessEqual(display_width(line), 120, line)
        self.check_table(ctl("status", "--dir", directory, "--format", "table"), STATUS_COLUMNS,
                         db_status(db))
        self.check_table(ctl("dump", "--dir", directory, "--format", "table"),
                         DUMP_TABLE_COLUMNS, history)
        text = result.stdout.decode()
        # escaped, and each unambiguous
        self.assertIn("back\\\\nslash", text)   # the backslash doubled
        self.assertIn("back\\nslash ", text)     # the newline as \n
        self.assertIn("ctl\\x01\\x7Fchar", text)
        self.assertIn('" spaced "', text)
        # a stage named "-" is quoted; the pipeline-wide clear's absent stage is a bare -
        stage_cells = [line.split()[1] for line in lines[1:]]
        self.assertEqual(stage_cells.count('"-"'), 2)
        self.assertEqual(stage_cells.count("-"), 1)
        # cut with … (the whole value in csv and json)
        self.assertIn(LONG_STAGE[:23] + "\u2026", text)
        self.assertNotIn(LONG_STAGE, text)
        csv_rows = parse_output("csv", ctl("history", "--dir", directory, "--format",
                                           "csv").stdout, HISTORY_COLUMNS)
        self.assertIn(LONG_STAGE, [r["stage"] for r in csv_rows])
        # the CJK and emoji names are whole: two columns a character, aligned
        self.assertIn(CJK_STAGE, text)
        self.assertIn(EMOJI_STAGES, text)

    def test_display_width_table_matches_pythons_unicode_data(self):
        # the tool's own width table against Python's unicodedata, through real tables: one
        # stage per character class, each line's columns must line up
        directory = self.tmp / "widths"
        samples = ["漢字", "한글", "カタカナ", "ｆｕｌｌ", "😀", "🎉x", "✅", "⌚", "a\u0300b", "x\u200dy",
                   "☃", "é", "—", "Ω", "中文字符串"]
        run_fixture(directory, [save(name) for name in samples])
        db = directory / "checkpoints.db"
        self.check_table(ctl("status", "--dir", directory, "--format", "table", "--columns",
                             "stage,status,version"), ["stage", "status", "version"],
                         db_status(db))

    def test_pipelines(self):
        directory, db = self.reference_copy()
        expected = []
        for pipeline in sorted({r["pipeline"] for r in db_history(db)}, key=str.encode):
            status = db_status(db, pipeline)
            runs = db_runs(db, pipeline)
            times = [s["last_change"] for s in status] + [r["started_at"] for r in runs] + [
                r["ended_at"] for r in runs if r["ended_at"]]
            expected.append({"pipeline": pipeline, "stages": len(status),
                             "completed": sum(s["status"] == "completed" for s in status),
                             "runs": len(runs), "last_activity": max(times)})
        self.assertEqual(len(expected), 2)
        self.check_every_format(["pipelines", "--dir", directory], PIPELINE_COLUMNS, expected,
                                ["last_activity"])
        self.check_table(ctl("pipelines", "--dir", directory, "--format", "table"),
                         PIPELINE_COLUMNS, expected)

    def test_verify_as_json_and_its_messages(self):
        directory, db = self.reference_copy()
        result = ctl("verify", "--dir", directory, "--format", "json")
        self.assert_ok(result)
        self.assertEqual(json.loads(result.stdout), [])
        # damage: a version that goes back, and an output file two rows share gone
        conn = sqlite3.connect(db)
        twice = conn.execute("SELECT id FROM checkpoints WHERE stage = 'twice' AND "
                             "status = 'completed' ORDER BY id").fetchall()
        conn.execute("UPDATE checkpoints SET version = 1 WHERE id = ?", (twice[-1][0],))
        digest, = conn.execute("SELECT output_sha256 FROM checkpoints WHERE "
                               "output_in_database = 0 LIMIT 1").fetchone()
        first, = conn.execute("SELECT min(id) FROM checkpoints WHERE output_sha256 = ?",
                              (digest,)).fetchone()
        conn.execute("INSERT INTO checkpoints (pipeline, stage, status, version, timestamp, "
                     "run_id, output_size, output_sha256, output_in_database, input_count) "
                     "SELECT pipeline, stage || ' copy', 'completed', 1, timestamp, run_id, "
                     "output_size, output_sha256, 0, 0 FROM checkpoints WHERE id = ?", (first,))
        conn.commit()
        conn.close()
        (outputs_directory(db) / digest).unlink()
        result = ctl("verify", "--dir", directory, "--format", "json")
        self.assertEqual(result.returncode, EXIT_VERIFY, self.describe(result))
        problems = json.loads(result.stdout)
        self.assertIsInstance(problems, list)
        self.assertTrue(all(isinstance(p, str) for p in problems))
        text = "\n".join(problems)
        self.assertIn(f"checkpoints row {twice[-1][0]}: stage 'twice' completed as version 1, "
                      "but an earlier row of the stage already reached version 1", text)
        self.assertIn(f"checkpoints row {first} (and 1 later row with the same output): ", text)
        self.assertNotIn(" rows from ", text)
        # the text form says the same, a problem a line
        plain = ctl("verify", "--dir", directory)
        self.assertEqual(plain.returncode, EXIT_VERIFY)
        self.assertEqual(plain.stdout.decode().splitlines(), problems)

    def test_file_alone_holds_every_row_after_a_clean_exit(self):
        # `cp checkpoints.db elsewhere/` after the writers exit, read with the sqlite3 shell
        directory = self.tmp / "ck"
        run_worker("save", directory, "s", 40, "begin")
        run_fixture(directory, [save("with-output", output="x" * 300)], "--max-inline", 64)
        self.assert_ok(ctl("clear", "--dir", directory, "--stage", "s-3", "--yes"))
        db = directory / "checkpoints.db"
        self.assertIn("checkpoints.db-wal", listing(directory))  # kept (persistent WAL)
        rows = db_count(db, "checkpoints")
        self.assertEqual(rows, 40 * 2 + 1 + 1)
        elsewhere = self.tmp / "elsewhere"
        elsewhere.mkdir()
        shutil.copy(db, elsewhere / "checkpoints.db")
        result = sqlite3_shell(elsewhere / "checkpoints.db", "select count(*) from checkpoints")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, f"{rows}\n".encode())
        self.assertEqual(result.stderr, b"")
        # and the copy, with its outputs, is a sound database
        shutil.copytree(outputs_directory(db), outputs_directory(elsewhere / "checkpoints.db"))
        self.assert_ok(ctl("verify", "--db", elsewhere / "checkpoints.db"))

    def test_read_commands_create_nothing(self):
        directory, db = self.reference_copy()
        before = listing(directory)
        self.assertEqual(before, ["checkpoints.db", "checkpoints.db-outputs"])
        digest = db_files(db)
        commands = [["status"], ["history"], ["runs"], ["dump"], ["verify"], ["pipelines"],
                    ["history", "--last", "2"], ["status", "--format", "json"],
                    ["backup", self.tmp / "bk"], ["migrate"]]
        for command in commands:
            for location in (["--dir", directory], ["--db", db]):
                with self.subTest(args=command + location):
                    shutil.rmtree(self.tmp / "bk", ignore_errors=True)
                    self.assert_ok(ctl(*command, *location))
                    self.assertEqual(listing(directory), before)
                    self.assertEqual(db_files(db), digest)

    def test_backup_of_a_database_with_outputs(self):
        directory, db = self.reference_copy()
        dest = self.tmp / "backups" / "monday"
        result = ctl("backup", "--dir", directory, dest)
        self.assert_ok(result)
        self.assertIn(str(dest / "checkpoints.db"), result.stdout.decode())
        self.assertEqual(listing(dest), ["checkpoints.db", "checkpoints.db-outputs"])
        self.assertEqual(listing(dest / "checkpoints.db-outputs"),
                         listing(outputs_directory(db)))
        self.assertEqual(db_history(dest / "checkpoints.db"), db_history(db))
        self.assertEqual(db_history(dest / "checkpoints.db", OTHER), db_history(db, OTHER))
        self.assert_ok(ctl("verify", "--dir", dest))
        self.assertEqual(stat_mode(dest / "checkpoints.db"), 0o600)
        # one self-contained file: the sqlite3 shell reads it alone
        copy = self.tmp / "alone.db"
        shutil.copy(dest / "checkpoints.db", copy)
        result = sqlite3_shell(copy, "select count(*) from checkpoints")
        self.assertEqual(result.stdout, f"{db_count(db, 'checkpoints')}\n".encode())
        # never over an existing backup
        before = sha256(dest / "checkpoints.db")
        result = ctl("backup", "--dir", directory, dest)
        self.assert_error(result, EXIT_USAGE, "already exists")
        self.assertEqual(sha256(dest / "checkpoints.db"), before)
        self.assertEqual(listing(dest), ["checkpoints.db", "checkpoints.db-outputs"])
        # a missing database: not found, nothing created
        self.assert_error(ctl("backup", "--dir", self.tmp / "typo", self.tmp / "b2"),
                          EXIT_NOT_FOUND)
        self.assertFalse((self.tmp / "b2").exists())

    def test_backup_while_a_writer_runs(self):
        # A writer child saves stages with output files (300 bytes, above its inline limit)
        # without pause; its acknowledgements go to a file, so it never waits for us.
        directory = self.tmp / "live"
        out, err = self.tmp / "worker.out", self.tmp / "worker.err"
        with open(out, "wb") as out_file, open(err, "wb") as err_file:
            proc = subprocess.Popen([WORKER, "save-output", directory, "w", "0", "300",
                                     "--inline-limit", "100", "--dup", "7"],
                                    stdout=out_file, stderr=err_file, env=ENV)
        try:
            def acked():
                return out.read_bytes().count(b"\n")

            def wait_acks(count):
                deadline = time.monotonic() + TIMEOUT
                while acked() < count:
                    self.assertIsNone(proc.poll(), f"the writer stopped: {err.read_text()}")
                    self.assertLess(time.monotonic(), deadline, "the writer made no progress")
                    time.sleep(0.01)

            wait_acks(5)
            copies = []
            for n in range(3):
                before = acked()
                dest = self.tmp / f"backup-{n}"
                result = ctl("backup", "--dir", directory, dest)
                self.assert_ok(result)
                copies.append((dest, before))
                wait_acks(acked() + 3)  # the writer goes on
            for dest, before in copies:
                with self.subTest(backup=dest.name):
                    self.assertEqual(listing(dest), ["checkpoints.db", "checkpoints.db-outputs"])
                    self.assert_ok(ctl("verify", "--dir", dest))
                    self.assertGreaterEqual(db_count(dest / "checkpoints.db", "checkpoints"),
                                            before)
        finally:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        self.assertNotIn(b"error", err.read_bytes())


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


# ---------------------------------------------------------------------------------------------
# Issue 4: the new history columns, stale stages, prune, clear --downstream


class FixtureProcess:
    """tests/ctl_fixture.cpp kept running (its run stays 'running'), stepped line by line."""

    def __init__(self, test, directory, *options):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([FIXTURE, str(directory), *[str(o) for o in options]],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, bufsize=0, env=ENV)
        test.addCleanup(self.kill)
        self.reply("ready")

    def reply(self, expected=None, timeout=20):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"the fixture did not answer within {timeout} s")
        line = self.proc.stdout.readline().decode().rstrip("\n")
        if expected is not None:
            if line != expected:
                raise AssertionError(f"fixture printed {line!r}, expected {expected!r}; "
                                     f"stderr: {self.stderr()}")
            return line
        return json.loads(line)

    def do(self, command):
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        return self.reply()

    def close(self):
        self.proc.stdin.close()
        return self.proc.wait(timeout=TIMEOUT)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream and not stream.closed:
                stream.close()
        self.err.close()


class HistoryColumnsTest(CtlTestCase):
    """fingerprint, metadata, output_size, output_sha256, output_location and inputs, after
    the original columns, compared with the tables themselves (not only the views)."""

    def test_new_columns_come_after_the_original_ones(self):
        directory, db = self.reference_copy()
        for command in ("history", "dump"):
            with self.subTest(command=command):
                result = ctl(command, "--dir", directory, "--format", "csv")
                self.assert_ok(result)
                header = next(csv.reader(io.StringIO(result.stdout.decode(), newline="")))
                self.assertEqual(header[:len(ORIGINAL_HISTORY_COLUMNS)], ORIGINAL_HISTORY_COLUMNS)
                self.assertEqual(header, HISTORY_COLUMNS)
                # a reader that knows only the original columns still reads them, by position
                rows = list(csv.reader(io.StringIO(result.stdout.decode(), newline="")))[1:]
                expected = db_history(db, None if command == "dump" else "default")
                self.assertEqual([row[:9] for row in rows],
                                 [[as_csv([r])[0][c] for c in ORIGINAL_HISTORY_COLUMNS]
                                  for r in expected])
        result = ctl("status", "--dir", directory, "--format", "csv")
        header = next(csv.reader(io.StringIO(result.stdout.decode(), newline="")))
        self.assertEqual(header, ORIGINAL_STATUS_COLUMNS + ["reason"])

    def test_values_match_the_tables(self):
        directory, db = self.reference_copy()
        with connect_ro(db) as conn:
            rows = {r[0]: r[1:] for r in conn.execute(
                "SELECT id, fingerprint, metadata, output_size, output_sha256, "
                "output_in_database FROM checkpoints")}
            inputs = {}
            for checkpoint_id, stage, version, input_id in conn.execute(
                    "SELECT checkpoint_id, input_stage, input_version, input_id "
                    "FROM checkpoint_inputs ORDER BY checkpoint_id, position"):
                inputs.setdefault(checkpoint_id, []).append((stage, version, input_id))
            inline = dict(conn.execute("SELECT checkpoint_id, length(data) FROM output_data"))
        self.assertGreaterEqual(len(inputs), 3)
        csv_rows = parse_output("csv", ctl("dump", "--dir", directory, "--format", "csv").stdout,
                                HISTORY_COLUMNS)
        json_rows = parse_output("json", ctl("dump", "--dir", directory, "--format",
                                             "json").stdout, HISTORY_COLUMNS)
        ndjson_rows = parse_output("ndjson", ctl("dump", "--dir", directory).stdout,
                                   HISTORY_COLUMNS)
        self.assertEqual(json_rows, ndjson_rows)
        self.assertEqual([int(r["id"]) for r in csv_rows], sorted(rows))
        seen = set()
        for text, obj in zip(csv_rows, json_rows):
            fingerprint, metadata, size, digest, in_database = rows[obj["id"]]
            used = inputs.get(obj["id"], [])
            with self.subTest(id=obj["id"]):
                # CSV: the stored text exactly; JSON: natural values
                self.assertEqual(text["fingerprint"], fingerprint or "")
                self.assertEqual(obj["fingerprint"], fingerprint)
                self.assertEqual(text["metadata"], metadata or "")
                self.assertEqual(obj["metadata"], None if metadata is None else
                                 json.loads(metadata))
                if metadata is not None:
                    self.assertIsInstance(obj["metadata"], dict)
                self.assertEqual(text["output_size"], "" if size is None else str(size))
                self.assertEqual(obj["output_size"], size)
                self.assertEqual(obj["output_sha256"], digest)
                self.assertEqual(text["output_sha256"], digest or "")
                location = {None: None, 1: "database", 0: "file"}[in_database]
                self.assertEqual(obj["output_location"], location)
                self.assertEqual(text["output_location"], location or "")
                if location == "file":
                    path = outputs_directory(db) / digest
                    self.assertEqual(path.stat().st_size, size)
                    self.assertEqual(hashlib.sha256(path.read_bytes()).hexdigest(), digest)
                if location == "database":
                    self.assertEqual(inline[obj["id"]], size)
                self.assertEqual(text["inputs"], ";".join(f"{s}@{v}" for s, v, _ in used))
                self.assertEqual(obj["inputs"], [{"stage": s, "version": v, "id": i}
                                                 for s, v, i in used] or None)
                seen.update(k for k in ("fingerprint", "metadata", "output_size", "inputs")
                            if obj[k] is not None)
                seen.update([location])
        self.assertEqual(seen, {"fingerprint", "metadata", "output_size", "inputs", "database",
                                "file", None})
        # the odd values: the exact bytes the pipeline saved
        raw = next(r for r in json_rows if r["stage"] == RAW)
        self.assertEqual(raw["metadata"], ODD_METADATA)
        self.assertEqual(raw["fingerprint"], ODD_FINGERPRINT)
        self.assertEqual(raw["output_sha256"], hashlib.sha256(b"raw bytes").hexdigest())
        summary = next(r for r in csv_rows if r["stage"] == "summary")
        self.assertEqual(summary["output_size"], "0")
        self.assertRegex(summary["inputs"], rf"^{re.escape(FEATURES)}@1;report@1;"
                                            rf"{re.escape(RAW)}@1$")

    def test_table_shows_metadata_and_inputs_as_text(self):
        directory, db = self.reference_copy()
        columns = ["id", "stage", "metadata", "inputs"]
        result = ctl("history", "--dir", directory, "--format", "table", "--stage", "summary",
                     "--columns", ",".join(columns))
        expected = [r for r in db_history(db, "default") if r["stage"] in ("summary", None)]
        self.assertEqual(len(expected), 1)
        self.check_table(result, columns, expected)
        line = result.stdout.decode().splitlines()[-1]
        # inputs as stage@version;..., the newline in a name escaped as in every table cell,
        # cut to 32 columns (csv and json hold it whole)
        self.assertIn("  features @v;2\\nü@1;report@1;raw\u2026", line)
        result = ctl("history", "--dir", directory, "--format", "table", "--stage", RAW,
                     "--columns", ",".join(columns))
        self.check_table(result, columns,
                         [r for r in db_history(db, "default") if r["stage"] == RAW])
        # metadata as its JSON text (its backslashes shown doubled, as every backslash)
        cell = table_cell(ODD_METADATA, "metadata")
        self.assertTrue(cell.startswith('{"nested":{"empty":{}') and cell.endswith("\u2026"))
        self.assertIn(cell, result.stdout.decode())

    def test_dump_streams_in_constant_memory(self):
        """The peak memory of dump does not grow with the history (rows with 2 KB of
        metadata and two inputs each): 5x the rows, about the same peak."""
        # Under AddressSanitizer, measured without its quarantine (WITHOUT_ASAN_QUARANTINE):
        # then the peak means what it means in the plain build, and the check still holds.
        metadata = {"note": "m" * 2000, "n": 1}
        peaks = {}
        for count in (3000, 15000):
            directory = self.tmp / f"rows{count}"
            run_fixture(directory, [save("base"), save("other"),
                                    dict(op="save_many", prefix="s", count=count,
                                         metadata=metadata, inputs=["base", "other"],
                                         fingerprint="f" * 64)], "--normal")
            for fmt in ("json", "csv"):
                with open(os.devnull, "wb") as sink:
                    proc = subprocess.Popen([CTL, "dump", "--dir", str(directory), "--format",
                                             fmt], stdout=sink, stderr=subprocess.PIPE,
                                            env=WITHOUT_ASAN_QUARANTINE)
                    _, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    self.assertEqual(proc.returncode, 0, proc.stderr.read())
                    proc.stderr.close()
                peaks[(count, fmt)] = usage.ru_maxrss  # KiB
        for fmt in ("json", "csv"):
            small, large = peaks[(3000, fmt)], peaks[(15000, fmt)]
            # 12,000 more rows of over 2 KB each would be over 24 MB more if they were held
            self.assertLess(large - small, 8 * 1024, peaks)
        result = ctl("dump", "--dir", self.tmp / "rows3000", "--format", "ndjson")
        rows = parse_output("ndjson", result.stdout, HISTORY_COLUMNS)
        self.assertEqual(len(rows), 3002)
        self.assertEqual(rows[-1]["metadata"], metadata)
        self.assertEqual([i["stage"] for i in rows[-1]["inputs"]], ["base", "other"])


class StaleStatusTest(CtlTestCase):
    """status reads 'stale' (with the library's reason) for a completed stage that is not
    up to date, in every format."""

    def build(self):
        directory = self.tmp / "stale"
        run_fixture(directory, [
            save("a", output="A" * 100),             # a file (the limit is 16 bytes)
            save("b", inputs=["a"]),
            save("c", inputs=["b"], metadata={"k": 1}),
            save("d"),
            save("e", inputs=["d"], output="E" * 100),
            save("f", output="F" * 100),
            save("g", output="G" * 100),
            save("i"),
            save("j", inputs=["i"]),
            dict(op="clear", stage="i"),
            save("k", inputs=["d"], output="tiny"),   # in the database
            dict(op="fail", stage="failing", message="boom"),
        ], "--max-inline", 16)
        run_fixture(directory, [save("a", output="A2" * 50)])  # a saved again
        db = directory / "checkpoints.db"
        outputs = outputs_directory(db)
        (outputs / hashlib.sha256(b"F" * 100).hexdigest()).unlink()
        with open(outputs / hashlib.sha256(b"G" * 100).hexdigest(), "r+b") as f:
            f.truncate(60)
        return directory, db

    def test_stale_stages_in_every_format(self):
        directory, db = self.build()
        expected = db_status(db)
        states = {r["stage"]: r["status"] for r in expected}
        # the reference computation itself found what was made stale, and only that
        self.assertEqual(states, {"a": "completed", "b": "stale", "c": "stale", "d": "completed",
                                  "e": "completed", "f": "stale", "g": "stale", "i": "cleared",
                                  "j": "stale", "k": "completed", "failing": "failed"})
        self.check_every_format(["status", "--dir", directory], STATUS_COLUMNS, expected,
                                ["last_change"])
        self.check_table(ctl("status", "--dir", directory, "--format", "table"),
                         STATUS_COLUMNS, expected)
        # JSON: natural values; reason null unless stale
        status = {r["stage"]: r for r in json.loads(
            ctl("status", "--dir", directory, "--format", "json").stdout)}
        self.assertIsNone(status["a"]["reason"])
        self.assertIsNone(status["failing"]["reason"])
        self.assertIsInstance(status["b"]["version"], int)
        self.assertIn("'a'", status["b"]["reason"])
        self.assertIn("saved again", status["b"]["reason"])
        self.assertIn("'b'", status["c"]["reason"])
        self.assertIn("missing", status["f"]["reason"])
        self.assertIn("60", status["g"]["reason"])
        self.assertIn("'i'", status["j"]["reason"])
        # the library agrees: stale exactly when has_checkpoint is false, with these words
        replies = run_fixture(directory, [dict(op=op, stage=stage) for stage in sorted(status)
                                          for op in ("has", "latest")])
        for index, stage in enumerate(sorted(status)):
            has, latest = replies[2 * index], replies[2 * index + 1]
            with self.subTest(stage=stage):
                self.assertEqual(has["has"], status[stage]["status"] == "completed")
                self.assertEqual(latest["stale"], status[stage]["status"] == "stale")
                self.assertEqual(latest["reason"], status[stage]["reason"] or "")
        # history still shows the rows as they were written: completed
        history = json.loads(ctl("history", "--dir", directory, "--format", "json",
                                 "--stage", "b").stdout)
        self.assertEqual([r["status"] for r in history], ["completed"])

    def test_named_stages_and_a_stale_stage_made_fresh_again(self):
        directory, db = self.build()
        names = ["c", "nope", "b", "a"]
        current = {r["stage"]: r for r in db_status(db)}
        expected = [current.get(name) or {"stage": name, "status": "not run", "version": None,
                                          "last_change": None, "run_id": None, "reason": None}
                    for name in names]
        self.assertEqual([r["status"] for r in expected], ["stale", "not run", "stale",
                                                           "completed"])
        self.check_every_format(["status", "--dir", directory, *names], STATUS_COLUMNS,
                                expected, ["last_change"])
        # b saved again with the current a: b fresh, and c is stale only because b changed
        run_fixture(directory, [save("b", inputs=["a"])])
        status = {r["stage"]: r for r in json.loads(
            ctl("status", "--dir", directory, "--format", "json", "b", "c").stdout)}
        self.assertEqual((status["b"]["status"], status["b"]["reason"]), ("completed", None))
        self.assertEqual(status["c"]["status"], "stale")
        self.assertIn("saved again", status["c"]["reason"])
        self.assertEqual(list(status.values()),
                         [r for r in db_status(db) if r["stage"] in ("b", "c")])

    def test_reads_of_stale_stages_change_nothing(self):
        directory, db = self.build()
        before = db_files(db)
        self.assertIsNotNone(before["outputs"])
        for args in (["status"], ["status", "b", "f"], ["history"], ["dump"], ["runs"]):
            for fmt in ("table", "csv", "json", "ndjson"):
                with self.subTest(args=args, format=fmt):
                    self.assert_ok(ctl(*args, "--dir", directory, "--format", fmt))
                    self.assertEqual(db_files(db), before, "a read command changed the files")
        # verify reports the missing and the truncated output file, and changes nothing
        result = ctl("verify", "--dir", directory)
        self.assertEqual(result.returncode, EXIT_VERIFY, self.describe(result))
        out = result.stdout.decode()
        self.assertEqual(len(out.splitlines()), 2, out)
        self.assertIn(hashlib.sha256(b"F" * 100).hexdigest(), out)
        self.assertIn(hashlib.sha256(b"G" * 100).hexdigest(), out)
        self.assertEqual(db_files(db), before, "verify changed the files")


def expected_prune(db, pipeline="default", older_than=None, keep_last=None):
    """The ids of the rows PruneOptions would delete, from sqlite3 reads: rows older than the
    cutoff (if set), of a stage before its keep_last-th newest completed version (if set),
    never a stage's head, the pipeline's last clear, or a row of a running run."""
    with connect_ro(db) as conn:
        rows = conn.execute("SELECT c.id, c.stage, c.status, c.timestamp, r.outcome, r.host, "
                            "r.pid FROM checkpoints c JOIN runs r ON r.run_id = c.run_id "
                            "WHERE c.pipeline = ? ORDER BY c.id", (pipeline,)).fetchall()
        heads = {r[0] for r in conn.execute("SELECT head_id FROM stage_heads WHERE pipeline = ?",
                                            (pipeline,))}
        last_clear = conn.execute("SELECT cleared_id FROM pipelines WHERE pipeline = ?",
                                  (pipeline,)).fetchone()
    last_clear = last_clear[0] if last_clear else 0
    cutoff = None
    if older_than is not None:
        moment = time.time() - older_than
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + ".%03dZ" % (
            int(moment * 1000) % 1000)
    keep_from = {}
    if keep_last is not None:
        completed = {}
        for row_id, stage, status, *_ in rows:
            if status == "completed":
                completed.setdefault(stage, []).append(row_id)
        keep_from = {stage: ids[-keep_last] for stage, ids in completed.items()
                     if len(ids) >= keep_last}
    pruned = set()
    for row_id, stage, status, timestamp, outcome, host, pid in rows:
        if cutoff is not None and not timestamp < cutoff:
            continue
        if keep_last is not None and stage is not None and not (
                stage in keep_from and row_id < keep_from[stage]):
            continue
        if row_id in heads or row_id == last_clear:
            continue
        if outcome == "running" and process_alive(host, pid):
            continue
        pruned.add(row_id)
    return pruned


PRUNED_LINE = re.compile(r"^pruned pipeline '(?P<pipeline>.*)': deleted (?P<rows>\d+) row\(s\), "
                         r"(?P<runs>\d+) run\(s\), (?P<files>\d+) output file\(s\); "
                         r"freed (?P<bytes>\d+) byte\(s\)\n$")


class PruneTest(CtlTestCase):
    def build(self, name="prune"):
        """Three runs of a (outputs in files, v2 and v3 sharing one), b (outputs in the
        database) and c, with two pipeline-wide clears; and another pipeline."""
        directory = self.tmp / name
        run_fixture(directory, [save("a", output="a1" * 50, metadata={"v": 1}),
                                save("b", output="b1"),
                                dict(op="begin", stage="c"),
                                dict(op="fail", stage="c", message="first try")],
                    "--max-inline", 16)
        run_fixture(directory, [dict(op="clear_all"), dict(op="clear_all"),
                                save("a", output="a2" * 50), save("b", output="b22"),
                                dict(op="begin", stage="c"), save("c", inputs=["a"])],
                    "--max-inline", 16)
        run_fixture(directory, [save("a", output="a2" * 50), save("b", output="b333")],
                    "--max-inline", 16)
        run_fixture(directory, [save("x"), save("x"), save("x")], "--pipeline", OTHER)
        return directory, directory / "checkpoints.db"

    def snapshot(self, db):
        """Rows (id → stage, status), runs, and output files (name → size)."""
        with connect_ro(db) as conn:
            rows = dict((r[0], r[1:]) for r in conn.execute(
                "SELECT id, pipeline, stage, status, version FROM checkpoints"))
            runs = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        outputs = outputs_directory(db)
        files = {p.name: p.stat().st_size for p in outputs.iterdir()} if outputs.exists() else {}
        return rows, runs, files

    def prune(self, directory, *args):
        result = ctl("prune", "--dir", directory, *args)
        self.assert_ok(result)
        match = PRUNED_LINE.match(result.stdout.decode())
        self.assertIsNotNone(match, self.describe(result))
        return {k: (v if k == "pipeline" else int(v)) for k, v in match.groupdict().items()}

    def check_prune(self, directory, db, args, expected_ids, pipeline="default"):
        """Runs prune and checks that it deleted exactly `expected_ids`, the runs left
        without rows, and the files only they referenced, and says so."""
        rows, runs, files = self.snapshot(db)
        self.assertTrue(expected_ids <= set(rows))
        with connect_ro(db) as conn:
            kept_files = {r[0] for r in conn.execute(
                f"SELECT output_sha256 FROM checkpoints WHERE output_in_database = 0 AND id NOT "
                f"IN ({','.join(map(str, expected_ids)) or 'NULL'})")}
            pruned_files = {r[0] for r in conn.execute(
                f"SELECT output_sha256 FROM checkpoints WHERE output_in_database = 0 AND id "
                f"IN ({','.join(map(str, expected_ids)) or 'NULL'})")} - kept_files
            inline_bytes = conn.execute(
                f"SELECT coalesce(sum(output_size), 0) FROM checkpoints WHERE "
                f"output_in_database = 1 AND id IN ({','.join(map(str, expected_ids)) or 'NULL'})"
            ).fetchone()[0]
            run_of = dict(conn.execute("SELECT id, run_id FROM checkpoints"))
            ended = {r[0] for r in conn.execute("SELECT run_id FROM runs WHERE outcome <> "
                                                "'running'")}
        remaining_runs = {run_of[i] for i in set(rows) - expected_ids}
        status_before = db_status(db, pipeline)
        said = self.prune(directory, *args)
        rows_after, runs_after, files_after = self.snapshot(db)
        self.assertEqual(set(rows) - set(rows_after), expected_ids)
        self.assertEqual(set(rows_after) - set(rows), set())
        self.assertEqual(runs - runs_after, (runs & ended) - remaining_runs)
        self.assertEqual(set(files) - set(files_after), pruned_files)
        self.assertEqual(said, {"pipeline": pipeline, "rows": len(rows) - len(rows_after),
                                "runs": len(runs) - len(runs_after),
                                "files": len(files) - len(files_after),
                                "bytes": sum(files[f] for f in pruned_files) + inline_bytes})
        self.assertEqual(db_status(db, pipeline), status_before, "the current state changed")
        self.assert_ok(ctl("verify", "--dir", directory))
        return said

    def test_keep_last(self):
        directory, db = self.build()
        expected = expected_prune(db, keep_last=1)
        rows, runs, files = self.snapshot(db)
        # the case is what it should be: run 1 goes entirely, a's v1 file with it, the file
        # a v2 shares with a v3 stays, the last clear stays
        stages = sorted(rows[i][1] or "" for i in expected)
        self.assertEqual(stages, ["", "a", "a", "b", "b", "c", "c", "c"])
        said = self.check_prune(directory, db, ["--keep-last", "1", "--yes"], expected)
        self.assertEqual((said["runs"], said["files"]), (1, 1))
        self.assertEqual(said["bytes"], 100 + len("b1") + len("b22"))
        # the current outputs load back; the pruned version no longer does
        loaded = run_fixture(directory, [dict(op="load", stage="a"),
                                         dict(op="load", stage="a", version=1),
                                         dict(op="load", stage="b"),
                                         dict(op="has", stage="b")])
        self.assertEqual(loaded, [{"output": "a2" * 50}, {"output": None}, {"output": "b333"},
                                  {"has": True}])
        # the other pipeline is untouched; pruning it too
        self.assertEqual(len([r for r in self.snapshot(db)[0].values() if r[0] == OTHER]), 3)
        expected = expected_prune(db, OTHER, keep_last=2)
        self.assertEqual(len(expected), 1)
        self.check_prune(directory, db, ["--keep-last", "2", "--yes", "--pipeline", OTHER],
                         expected, OTHER)
        # again: nothing left to delete
        self.assertEqual(self.prune(directory, "--keep-last", "1", "-y"),
                         {"pipeline": "default", "rows": 0, "runs": 0, "files": 0, "bytes": 0})

    def backdate(self, db, run_index, when="2020-01-01T00:00:00.000Z"):
        """Makes every row of the run_index-th run (oldest first) as old as `when`."""
        conn = sqlite3.connect(db)
        with conn:
            run_id = conn.execute("SELECT run_id FROM runs WHERE pipeline = 'default' "
                                  "ORDER BY started_at, run_id").fetchall()[run_index][0]
            conn.execute("UPDATE checkpoints SET timestamp = ? WHERE run_id = ?", (when, run_id))
            conn.execute("UPDATE runs SET started_at = ?, ended_at = ? WHERE run_id = ?",
                         (when, when, run_id))
            # An edit by hand breaks the history chain (README, "Security"): restart it
            # after the edited rows, as for a database upgraded from schema 2.
            conn.execute("UPDATE checkpoints SET chain_hash = NULL")
            conn.execute("UPDATE history_chain SET start_id = (SELECT max(id) FROM checkpoints)")
        conn.close()

    def test_older_than_and_with_keep_last(self):
        for name, args, older_than, keep_last in (
                ("age", ["--older-than", "30d"], 30 * 86400, None),
                ("hours", ["--older-than", "12h"], 12 * 3600, None),
                ("both", ["--older-than", "90m", "--keep-last", "2"], 90 * 60, 2),
                ("recent", ["--older-than", "45s"], 45, None)):
            with self.subTest(args=args):
                directory, db = self.build(name)
                self.backdate(db, 0)
                self.backdate(db, 1, "2021-06-01T00:00:00.000Z")
                expected = expected_prune(db, older_than=older_than, keep_last=keep_last)
                self.assertTrue(expected)
                if keep_last:  # keep_last spares some old rows
                    self.assertLess(expected, expected_prune(db, older_than=older_than))
                self.check_prune(directory, db, [*args, "--yes"], expected)
        # nothing is that old: nothing goes
        directory, db = self.build("young")
        before = self.snapshot(db)
        self.assertEqual(self.prune(directory, "--older-than", "1d", "--yes")["rows"], 0)
        self.assertEqual(self.snapshot(db), before)

    def test_rows_of_a_running_run_are_kept(self):
        directory = self.tmp / "running"
        live = FixtureProcess(self, directory)
        for _ in range(3):
            self.assertEqual(live.do(save("y")), {"ok": True})
        db = directory / "checkpoints.db"
        rows, _, _ = self.snapshot(db)
        self.assertEqual(len(rows), 3)
        self.assertEqual(expected_prune(db, keep_last=1), set())
        self.assertEqual(self.prune(directory, "--keep-last", "1", "--yes")["rows"], 0)
        self.assertEqual(self.snapshot(db)[0], rows)
        self.assertEqual(live.close(), 0, live.stderr())
        expected = expected_prune(db, keep_last=1)
        self.assertEqual(len(expected), 2)
        self.check_prune(directory, db, ["--keep-last", "1", "--yes"], expected)

    def test_without_rules_only_orphaned_files_go(self):
        directory, db = self.build()
        outputs = outputs_directory(db)
        referenced = set(self.snapshot(db)[2])
        self.assertEqual(len(referenced), 2)
        two_hours_ago = time.time() - 7200
        old_orphan = outputs / hashlib.sha256(b"never committed").hexdigest()
        old_orphan.write_bytes(b"x" * 1000)
        old_temporary = outputs / (hashlib.sha256(b"in flight").hexdigest() + ".1234.tmp")
        old_temporary.write_bytes(b"y" * 300)
        young_orphan = outputs / hashlib.sha256(b"just written").hexdigest()
        young_orphan.write_bytes(b"z" * 50)
        unrelated = outputs / "notes.txt"
        unrelated.write_bytes(b"not an output")
        for path in (old_orphan, old_temporary, unrelated):
            os.utime(path, (two_hours_ago, two_hours_ago))
        for path in referenced:
            os.utime(outputs / path, (two_hours_ago, two_hours_ago))
        rows, runs, _ = self.snapshot(db)
        said = self.prune(directory, "--yes")
        self.assertEqual(said, {"pipeline": "default", "rows": 0, "runs": 0, "files": 2,
                                "bytes": 1300})
        self.assertEqual(self.snapshot(db), (rows, runs, {
            name: size for name, size in
            [(young_orphan.name, 50), (unrelated.name, 13)] +
            [(n, (outputs / n).stat().st_size) for n in referenced]}))
        # a grace of 0 takes the young one too, never a referenced file
        said = self.prune(directory, "--orphan-grace", "0s", "--yes")
        self.assertEqual((said["rows"], said["files"], said["bytes"]), (0, 1, 50))
        self.assertEqual(set(self.snapshot(db)[2]), referenced | {"notes.txt"})
        self.assertEqual(run_fixture(directory, [dict(op="load", stage="a")]),
                         [{"output": "a2" * 50}])

    def test_confirmation(self):
        directory, db = self.build()
        before = self.snapshot(db)
        args = ["prune", "--dir", str(directory), "--keep-last", "1"]
        for stdin_kind in ("devnull", "piped yes"):
            with self.subTest(stdin=stdin_kind):
                result = ctl(*args) if stdin_kind == "devnull" else ctl(*args, input=b"yes\n")
                self.assertEqual(result.returncode, EXIT_ERROR, self.describe(result))
                self.assertEqual(result.stdout, b"")
                self.assert_no_crash(result)
                err = result.stderr.decode()
                self.assertTrue(err.startswith("checkpointctl: refusing to prune"), err)
                self.assertIn("--yes", err)
                self.assertIn("nothing was pruned", err)
                self.assertEqual(self.snapshot(db), before)
        for answer in ("no", "", "n", "yes!"):
            with self.subTest(answer=answer):
                code, out, err, prompt = on_terminal(args, answer=answer)
                self.assertIn(b"Type 'yes'", prompt)
                self.assertIn(b"last 1 completed version", prompt)
                self.assertEqual(code, EXIT_ERROR, err)
                self.assertEqual(out, b"")
                self.assertIn(b"nothing was pruned", err)
                self.assertEqual(self.snapshot(db), before)
        code, out, err, prompt = on_terminal(["prune", "--dir", str(directory)], answer="no")
        self.assertIn(b"no history row is deleted", prompt)
        expected = expected_prune(db, keep_last=1)
        code, out, err, prompt = on_terminal(args, answer="yes")
        self.assertEqual(code, 0, err)
        self.assertRegex(out.decode(), PRUNED_LINE)
        self.assertEqual(set(before[0]) - set(self.snapshot(db)[0]), expected)

    def test_bad_values_are_usage_errors_and_change_nothing(self):
        directory, db = self.build()
        files = db_files(db)
        before = self.snapshot(db)
        bad_durations = ["30", "30x", "1w", "-1d", "+1d", "1.5h", "1,5h", "30 d", " 30d", "30d ",
                         "d", "", "30D", "1h30m", "0x10s", "٣d", "99999999999999999999d",
                         "36501d"]
        for option in ("--older-than", "--orphan-grace"):
            for value in bad_durations:
                with self.subTest(option=option, value=value):
                    result = ctl("prune", "--dir", directory, f"{option}={value}", "--yes")
                    self.assert_usage(result)
                    self.assertIn(option.encode(), result.stderr)
        for value in ("0", "-1", "many", "1.5", ""):
            with self.subTest(keep_last=value):
                self.assert_usage(ctl("prune", "--dir", directory, f"--keep-last={value}",
                                      "--yes"))
        self.assertEqual(db_files(db), files)
        self.assertEqual(self.snapshot(db), before)
        # the largest accepted, and the units at their edges
        for value in ("36500d", "876000h", "52560000m", "0d", "0s"):
            with self.subTest(value=value):
                self.assert_ok(ctl("prune", "--dir", directory, "--older-than", value,
                                   "--orphan-grace", value, "--yes"))

    def test_missing_database(self):
        missing = self.tmp / "typo"
        self.assert_error(ctl("prune", "--dir", missing, "--yes"), EXIT_NOT_FOUND)
        self.assert_error(ctl("prune", "--db", self.tmp / "typo.db", "--yes", "--keep-last",
                              "1"), EXIT_NOT_FOUND)
        self.assertEqual(list(self.tmp.iterdir()), [])


def db_downstream(db, stages, pipeline="default"):
    """The stages downstream of `stages` now (from current_state): whose current completed
    checkpoint consumed one of them, or one of those, transitively."""
    with connect_ro(db) as conn:
        current = conn.execute("SELECT stage, status, inputs FROM current_state "
                               "WHERE pipeline = ?", (pipeline,)).fetchall()
    reached = set(stages)
    grew = True
    while grew:
        grew = False
        for stage, status, inputs in current:
            if status == "completed" and stage not in reached and inputs and any(
                    i["stage"] in reached for i in json.loads(inputs)):
                reached.add(stage)
                grew = True
    return reached - set(stages)


class ClearDownstreamTest(CtlTestCase):
    ODD = 'b, "odd"'

    def build(self):
        directory = self.tmp / "down"
        b = self.ODD
        run_fixture(directory, [
            save("a"), save(b, inputs=["a"]), save("c", inputs=[b]), save("d"),
            save("x", inputs=["d", "a"]), save("e", inputs=["d"]),
            save("f", inputs=[b]), save("f"),         # f's current checkpoint no longer uses b
            save("g", inputs=["a"]), dict(op="clear", stage="g"),   # g: cleared already
        ])
        return directory, directory / "checkpoints.db"

    def new_rows(self, db, after):
        return [r for r in db_history(db) if r["id"] > after]

    def test_clear_a_stage_and_its_downstream(self):
        directory, db = self.build()
        downstream = db_downstream(db, ["a"])
        self.assertEqual(downstream, {self.ODD, "c", "x"})
        last = db_history(db)[-1]["id"]
        before = {r["stage"]: r for r in db_status(db)}
        result = ctl("clear", "--dir", directory, "--stage", "a", "--downstream", "--yes")
        self.assert_ok(result)
        self.assertEqual(result.stdout.decode().splitlines(),
                         ["cleared stage 'a'"] +
                         [f"cleared stage '{s}' (downstream of 'a')" for s in sorted(downstream)])
        new = self.new_rows(db, last)
        # one Cleared row per stage, the named stage first, in one run (one transaction)
        self.assertEqual([(r["stage"], r["status"]) for r in new],
                         [("a", "cleared")] + [(s, "cleared") for s in sorted(downstream)])
        self.assertEqual(len({r["run_id"] for r in new}), 1)
        self.assertEqual([r["id"] for r in new], list(range(last + 1, last + 1 + len(new))))
        after = {r["stage"]: r for r in db_status(db)}
        for stage in before:
            with self.subTest(stage=stage):
                if stage in downstream | {"a"}:
                    self.assertEqual(after[stage]["status"], "cleared")
                else:
                    self.assertEqual(after[stage], before[stage])
        replies = run_fixture(directory, [dict(op="has", stage=s) for s in sorted(before)])
        self.assertEqual({s: r["has"] for s, r in zip(sorted(before), replies)},
                         {s: after[s]["status"] == "completed" for s in sorted(before)})

    def test_several_stages_each_cleared_once(self):
        for order in (["a", "d"], ["d", "a"], [self.ODD, "a"], ["a", self.ODD]):
            with self.subTest(order=order):
                shutil.rmtree(self.tmp / "down", ignore_errors=True)
                directory, db = self.build()
                expected = db_downstream(db, order) | set(order)
                last = db_history(db)[-1]["id"]
                args = [a for stage in order for a in ("--stage", stage)]
                result = ctl("clear", "--dir", directory, *args, "--downstream", "-y")
                self.assert_ok(result)
                new = self.new_rows(db, last)
                self.assertEqual(sorted(r["stage"] for r in new), sorted(expected))
                self.assertTrue(all(r["status"] == "cleared" for r in new))
                lines = result.stdout.decode().splitlines()
                self.assertEqual(len(lines), len(expected))
                self.assertEqual(lines[0], f"cleared stage '{order[0]}'")

    def test_a_stage_without_downstream_and_a_stage_never_saved(self):
        directory, db = self.build()
        last = db_history(db)[-1]["id"]
        # a stage never recorded is refused (a typo), unless --force
        files = db_files(db)
        result = ctl("clear", "--dir", directory, "--stage", "c", "--stage", "never",
                     "--downstream", "--yes")
        self.assert_error(result, EXIT_NOT_FOUND, "'never' never recorded")
        self.assertEqual(db_files(db), files)
        result = ctl("clear", "--dir", directory, "--stage", "c", "--stage", "never",
                     "--downstream", "--yes", "--force")
        self.assert_ok(result)
        self.assertEqual(result.stdout.decode(), "cleared stage 'c'\ncleared stage 'never'\n")
        self.assertEqual([(r["stage"], r["status"]) for r in self.new_rows(db, last)],
                         [("c", "cleared"), ("never", "cleared")])

    def test_downstream_needs_a_stage_and_confirmation(self):
        directory, db = self.build()
        files = db_files(db)
        for args in (["--downstream", "--yes"], ["--downstream"]):
            with self.subTest(args=args):
                result = ctl("clear", "--dir", directory, *args)
                self.assert_usage(result)
                self.assertIn(b"--stage", result.stderr)
        self.assertEqual(db_files(db), files)
        count = db_count(db, "checkpoints")
        result = ctl("clear", "--dir", directory, "--stage", "a", "--downstream")
        self.assertEqual(result.returncode, EXIT_ERROR, self.describe(result))
        self.assertIn(b"--yes", result.stderr)
        self.assertEqual(db_count(db, "checkpoints"), count)
        args = ["clear", "--dir", str(directory), "--stage", "a", "--downstream"]
        code, out, err, prompt = on_terminal(args, answer="no")
        self.assertEqual(code, EXIT_ERROR)
        self.assertEqual(db_count(db, "checkpoints"), count)
        # the prompt names the stages that would go with it
        self.assertIn("'a'", prompt.decode())
        self.assertIn(f"(now '{self.ODD}', 'c', 'x')", prompt.decode())
        code, out, err, prompt = on_terminal(args, answer="yes")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(out.decode().splitlines()), 4)
        self.assertEqual(db_count(db, "checkpoints"), count + 4)


class PostgresTest(CtlTestCase):
    """--url, CHECKPOINT_URL and copy against the PostgreSQL server tools/test.sh starts."""

    def setUp(self):
        super().setUp()
        self.url = self.create_database()

    def create_database(self):
        return postgres_database(self, "ctl_", TIMEOUT)

    def dump(self, *location):
        result = ctl(*location, "dump", "--format", "ndjson")
        self.assert_ok(result)
        return [json.loads(line) for line in result.stdout.decode().splitlines()]

    def test_copy_to_postgresql_and_back_keeps_every_row(self):
        directory, _ = self.reference_copy()
        copied = ctl("copy", "--from", directory, "--to", self.url)
        self.assert_ok(copied)
        self.assertIn(b"copied ", copied.stdout)
        source = self.dump("--dir", directory)
        there = self.dump("--url", self.url)
        self.assertGreater(len(source), 10)
        # Identical, ids included, but for where each backend keeps an output.
        strip = lambda rows: [{k: v for k, v in row.items() if k != "output_location"}
                              for row in rows]
        self.assertEqual(strip(there), strip(source))
        self.assertTrue(all(row["output_location"] in (None, "database") for row in there))
        self.assert_ok(ctl("--url", self.url, "verify"))
        back = self.tmp / "back"
        self.assert_ok(ctl("copy", "--from", self.url, "--to", back))
        # Back in SQLite, an output goes where the default max_inline_output puts it.
        self.assertEqual(strip(self.dump("--dir", back)), strip(source))
        self.assert_ok(ctl("--dir", back, "verify"))
        # status and runs agree too.
        for command in (["status"], ["runs"]):
            self.assertEqual(ctl("--url", self.url, *command, "--format", "json").stdout,
                             ctl("--dir", directory, *command, "--format", "json").stdout)
        # A second copy into the same (now non-empty) database is refused, nothing written.
        again = ctl("copy", "--from", directory, "--to", self.url)
        self.assert_error(again, EXIT_USAGE, "empty")
        self.assertEqual(len(self.dump("--url", self.url)), len(source))

    def test_checkpoint_url_is_the_default_location(self):
        directory, _ = self.reference_copy()
        self.assert_ok(ctl("copy", "--from", directory, "--to", self.url))
        env = dict(ENV, CHECKPOINT_URL=self.url)
        by_env = ctl("status", "--format", "json", env=env)
        self.assert_ok(by_env)
        self.assertEqual(by_env.stdout, ctl("--url", self.url, "status", "--format", "json").stdout)
        # An explicit --dir wins over the variable.
        empty = self.tmp / "empty"
        empty.mkdir()
        self.assert_error(ctl("--dir", empty, "status", env=env), EXIT_NOT_FOUND)

    def test_issue_15_commands_on_postgresql(self):
        directory, db = self.reference_copy()
        self.assert_ok(ctl("copy", "--from", directory, "--to", self.url))
        # pipelines, --last, --columns, dump --pipeline and verify --format json: as on SQLite
        # (output_location differs: PostgreSQL keeps every output in the database)
        same = "id,pipeline,stage,status,version,timestamp,run_id,message,inputs"
        for args in (["pipelines"], ["history", "--last", "3", "--columns", same],
                     ["history", "--columns", "id,stage,status"],
                     ["dump", "--pipeline", OTHER, "--columns", same],
                     ["status", "--pipeline", OTHER]):
            with self.subTest(args=args):
                there = ctl("--url", self.url, *args, "--format", "json")
                self.assert_ok(there)
                self.assertEqual(there.stdout,
                                 ctl("--dir", directory, *args, "--format", "json").stdout)
        verify = ctl("--url", self.url, "verify", "--format", "json")
        self.assert_ok(verify)
        self.assertEqual(json.loads(verify.stdout), [])
        # an unknown pipeline, a stage never recorded: not found
        self.assert_error(ctl("--url", self.url, "status", "--pipeline", "nope"), EXIT_NOT_FOUND,
                          "pipeline 'nope' has no rows")
        self.assert_error(ctl("--url", self.url, "clear", "--stage", "nope", "--yes"),
                          EXIT_NOT_FOUND, "never recorded")
        # backup is for SQLite: PostgreSQL is backed up with pg_dump; nothing is created
        result = ctl("--url", self.url, "backup", self.tmp / "bk")
        self.assert_error(result, EXIT_USAGE, "pg_dump")
        self.assertFalse((self.tmp / "bk").exists())

    def test_url_with_dir_or_db_is_a_usage_error(self):
        self.assert_usage(ctl("--url", self.url, "--dir", self.tmp, "status"))
        self.assert_usage(ctl("--url", self.url, "status", "--db", self.tmp / "x.db"))

    def test_a_password_is_never_printed(self):
        secret = "pa55-w0rd-" + os.urandom(4).hex()
        unreachable = f"postgresql://nobody:{secret}@127.0.0.1:1/nowhere?connect_timeout=2"
        directory, _ = self.reference_copy()
        for args in (["--url", unreachable, "status"], ["--url", unreachable, "history"],
                     ["copy", "--from", directory, "--to", unreachable],
                     ["-v", "--url", unreachable, "verify"]):
            with self.subTest(args=args):
                result = ctl(*args)
                if "-v" in args:  # the library's own log lines come first
                    self.assertEqual(result.returncode, EXIT_UNAVAILABLE, self.describe(result))
                    self.assertIn(b"127.0.0.1:1", result.stderr)
                else:
                    self.assert_error(result, EXIT_UNAVAILABLE, "127.0.0.1:1")
                self.assertNotIn(secret.encode(), result.stderr + result.stdout)


def load_tests(loader, tests, pattern):
    return shard("checkpointctl_test", tests)


if __name__ == "__main__":
    program = unittest.main(exit=False)
    if program.result.testsRun == 0:
        print("checkpointctl_test: ran no test", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if program.result.wasSuccessful() else 1)
