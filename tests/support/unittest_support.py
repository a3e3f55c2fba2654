"""Shared by the unittest-based test scripts (tests/checkpointctl_test.py,
tests/dashboard_test.py): running one shard of a script, and a fresh database on the
PostgreSQL test server."""

import os
import re
import shutil
import subprocess
import sys
import unittest


def shard(script, tests):
    """CHECKPOINT_TEST_SHARD=I/N (set by tests/CMakeLists.txt): only every Nth test (by test
    id), from the Ith (0-based), so that CTest runs the N parts in parallel. Every test is in
    exactly one part. Use as the script's load_tests."""
    value = os.environ.get("CHECKPOINT_TEST_SHARD")
    if not value:
        return tests
    match = re.fullmatch(r"(\d+)/(\d+)", value)
    if not match or int(match[1]) >= int(match[2]):
        raise ValueError(f"CHECKPOINT_TEST_SHARD={value!r}: expected I/N with 0 <= I < N")
    index, count = int(match[1]), int(match[2])

    def flatten(suite):
        for test in suite:
            if isinstance(test, unittest.TestSuite):
                yield from flatten(test)
            else:
                yield test

    every = sorted(flatten(tests), key=lambda test: test.id())
    part = every[index::count]
    print(f"{script}: part {index + 1} of {count}: {len(part)} of {len(every)} tests",
          file=sys.stderr)
    return unittest.TestSuite(part)


def postgres_database(test, prefix, timeout):
    """A fresh database on the test server (CHECKPOINT_TEST_PG_URL, which tools/test.sh sets),
    dropped when `test` (a unittest.TestCase) ends; returns its URL. Fails the test, saying
    how to start a server, when none is configured."""
    server = os.environ.get("CHECKPOINT_TEST_PG_URL")
    if not server:
        test.fail("CHECKPOINT_TEST_PG_URL is not set: run through tools/test.sh, or start a "
                  'server with eval "$(tools/pg_server.sh start)"')
    psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"

    def sql(statement):
        subprocess.run([psql, server, "-qAtc", statement], check=True, capture_output=True,
                       timeout=timeout)

    name = prefix + os.urandom(8).hex()
    sql(f"CREATE DATABASE {name}")
    test.addCleanup(sql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return server.rsplit("/", 1)[0] + "/" + name
