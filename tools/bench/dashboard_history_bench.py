#!/usr/bin/env python3
"""How fast `checkpointctl serve` answers the history page's API call on a long history.

Writes (once; reused when --dir already holds it) a database of ROWS history rows through the
library (tests/ctl_fixture.cpp, Durability::Normal): ten stages, each attempt a begin then a
save, one attempt in fifty a failure with a message. Then starts `checkpointctl serve` on a
free port and times each request over one kept-alive HTTP connection, as the browser does:
the newest page, a page deep in the history (before=ID), a stage filter, a status filter.
Prints the median, 95th percentile and maximum of each. A benchmark, not a test: it fails
only when a request fails.

  cmake --build build -j2 --target checkpointctl checkpoint_ctl_fixture
  python3 tools/bench/dashboard_history_bench.py --build build [--rows 1000000] [--dir DIR]
"""

import argparse
import http.client
import json
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_database(fixture, directory, rows):
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log = tempfile.TemporaryFile()  # the library logs every save
    process = subprocess.Popen([str(fixture), str(directory), "--normal"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=log)
    written = 0
    attempt = 0
    lines = []
    while written < rows:
        stage = f"stage-{attempt % 10}"
        lines.append(json.dumps({"op": "begin", "stage": stage}))
        if attempt % 50 == 49:
            lines.append(json.dumps({"op": "fail", "stage": stage,
                                     "message": f"attempt {attempt} failed: input missing"}))
        else:
            lines.append(json.dumps({"op": "save", "stage": stage}))
        written += 2
        attempt += 1
        if len(lines) >= 10_000:
            process.stdin.write(("\n".join(lines) + "\n").encode())
            lines.clear()
    if lines:
        process.stdin.write(("\n".join(lines) + "\n").encode())
    process.stdin.close()
    if process.wait() != 0:
        log.seek(0)
        sys.exit(f"ctl_fixture failed: {log.read()[-2000:].decode(errors='replace')}")
    print(f"wrote {written} rows in {time.monotonic() - started:.0f} s to {directory}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="the build directory (default: build)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", help="keep the database here (written when missing)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per call")
    args = parser.parse_args()
    build = Path(args.build)
    ctl = build / "tools" / "checkpointctl"
    fixture = build / "tests" / "checkpoint_ctl_fixture"
    temporary = None
    if args.dir:
        directory = Path(args.dir)
    else:
        temporary = tempfile.TemporaryDirectory(prefix="dashboard-bench-")
        directory = Path(temporary.name) / "ck"
    if not (directory / "checkpoints.db").exists():
        write_database(fixture, directory, args.rows)

    server = subprocess.Popen([str(ctl), "serve", "--dir", str(directory), "--listen",
                               "127.0.0.1:0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        line = server.stdout.readline().decode() if ready else ""
        match = re.match(r"serving http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            sys.exit(f"serve printed {line!r}")
        connection = http.client.HTTPConnection("127.0.0.1", int(match[1]), timeout=60)

        def get(path):
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                sys.exit(f"GET {path}: {response.status} {body[:300]!r}")
            return json.loads(body)

        newest = get("/api/history?pipeline=default&limit=1")["rows"][0]["id"]
        calls = [
            ("newest 50 rows", "/api/history?pipeline=default&limit=50"),
            ("50 rows from the middle", f"/api/history?pipeline=default&limit=50&before={newest // 2}"),
            ("50 oldest rows", "/api/history?pipeline=default&limit=50&before=101"),
            ("stage filter, newest 50", "/api/history?pipeline=default&stage=stage-3&limit=50"),
            ("status=failed, newest 50", "/api/history?pipeline=default&status=failed&limit=50"),
            ("stages (the pipeline page)", "/api/stages?pipeline=default"),
            ("runs (the pipeline page)", "/api/runs?pipeline=default"),
        ]
        print(f"{newest} rows; {args.requests} requests each over one connection")
        print(f"{'call':30} {'median':>9} {'p95':>9} {'max':>9}")
        for name, path in calls:
            for _ in range(3):
                get(path)
            times = []
            for _ in range(args.requests):
                started = time.perf_counter()
                get(path)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{name:30} {statistics.median(times):7.2f}ms {p95:7.2f}ms {times[-1]:7.2f}ms")
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        if temporary:
            temporary.cleanup()


if __name__ == "__main__":
    main()
