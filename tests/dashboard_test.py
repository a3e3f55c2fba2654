#!/usr/bin/env python3
"""checkpointctl serve and report --html, driven for real: the server as a child process on a
free port (port 0: it prints the one it got), its pages rendered by headless Chromium
(--dump-dom, --screenshot, and the DevTools protocol over a pipe to watch one page update in
place), its JSON API compared with `checkpointctl status|runs|history --format json`, /metrics
parsed back, the database and its -wal hashed before and after a session of requests, and the
HTML report opened from disk with every network request refused.

The database: the example pipeline (interrupted, resumed, rerun with a changed setting), a
stage named like an HTML injection that failed with a message that tries to end a <script>, a
stage named like a script injection, and a second pipeline whose name needs escaping in
Prometheus labels.

Environment (set by tests/CMakeLists.txt):
  CHECKPOINTCTL           the checkpointctl binary
  CHECKPOINT_TEST_WORKER  tests/worker.cpp (fail / serve)
  CHECKPOINT_CTL_FIXTURE  tests/ctl_fixture.cpp (saves through the library)
  CHECKPOINT_EXAMPLE      the example pipeline
  CHROMIUM                optional: the browser (default: chromium on PATH; missing fails)

  python3 tests/dashboard_test.py --screenshots DIR   writes the README's two screenshots
"""

import hashlib
import html.parser
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
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
# No silent skip: without a browser these tests fail (tools/deps.sh installs chromium).
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
    raise RuntimeError("chromium not found (set CHROMIUM or install it: tools/deps.sh does)")

ENV = dict(os.environ, LC_ALL="C.UTF-8")
TIMEOUT = 60
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_A_DB, EXIT_LISTEN = 0, 1, 2, 4, 5, 9

HOSTILE_STAGE = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_MESSAGE = "boom </script><script>document.title='pwned2'</script> & <b>bold</b>"
SCRIPT_STAGE = "</script><script>document.title='pwned3'</script>"
ODD_PIPELINE = 'other "pipe"\\ line\nsecond'
PWNED = re.compile(r"pwned")

# Chromium in a fresh profile, with what would reach out to the network switched off
# (this machine's network is closed; without them Chromium's own connections are refused).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--disable-default-apps", "--disable-extensions",
                  "--mute-audio"]
# For the report: every host resolves to nothing and every request goes to a dead proxy.
NO_NETWORK = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
              "--proxy-bypass-list=<-loopback>"]


# ---------------------------------------------------------------------------------------------
# Running things


def ctl(*args, timeout=TIMEOUT):
    return subprocess.run([CTL, *[str(a) for a in args]], capture_output=True, timeout=timeout,
                          env=ENV, stdin=subprocess.DEVNULL)


def ctl_json(*args):
    result = ctl(*args, "--format", "json")
    if result.returncode != 0:
        raise AssertionError(f"checkpointctl {args} exited {result.returncode}: {result.stderr!r}")
    return json.loads(result.stdout)


def run_fixture(directory, commands, *options):
    text = "".join(json.dumps(command) + "\n" for command in commands)
    result = subprocess.run([FIXTURE, str(directory), *options], input=text.encode(),
                            capture_output=True, timeout=TIMEOUT, env=ENV)
    if result.returncode != 0:
        raise AssertionError(f"fixture exited {result.returncode}: {result.stderr!r}")


def run_checked(*args):
    result = subprocess.run([str(a) for a in args], capture_output=True, timeout=TIMEOUT,
                            env=ENV, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr!r}")
    return result


def build_database(directory):
    """The example pipeline's database, with a hostile failed stage, a script-named stage and
    a second pipeline."""
    crashed = subprocess.run([EXAMPLE, "--dir", str(directory), "--crash-after",
                              "data_preprocessing"], capture_output=True, timeout=TIMEOUT, env=ENV)
    if crashed.returncode != 3:  # the example's simulated crash
        raise AssertionError(f"example --crash-after exited {crashed.returncode}")
    run_checked(EXAMPLE, "--dir", directory)
    run_checked(EXAMPLE, "--dir", directory, "--outlier-mads", "2")


def build_hostile(directory):
    run_checked(WORKER, "fail", directory, HOSTILE_STAGE, HOSTILE_MESSAGE)
    run_fixture(directory, [dict(op="save", stage=SCRIPT_STAGE, metadata={"note": SCRIPT_STAGE})])
    run_fixture(directory, [dict(op="save", stage="a"), dict(op="begin", stage="b"),
                            dict(op="fail", stage="b", message="odd failure")],
                "--pipeline", ODD_PIPELINE)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """checkpointctl serve on a port the kernel chose; stopped (SIGTERM) at cleanup."""

    def __init__(self, test, directory, *extra, location=None):
        """`location`: the location options (default: --dir directory)."""
        self.err = tempfile.TemporaryFile()
        where = location or ["--dir", str(directory)]
        self.proc = subprocess.Popen([CTL, "serve", *where, "--listen",
                                      "127.0.0.1:0", *extra], stdout=subprocess.PIPE,
                                     stderr=self.err, stdin=subprocess.DEVNULL, env=ENV)
        test.addCleanup(self.kill)
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        line = self.proc.stdout.readline().decode() if ready else ""
        match = re.match(r"serving (http://127\.0\.0\.1:(\d+)/) ", line)
        if not match:
            raise AssertionError(f"serve printed {line!r}; stderr: {self.stderr()}")
        self.url = match[1]
        # Ready when it answers (bounded: TIMEOUT seconds in all).
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                status, _, _ = self.get("/api/pipelines")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"serve never answered; stderr: {self.stderr()}")
            time.sleep(0.05)

    def get(self, path):
        """(status, content type, body bytes) of GET path."""
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=TIMEOUT) as response:
                return response.status, response.headers.get("Content-Type"), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type"), error.read()

    def json(self, path, status=200):
        got, content_type, body = self.get(path)
        if got != status:
            raise AssertionError(f"GET {path}: {got}, expected {status}: {body[:500]!r}")
        if not content_type.startswith("application/json"):
            raise AssertionError(f"GET {path}: content type {content_type}")
        return json.loads(body)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.proc.stdout.close()
        self.err.close()


def chromium(args, profile):
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"chromium {args} exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace')[-2000:]}")
    return result.stdout.decode()


def dump_dom(url, profile, extra=()):
    """The DOM after the page's scripts ran (virtual time: its timers run without waiting)."""
    return chromium([*extra, "--virtual-time-budget=4000", "--dump-dom", url], profile)


def screenshot(url, file, profile):
    chromium(["--virtual-time-budget=4000", "--hide-scrollbars", f"--screenshot={file}",
              "--window-size=1280,900", url], profile)


def png_size(file):
    data = Path(file).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise AssertionError(f"{file} is not a PNG")
    return struct.unpack(">II", data[16:24])


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4), to keep one
    page open and read its DOM while the database changes."""

    def __init__(self, test, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def child_fds():
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-pipe", "about:blank"],
                                     pass_fds=(3, 4), preexec_fn=child_fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        test.addCleanup(self.close)

    def call(self, method, timeout=TIMEOUT, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.from_browser], [], [], max(0, left))
            if not ready:
                raise AssertionError(f"Chromium did not answer {method} within {timeout} s")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise AssertionError("Chromium closed the DevTools pipe")
            self.buffer += chunk

    def open(self, url):
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, tries=300, pause=0.1):
        """Evaluates `expression` until it is truthy: at most `tries` times."""
        value = None
        for _ in range(tries):
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(pause)
        raise AssertionError(f"the page never showed {what} ({tries} tries); last: {value!r}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.session = None
                self.call("Browser.close", timeout=10)
                self.proc.wait(timeout=10)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for fd in (self.to_browser, self.from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


class Dom(html.parser.HTMLParser):
    """The elements of a dumped DOM: (tag, attributes, text inside) for each."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.open = []
        self.title = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": []}
        self.elements.append(element)
        if tag not in ("meta", "link", "input", "br", "img", "rect", "line", "path"):
            self.open.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i]["tag"] == tag:
                del self.open[i:]
                return

    def handle_data(self, data):
        for element in self.open:
            element["text"].append(data)

    def find(self, tag=None, cls=None):
        found = []
        for element in self.elements:
            if tag and element["tag"] != tag:
                continue
            if cls and cls not in element["attrs"].get("class", "").split():
                continue
            found.append(element)
        return found

    @staticmethod
    def text(element):
        return "".join(element["text"])


def html_text(text):
    """`text` as a DOM dump writes it inside an element."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).exists() else None


def database_state(directory):
    db = Path(directory) / "checkpoints.db"
    return {name: sha256(str(db) + name) for name in ("", "-wal")}


# ---------------------------------------------------------------------------------------------

TEMPLATE = None


def setUpModule():
    global TEMPLATE
    TEMPLATE = tempfile.TemporaryDirectory(prefix="dashboard-template-")
    build_database(Path(TEMPLATE.name) / "ck")
    build_hostile(Path(TEMPLATE.name) / "ck")


def tearDownModule():
    if TEMPLATE is not None:
        TEMPLATE.cleanup()


class DashboardTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="dashboard-test-")
        self.addCleanup(self._tmp.cleanup)
        self.tmp = Path(self._tmp.name)
        self.profiles = 0

    def copy(self):
        directory = self.tmp / "ck"
        shutil.copytree(Path(TEMPLATE.name) / "ck", directory)
        return directory

    def profile(self):
        self.profiles += 1
        path = self.tmp / f"profile-{self.profiles}"
        path.mkdir()
        return path

    def dom(self, url, extra=()):
        return Dom(dump_dom(url, self.profile(), extra))

    def assert_harmless(self, dom, raw, shows=(HOSTILE_STAGE,)):
        """The hostile names and messages made no element and no script effect."""
        self.assertEqual(dom.find("img"), [], "an <img> element was created")
        scripts = dom.find("script")
        self.assertTrue(all(s["attrs"].get("src") == "/assets/dashboard.js" or
                            s["attrs"].get("type") == "application/json" or
                            "checkpoint" in "".join(s["text"])[:400] for s in scripts),
                        [s["attrs"] for s in scripts])
        self.assertEqual(dom.find("b"), [], "a <b> element was created from a message")
        title = Dom.text(dom.find("title")[0])  # the document's (SVG elements have their own)
        self.assertNotRegex(title, PWNED)
        self.assertTrue(title.startswith("checkpoint"), title)
        handlers = [(e["tag"], k) for e in dom.elements for k in e["attrs"] if k.startswith("on")]
        self.assertEqual(handlers, [])
        # the names are there, as text
        for text in shows:
            self.assertIn(html_text(text), raw)


class PagesTest(DashboardTestCase):
    def test_pipelines_page_lists_every_pipeline(self):
        directory = self.copy()
        server = Server(self, directory)
        dom = self.dom(server.url)
        rows = dom.find("tr", "pipeline")
        expected = server.json("/api/pipelines")["pipelines"]
        self.assertEqual(len(rows), 2)
        self.assertEqual(sorted(p["pipeline"] for p in expected), ["default", ODD_PIPELINE])
        for pipeline, row in zip(expected, rows):
            text = Dom.text(row)
            self.assertIn(pipeline["pipeline"], text)
            for status, count in pipeline["stages_by_status"].items():
                self.assertIn(f"{count} {status}", text)
        links = [a["attrs"]["href"] for a in dom.find("a") if "pipeline?" in a["attrs"]["href"]]
        self.assertEqual(sorted(urllib.parse.parse_qs(urllib.parse.urlparse(h).query)["pipeline"][0]
                                for h in links), ["default", ODD_PIPELINE])

    def test_pipeline_page_shows_every_stage_and_status(self):
        directory = self.copy()
        server = Server(self, directory)
        raw = dump_dom(server.url + "pipeline?pipeline=default", self.profile())
        dom = Dom(raw)
        expected = ctl_json("status", "--dir", directory)
        rows = dom.find("tr", "stage")
        self.assertEqual(len(rows), len(expected))
        shown = {}
        for row in rows:
            shown[row["attrs"]["data-status"]] = shown.get(row["attrs"]["data-status"], 0) + 1
        by_status = {}
        for stage in expected:
            by_status[stage["status"]] = by_status.get(stage["status"], 0) + 1
        self.assertEqual(shown, by_status)
        cells = [Dom.text(e) for e in dom.find("td", "name")]
        self.assertEqual(sorted(cells), sorted(s["stage"] for s in expected))
        self.assertIn(HOSTILE_STAGE, cells)
        self.assertIn(SCRIPT_STAGE, cells)
        messages = [Dom.text(e) for e in dom.find("td", "msg")]
        self.assertIn(HOSTILE_MESSAGE, messages)
        badges = [Dom.text(e) for e in dom.find("span", "badge")]
        for stage in expected:
            self.assertIn(stage["status"], badges)
        # the runs, newest first, each linking to its page
        runs = ctl_json("runs", "--dir", directory)
        run_links = [a["attrs"]["href"] for a in dom.find("a") if a["attrs"]["href"].startswith("/run?")]
        self.assertEqual([urllib.parse.parse_qs(urllib.parse.urlparse(h).query)["run"][0]
                          for h in run_links], [r["run_id"] for r in reversed(runs)])
        self.assert_harmless(dom, raw)

    def test_stale_stage_shows_its_reason(self):
        directory = self.copy()
        run_fixture(directory, [dict(op="save", stage="up"), dict(op="save", stage="down", inputs=["up"]),
                                dict(op="save", stage="up")])
        server = Server(self, directory)
        dom = self.dom(server.url + "pipeline?pipeline=default")
        stale = [r for r in dom.find("tr", "stage") if r["attrs"]["data-status"] == "stale"]
        self.assertEqual(len(stale), 1)
        reason = [s for s in ctl_json("status", "--dir", directory) if s["stage"] == "down"][0]["reason"]
        self.assertIn(reason, [Dom.text(e) for e in dom.find("span", "reason")])

    def test_run_timeline_has_one_bar_per_stage(self):
        directory = self.copy()
        server = Server(self, directory)
        runs = ctl_json("runs", "--dir", directory)
        self.assertGreaterEqual(len(runs), 4)
        for run in runs:
            with self.subTest(run=run["run_id"]):
                rows = ctl_json("history", "--dir", directory, "--run", run["run_id"])
                stages = []
                for row in rows:
                    if row["stage"] is not None and row["status"] != "cleared" and \
                            row["stage"] not in stages:
                        stages.append(row["stage"])
                url = server.url + "run?" + urllib.parse.urlencode(
                    {"pipeline": "default", "run": run["run_id"]})
                raw = dump_dom(url, self.profile())
                dom = Dom(raw)
                bars = dom.find("rect", "timeline-bar")
                self.assertEqual([b["attrs"]["data-stage"] for b in bars], stages)
                last = {}
                for row in rows:
                    if row["stage"] is not None and row["status"] != "cleared":
                        last[row["stage"]] = row["status"]
                self.assertEqual({b["attrs"]["data-stage"]: b["attrs"]["data-status"] for b in bars},
                                 last)
                for bar in bars:
                    self.assertIn(bar["attrs"]["data-status"], bar["attrs"]["class"].split())
                    self.assertGreaterEqual(float(bar["attrs"]["width"]), 3)
                # a time axis, and the failures with their messages
                self.assertTrue(dom.find("g", "axis"))
                failures = [Dom.text(e) for e in dom.find("td", "msg")]
                for row in rows:
                    if row["status"] == "failed":
                        self.assertIn(row["message"], failures)
                self.assert_harmless(dom, raw, shows=[s for s in (HOSTILE_STAGE, SCRIPT_STAGE)
                                                      if s in stages])

    def test_history_page_filters_and_pages(self):
        directory = self.copy()
        server = Server(self, directory)
        everything = list(reversed(ctl_json("history", "--dir", directory)))
        seen, before = [], None
        for _ in range(len(everything)):
            query = {"pipeline": "default", "limit": 3, "before": before}
            dom = self.dom(server.url + "history?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}))
            ids = [int(r["attrs"]["data-id"]) for r in dom.find("tr", "row")]
            self.assertLessEqual(len(ids), 3)
            seen += ids
            older = [a["attrs"]["href"] for a in dom.find("a") if Dom.text(a) == "Older →"]
            if not older:
                break
            before = int(urllib.parse.parse_qs(urllib.parse.urlparse(older[0]).query)["before"][0])
        self.assertEqual(seen, [r["id"] for r in everything])
        dom = self.dom(server.url + "history?pipeline=default&status=failed")
        rows = dom.find("tr", "row")
        self.assertEqual(len(rows), len([r for r in everything if r["status"] == "failed"]))
        self.assertTrue(all("failed" in Dom.text(r) for r in rows))


class LiveTest(DashboardTestCase):
    def test_page_updates_in_place_while_a_pipeline_runs(self):
        directory = self.tmp / "live"
        run_checked(EXAMPLE, "--dir", directory)
        server = Server(self, directory)
        worker = subprocess.Popen([WORKER, "serve", str(directory)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)

        def stop_worker():
            if worker.poll() is None:
                worker.kill()
            worker.wait(timeout=TIMEOUT)
            worker.stdin.close()
            worker.stdout.close()
        self.addCleanup(stop_worker)

        def do(command):
            worker.stdin.write((command + "\n").encode())
            worker.stdin.flush()
            ready, _, _ = select.select([worker.stdout], [], [], TIMEOUT)
            self.assertTrue(ready, f"worker did not answer {command!r}")
            self.assertEqual(worker.stdout.readline(), b"ok\n")
        ready, _, _ = select.select([worker.stdout], [], [], TIMEOUT)
        self.assertTrue(ready)
        self.assertEqual(worker.stdout.readline(), b"ready\n")

        browser = DevTools(self, self.profile())
        browser.open(server.url + "pipeline?pipeline=default")
        browser.wait_for("document.querySelectorAll('tr.stage').length === 3", "the 3 stages")
        browser.evaluate("window.loadedOnce = 'still this page'")
        row = ("Array.from(document.querySelectorAll('tr.stage')).filter(function (r) {"
               " return r.querySelector('td.name').textContent === 'live stage'; })")
        do("begin live stage")
        browser.wait_for(row + ".length === 1 && " + row + "[0].dataset.status === 'started'",
                         "the running stage")
        elapsed = browser.wait_for(row + "[0].querySelector('.elapsed') && " + row +
                                   "[0].querySelector('.elapsed').textContent",
                                   "the running stage's elapsed time")
        self.assertRegex(elapsed, r"^running \d")
        browser.wait_for("document.querySelector('#runs tbody tr .badge').textContent === "
                         "'running'", "the worker's run, running")
        do("save live stage")
        browser.wait_for(row + "[0].dataset.status === 'completed'", "the completed stage")
        do("save another stage")
        browser.wait_for("document.querySelectorAll('tr.stage').length === 5", "the new stage")
        # no reload: the page's own state survived every update
        self.assertEqual(browser.evaluate("window.loadedOnce"), "still this page")
        worker.stdin.close()
        self.assertEqual(worker.wait(timeout=TIMEOUT), 0)
        browser.wait_for("document.querySelector('#runs tbody tr .badge').textContent === "
                         "'finished'", "the run finished")


class ApiTest(DashboardTestCase):
    def test_json_api_matches_checkpointctl(self):
        directory = self.copy()
        server = Server(self, directory)
        for pipeline in ("default", ODD_PIPELINE):
            with self.subTest(pipeline=pipeline):
                q = urllib.parse.quote(pipeline)
                args = ("--dir", directory, "--pipeline", pipeline)
                stages = server.json(f"/api/stages?pipeline={q}")
                self.assertEqual(stages["pipeline"], pipeline)
                status = ctl_json("status", *args)
                self.assertEqual([{k: s[k] for k in status[0]} for s in stages["stages"]], status)
                self.assertEqual(server.json(f"/api/runs?pipeline={q}")["runs"],
                                 ctl_json("runs", *args))
                history = ctl_json("history", *args)
                page = server.json(f"/api/history?pipeline={q}&limit=1000")
                self.assertEqual(page["rows"], list(reversed(history)))
                self.assertIsNone(page["next_before"])
                for stage in {r["stage"] for r in history if r["stage"]}:
                    got = server.json(f"/api/history?pipeline={q}&stage={urllib.parse.quote(stage)}")
                    self.assertEqual(got["rows"], list(reversed(
                        ctl_json("history", *args, "--stage", stage)))[:50])
                for status_filter in ("completed", "failed", "started", "incomplete", "cleared"):
                    got = server.json(f"/api/history?pipeline={q}&status={status_filter}")
                    self.assertEqual(got["rows"], list(reversed(
                        ctl_json("history", *args, "--status", status_filter)))[:50])
                # pages of 2, newest first, concatenate to the whole history
                rows, before = [], ""
                while True:
                    got = server.json(f"/api/history?pipeline={q}&limit=2{before}")
                    rows += got["rows"]
                    self.assertLessEqual(len(got["rows"]), 2)
                    if got["next_before"] is None:
                        break
                    before = f"&before={got['next_before']}"
                self.assertEqual(rows, list(reversed(history)))
        pipelines = server.json("/api/pipelines")["pipelines"]
        self.assertEqual([p["pipeline"] for p in pipelines], sorted(["default", ODD_PIPELINE]))
        default = [p for p in pipelines if p["pipeline"] == "default"][0]
        status = ctl_json("status", "--dir", directory)
        counts = {}
        for stage in status:
            counts[stage["status"]] = counts.get(stage["status"], 0) + 1
        self.assertEqual(default["stages_by_status"], counts)
        self.assertEqual(default["stages"], len(status))
        self.assertEqual(default["last_run"], ctl_json("runs", "--dir", directory)[-1])
        completed = ctl_json("history", "--dir", directory, "--status", "completed")
        self.assertEqual(default["last_completed_at"], completed[-1]["timestamp"])

    def test_run_api_timeline(self):
        directory = self.copy()
        server = Server(self, directory)
        for run in ctl_json("runs", "--dir", directory):
            got = server.json("/api/run?" + urllib.parse.urlencode(
                {"pipeline": "default", "run": run["run_id"]}))
            self.assertEqual(got["run"], run)
            rows = ctl_json("history", "--dir", directory, "--run", run["run_id"])
            self.assertEqual(got["rows"], len(rows))
            self.assertEqual(got["failures"], [r for r in rows if r["status"] == "failed"])
            for bar in got["timeline"]["bars"]:
                self.assertLessEqual(0, bar["start_ms"])
                self.assertLessEqual(bar["start_ms"], bar["end_ms"])
                self.assertLessEqual(bar["end_ms"], got["timeline"]["length_ms"])

    def test_bad_input_gets_errors_never_a_crash(self):
        directory = self.copy()
        server = Server(self, directory)
        cases = [
            ("/api/stages?pipeline=nope", 404), ("/api/runs?pipeline=nope", 404),
            ("/api/history?pipeline=nope", 404), ("/api/stages", 400),
            ("/api/run?pipeline=default&run=nope", 404), ("/api/run?pipeline=default", 400),
            ("/api/history?pipeline=default&status=stale", 400),
            ("/api/history?pipeline=default&status=%3Cb%3E", 400),
            ("/api/history?pipeline=default&limit=0", 400),
            ("/api/history?pipeline=default&limit=1001", 400),
            ("/api/history?pipeline=default&limit=-1", 400),
            ("/api/history?pipeline=default&limit=abc", 400),
            ("/api/history?pipeline=default&before=99999999999999999999999", 400),
            ("/api/history?pipeline=default&stage=%FF%FE", 400),
            ("/api/history?pipeline=%FF", 404), ("/api/nope", 404),
        ]
        for path, status in cases:
            with self.subTest(path=path):
                body = server.json(path, status)
                self.assertIsInstance(body["error"], str)
                self.assertTrue(body["error"])
        for path in ("/pipeline?pipeline=nope", "/pipeline?pipeline=%3Cscript%3Ealert(1)%3C/script%3E",
                     "/run?pipeline=default&run=%3Cimg%20src=x%3E", "/history?pipeline=nope",
                     "/nope/%3Cb%3E"):
            with self.subTest(path=path):
                status, content_type, body = server.get(path)
                self.assertEqual(status, 404)
                self.assertTrue(content_type.startswith("text/html"))
                self.assertNotIn(b"<script>alert", body)
                self.assertNotIn(b"<img src", body)
                self.assertNotIn(b"<b>", body)
        status, _, body = server.get("/history?pipeline=default&status=nope")
        self.assertEqual(status, 400)
        # still serving
        self.assertEqual(server.get("/api/pipelines")[0], 200)
        self.assertEqual(server.stop(), 0)

    def test_metrics(self):
        directory = self.copy()
        server = Server(self, directory)
        status, content_type, body = server.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"))
        samples = {}
        sample = re.compile(r'^([a-z_]+)\{((?:[a-z]+="(?:[^"\\\n]|\\["\\n])*",?)*)\} (-?[0-9.e+]+)$')
        label = re.compile(r'([a-z]+)="((?:[^"\\\n]|\\["\\n])*)"')
        for line in body.decode().splitlines():
            if line.startswith("#"):
                self.assertRegex(line, r"^# (HELP|TYPE) [a-z_]+ ")
                continue
            match = sample.match(line)
            self.assertTrue(match, line)
            labels = {k: re.sub(r'\\(["\\n])', lambda m: "\n" if m[1] == "n" else m[1], v)
                      for k, v in label.findall(match[2])}
            samples[(match[1], tuple(sorted(labels.items())))] = float(match[3])

        def value(name, **labels):
            return samples.get((name, tuple(sorted(labels.items()))))
        for pipeline in ("default", ODD_PIPELINE):
            status_rows = ctl_json("status", "--dir", directory, "--pipeline", pipeline)
            for state in ("completed", "failed", "started", "incomplete", "cleared", "stale"):
                self.assertEqual(value("checkpoint_stages", pipeline=pipeline, status=state),
                                 sum(1 for s in status_rows if s["status"] == state))
            runs = ctl_json("runs", "--dir", directory, "--pipeline", pipeline)
            for outcome in ("running", "finished", "failed", "died"):
                self.assertEqual(value("checkpoint_runs", pipeline=pipeline, outcome=outcome),
                                 sum(1 for r in runs if r["outcome"] == outcome))
            self.assertIsNotNone(value("checkpoint_last_completed_timestamp_seconds",
                                       pipeline=pipeline))
        self.assertIn('pipeline="other \\"pipe\\"\\\\ line\\nsecond"', body.decode())
        history = ctl_json("history", "--dir", directory, "--stage", "model_training",
                           "--status", "completed")
        self.assertEqual(value("checkpoint_stage_last_duration_seconds", pipeline="default",
                               stage="model_training"), history[-1]["duration_ms"] / 1000)
        self.assertEqual(value("checkpoint_stage_last_duration_seconds", pipeline="default",
                               stage=HOSTILE_STAGE) is not None, True)


class PostgresApiTest(DashboardTestCase):
    """The dashboard on PostgreSQL: the reference history copied to a fresh database on the
    server tools/test.sh starts, served with --url, answers as checkpointctl --url does."""

    def test_json_api_on_postgresql_matches_checkpointctl(self):
        url = postgres_database(self, "dash_", TIMEOUT)
        copied = ctl("copy", "--from", self.copy(), "--to", url)
        self.assertEqual(copied.returncode, 0, copied.stderr)
        server = Server(self, None, location=["--url", url])
        names = [p["pipeline"] for p in server.json("/api/pipelines")["pipelines"]]
        self.assertEqual(sorted(names), sorted(["default", ODD_PIPELINE]))
        for pipeline in ("default", ODD_PIPELINE):
            with self.subTest(pipeline=pipeline):
                q = urllib.parse.quote(pipeline)
                args = ("--url", url, "--pipeline", pipeline)
                stages = server.json(f"/api/stages?pipeline={q}")
                status = ctl_json("status", *args)
                self.assertEqual([{k: s[k] for k in status[0]} for s in stages["stages"]], status)
                self.assertEqual(server.json(f"/api/runs?pipeline={q}")["runs"],
                                 ctl_json("runs", *args))
                history = ctl_json("history", *args)
                page = server.json(f"/api/history?pipeline={q}&limit=1000")
                self.assertEqual(page["rows"], list(reversed(history)))
                rows, before = [], ""
                while True:
                    got = server.json(f"/api/history?pipeline={q}&limit=2{before}")
                    rows += got["rows"]
                    if got["next_before"] is None:
                        break
                    before = f"&before={got['next_before']}"
                self.assertEqual(rows, list(reversed(history)))
        status, content_type, body = server.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"checkpoint_", body)


class ReadOnlyTest(DashboardTestCase):
    def test_a_session_of_requests_changes_nothing(self):
        directory = self.copy()
        before = database_state(directory)
        files = sorted(p.name for p in directory.iterdir())
        server = Server(self, directory)
        run = ctl_json("runs", "--dir", directory)[0]["run_id"]
        paths = ["/", "/pipeline?pipeline=default", f"/run?pipeline=default&run={run}",
                 "/history?pipeline=default", "/api/pipelines", "/api/stages?pipeline=default",
                 "/api/runs?pipeline=default", "/api/history?pipeline=default&limit=5",
                 f"/api/run?pipeline=default&run={run}", "/metrics", "/api/stages?pipeline=nope"]
        for path in paths:
            server.get(path)
        self.dom(server.url + "pipeline?pipeline=default")
        self.assertEqual(database_state(directory), before)
        self.assertEqual(server.stop(), 0)
        self.assertEqual(database_state(directory), before)
        self.assertEqual(sorted(p.name for p in directory.iterdir()), files)


class ReportTest(DashboardTestCase):
    def test_report_opens_from_disk_without_network(self):
        directory = self.copy()
        before = database_state(directory)
        report = self.tmp / "report.html"
        result = ctl("report", "--dir", directory, "--html", report)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(database_state(directory), before)
        text = report.read_text()
        # self-contained: nothing to fetch
        self.assertNotRegex(text, r"<(link|img|iframe)\b|<script[^>]*\bsrc=|url\(")
        self.assertEqual(re.findall(r"https?://[^\s\"'<]+", text), ["http://www.w3.org/2000/svg"])
        # the data cannot end its <script> element
        self.assertNotIn(SCRIPT_STAGE, text)
        self.assertNotIn("</script><script>document", text)
        raw = dump_dom(report.as_uri(), self.profile())
        dom = Dom(raw)
        status = ctl_json("status", "--dir", directory)
        rows = dom.find("tr", "stage")
        self.assertEqual(sorted(r["attrs"]["data-status"] for r in rows),
                         sorted(s["status"] for s in status))
        stage_cells = [Dom.text(e) for e in dom.find("td", "name")]
        for stage in status:
            self.assertIn(stage["stage"], stage_cells)
        # the last run: its timeline, rows and failures
        last = ctl_json("runs", "--dir", directory)[-1]
        rows = ctl_json("history", "--dir", directory, "--run", last["run_id"])
        bars = dom.find("rect", "timeline-bar")
        self.assertEqual(sorted(b["attrs"]["data-stage"] for b in bars),
                         sorted({r["stage"] for r in rows if r["stage"]}))
        self.assertEqual(len(dom.find("tr", "row")), len(rows))
        self.assertIn(HOSTILE_MESSAGE, [Dom.text(e) for e in dom.find("td", "msg")])
        self.assertEqual(len(dom.find("tr", "failure")),
                         len([r for r in rows if r["status"] == "failed"]))
        self.assert_harmless(dom, raw)
        # the same page with every request refused renders the same
        offline = dump_dom(report.as_uri(), self.profile(), NO_NETWORK)
        self.assertEqual(offline, raw)

    def test_report_of_a_chosen_run_and_errors(self):
        directory = self.copy()
        runs = ctl_json("runs", "--dir", directory)
        report = self.tmp / "first.html"
        result = ctl("report", "--dir", directory, "--html", report, "--run", runs[0]["run_id"])
        self.assertEqual(result.returncode, 0, result.stderr)
        dom = self.dom(report.as_uri())
        rows = ctl_json("history", "--dir", directory, "--run", runs[0]["run_id"])
        self.assertEqual([b["attrs"]["data-stage"] for b in dom.find("rect", "timeline-bar")],
                         list(dict.fromkeys(r["stage"] for r in rows if r["stage"])))
        # the failed run: its failure with its message
        failed = [r for r in runs if r["failed"] > 0][0]
        report = self.tmp / "failed.html"
        result = ctl("report", "--dir", directory, "--html", report, "--run", failed["run_id"])
        self.assertEqual(result.returncode, 0, result.stderr)
        raw = dump_dom(report.as_uri(), self.profile(), NO_NETWORK)
        dom = Dom(raw)
        failures = dom.find("tr", "failure")
        self.assertEqual(len(failures), 1)
        self.assertIn(HOSTILE_MESSAGE, Dom.text(failures[0]))
        self.assertIn(HOSTILE_STAGE, Dom.text(failures[0]))
        self.assertEqual([b["attrs"]["data-status"] for b in dom.find("rect", "timeline-bar")],
                         ["failed"])
        self.assert_harmless(dom, raw)
        result = ctl("report", "--dir", directory, "--html", self.tmp / "x.html", "--run", "nope")
        self.assertEqual(result.returncode, EXIT_ERROR)
        self.assertIn(b"no run 'nope'", result.stderr)
        self.assertFalse((self.tmp / "x.html").exists())
        result = ctl("report", "--dir", directory, "--pipeline", "nope", "--html", self.tmp / "y.html")
        self.assertEqual(result.returncode, EXIT_ERROR)
        self.assertFalse((self.tmp / "y.html").exists())
        result = ctl("report", "--dir", self.tmp / "missing", "--html", self.tmp / "z.html")
        self.assertEqual(result.returncode, EXIT_NOT_FOUND)
        self.assertFalse((self.tmp / "missing").exists())
        result = ctl("report", "--dir", directory)
        self.assertEqual(result.returncode, EXIT_USAGE)


class ErrorTest(DashboardTestCase):
    def test_port_in_use(self):
        directory = self.copy()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            result = ctl("serve", "--dir", directory, "--listen", f"127.0.0.1:{port}")
        self.assertEqual(result.returncode, EXIT_LISTEN, result.stderr)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}".encode(), result.stderr)
        self.assertIn(b"in use", result.stderr)
        self.assertEqual(result.stdout, b"")
        # a second server on the port of a running one fails the same way
        server = Server(self, directory)
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        result = ctl("serve", "--dir", directory, "--listen", f"127.0.0.1:{port}")
        self.assertEqual(result.returncode, EXIT_LISTEN, result.stderr)
        self.assertEqual(server.get("/api/pipelines")[0], 200)

    def test_database_errors_as_other_subcommands(self):
        directory = self.copy()
        not_a_db = self.tmp / "text"
        not_a_db.mkdir()
        (not_a_db / "checkpoints.db").write_text("not a database\n")
        for location, code in ((self.tmp / "missing", EXIT_NOT_FOUND), (not_a_db, EXIT_NOT_A_DB)):
            with self.subTest(location=location):
                expected = ctl("status", "--dir", location)
                for args in (["serve", "--listen", f"127.0.0.1:{free_port()}"],
                             ["report", "--html", self.tmp / "r.html"]):
                    result = ctl(*args, "--dir", location)
                    self.assertEqual(result.returncode, code, result.stderr)
                    self.assertEqual(result.returncode, expected.returncode)
                    self.assertEqual(result.stderr, expected.stderr)
        self.assertFalse((self.tmp / "missing").exists())
        for listen in ("127.0.0.1", "127.0.0.1:70000", "::1:80", ":80", "host:port"):
            with self.subTest(listen=listen):
                result = ctl("serve", "--dir", directory, "--listen", listen)
                self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)


def take_screenshots(out_directory):
    """The README's screenshots: the pipeline page and a run timeline of the example."""
    out = Path(out_directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-screenshots-") as tmp:
        directory = Path(tmp) / "checkpoints"
        build_database(directory)
        run_checked(EXAMPLE, "--dir", directory, "--reset")  # a last run of all three stages

        class Holder(unittest.TestCase):
            def runTest(self):
                pass
        holder = Holder()
        server = Server(holder, directory)
        runs = ctl_json("runs", "--dir", directory)
        screenshot(server.url + "pipeline?pipeline=default", out / "pipeline.png", Path(tmp) / "p1")
        screenshot(server.url + "run?" + urllib.parse.urlencode(
            {"pipeline": "default", "run": runs[-1]["run_id"]}), out / "run.png", Path(tmp) / "p2")
        server.stop()
        holder.doCleanups()
    for name in ("pipeline.png", "run.png"):
        print(out / name, png_size(out / name))


class ScreenshotTest(DashboardTestCase):
    def test_screenshots_of_the_example(self):
        take_screenshots(self.tmp / "shots")
        for name in ("pipeline.png", "run.png"):
            self.assertEqual(png_size(self.tmp / "shots" / name), (1280, 900))
            self.assertGreater((self.tmp / "shots" / name).stat().st_size, 10_000)


def load_tests(loader, tests, pattern):
    return shard("dashboard_test", tests)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--screenshots":
        take_screenshots(sys.argv[2])
        return 0
    program = unittest.main(exit=False)
    result = program.result
    if result.testsRun == 0:
        print("dashboard_test: ran no test", file=sys.stderr)
        return 1
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
