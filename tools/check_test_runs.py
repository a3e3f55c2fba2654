#!/usr/bin/env python3
"""Checks that a CTest run ran every test case, and prints how many ran per program.

    tools/check_test_runs.py BUILD_DIR JUNIT_XML

BUILD_DIR is a configured build directory; JUNIT_XML the report of a whole `ctest` run in
it (`ctest --output-junit FILE`). Fails (exit 1, naming each problem) when:
  - a Catch2 test case has no CTest entry, or an entry names no test case of its program
    (catch_discover_tests splits names at ';': such a name becomes two entries that each
    ran nothing);
  - a conformance program (its SQLite entries have the CTest label "conformance":
    tests/CMakeLists.txt registers it a second time with CHECKPOINT_TEST_BACKEND=postgres
    and the label "postgres") has no PostgreSQL entries, lacks one
    for a test case not tagged [sqlite] (`PROGRAM '~[sqlite]' --list-test-names-only`), or
    has one for a test case that is (each backend's set must be exactly its own);
  - an entry did not run, or did not pass;
  - a Catch2 entry ran other than exactly one test case, or one with no assertion (Catch2
    2.13 takes a single -w option, and CMake passes -w NoTests);
  - a Python test (unittest or pytest) ran no test, or the parts of a sharded unittest
    file do not add up to the whole file;
  - a shell test did not reach its closing 'PASS:' line.
"""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict

CATCH_SUMMARY = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
UNITTEST_PART = re.compile(r"part (\d+) of (\d+): (\d+) of (\d+) tests")
PYTEST_PASSED = re.compile(r"=+ .*?(\d+) passed.* in [\d.]+s", re.MULTILINE)


def catch_spec(name):
    """The test spec catch_discover_tests (CatchAddTests.cmake) passes for a test case."""
    for char in ",[]":
        name = name.replace(char, "\\" + char)
    return name


def ctest_tests(build_dir):
    listing = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build_dir, check=True,
                             capture_output=True, text=True).stdout
    return json.loads(listing)["tests"]


def junit_results(path):
    """name -> (status, output) for each test case of the report."""
    results = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        status = "failed" if failed else case.get("status", "")
        output = "".join(part.text or "" for part in case.iter("system-out"))
        results[case.get("name")] = (status, output)
    return results


def backend_of(test):
    """'postgres' for an entry run with CHECKPOINT_TEST_BACKEND=postgres, else 'sqlite'."""
    for prop in test.get("properties", []):
        if prop.get("name") == "ENVIRONMENT":
            values = prop.get("value", [])
            if isinstance(values, str):
                values = [values]
            if "CHECKPOINT_TEST_BACKEND=postgres" in values:
                return "postgres"
    return "sqlite"


def listed_cases(program, *spec):
    listed = subprocess.run([program, *spec, "--list-test-names-only"], capture_output=True,
                            text=True)
    if listed.returncode < 0 or not listed.stdout.strip():
        return None
    return [line for line in listed.stdout.splitlines() if line.strip()]


def labels_of(test):
    for prop in test.get("properties", []):
        if prop.get("name") == "LABELS":
            values = prop.get("value", [])
            return [values] if isinstance(values, str) else list(values)
    return []


def kind_of(command):
    program = os.path.basename(command[0])
    if program == "bash":
        return "shell"
    if any(arg.endswith(".py") for arg in command) or "pytest" in command:
        return "python"
    if len(command) >= 2 and program.endswith("_test"):
        return "catch2"
    return "other"


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build_dir, junit = sys.argv[1], sys.argv[2]
    results = junit_results(junit)
    problems = []
    counts = []  # (program, what ran)
    # (program path, backend) -> [(entry name, spec)]
    catch_entries = defaultdict(list)
    python_parts = defaultdict(list)  # script -> [(part, parts, ran, total)]
    conformance = set()  # the programs of the conformance suite (run on both backends)

    for test in ctest_tests(build_dir):
        name, command = test["name"], test.get("command", [])
        if not command:
            problems.append(f"{name}: has no command")
            continue
        status, output = results.get(name, ("missing", ""))
        kind = kind_of(command)
        if kind == "catch2":  # an entry, whether it passed or not
            catch_entries[(command[0], backend_of(test))].append((name, command[1]))
            if "conformance" in labels_of(test):
                conformance.add(command[0])
        if status != "run":
            problems.append(f"{name}: did not pass (status: {status or 'not run'})")
            continue
        if kind == "catch2":
            summary = CATCH_SUMMARY.search(output)
            if "assertions: - none -" in output:
                problems.append(f"{name}: its test case checked nothing (no assertion)")
            elif not summary:
                problems.append(f"{name}: no Catch2 summary in its output")
            elif int(summary[2]) != 1:
                problems.append(f"{name}: ran {summary[2]} test cases instead of 1")
            elif int(summary[1]) == 0:
                problems.append(f"{name}: its test case checked nothing (0 assertions)")
        elif kind == "python":
            script = next((arg for arg in command if arg.endswith(".py")), name)
            ran = UNITTEST_RAN.search(output) or PYTEST_PASSED.search(output)
            if not ran or int(ran[1]) == 0:
                problems.append(f"{name}: ran no test")
                continue
            part = UNITTEST_PART.search(output)
            if part:
                python_parts[script].append(tuple(int(x) for x in part.groups()))
                if int(part[3]) != int(ran[1]):
                    problems.append(f"{name}: part has {part[3]} tests but {ran[1]} ran")
            else:
                counts.append((name, f"{ran[1]} tests"))
        elif kind == "shell":
            if not re.search(r"^PASS: ", output, re.MULTILINE):
                problems.append(f"{name}: did not reach its closing 'PASS:' line")
            else:
                counts.append((name, "passed"))
        else:
            counts.append((name, "passed"))

    for program in sorted(conformance):
        if (program, "postgres") not in catch_entries:
            problems.append(f"{os.path.basename(program)}: a conformance program with no "
                            "PostgreSQL entries (CHECKPOINT_TEST_BACKEND=postgres)")
    for (program, backend), entries in sorted(catch_entries.items()):
        short = os.path.basename(program)
        # The SQLite entries: every test case. The PostgreSQL ones: exactly those not tagged
        # [sqlite] (what catch_discover_tests' TEST_SPEC "~[sqlite]" listed).
        spec = ["~[sqlite]"] if backend == "postgres" else []
        cases = listed_cases(program, *spec)
        if cases is None:
            problems.append(f"{short}: --list-test-names-only {' '.join(spec)} listed nothing")
            cases = []
        expected = {catch_spec(case): case for case in cases}
        specs = [spec for _, spec in entries]
        label = f"{short} [{backend}]" if program in conformance else short
        for spec, case in expected.items():
            if specs.count(spec) != 1:
                problems.append(f"{label}: test case '{case}' has {specs.count(spec)} CTest "
                                "entries instead of 1")
        for entry, spec in entries:
            if spec not in expected:
                problems.append(f"{entry}: names no test case of {short} that runs on {backend}")
        if backend == "postgres":
            everything = listed_cases(program) or []
            counts.append((label, f"{len(entries)} of {len(cases)} test cases "
                                  f"({len(everything) - len(cases)} SQLite-only)"))
        else:
            counts.append((label, f"{len(entries)} of {len(cases)} test cases"))

    for script, parts in sorted(python_parts.items()):
        totals = {total for _, _, _, total in parts}
        ran = sum(part_ran for _, _, part_ran, _ in parts)
        short = os.path.basename(script)
        if len(totals) != 1 or len(parts) != parts[0][1] or ran != parts[0][3]:
            problems.append(f"{short}: its parts ran {ran} tests in {len(parts)} parts, "
                            f"not the file's {sorted(totals)} in {parts[0][1]}")
        counts.append((short, f"{ran} of {max(totals)} tests in {len(parts)} parts"))

    print(f"--- test cases run ({build_dir}):")
    width = max((len(program) for program, _ in counts), default=0)
    for program, what in counts:
        print(f"  {program:<{width}}  {what}")
    if problems:
        print(f"check_test_runs: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
