#!/usr/bin/env bash
# Builds checkpoint and runs every test (installs missing Debian packages first). This is
# what CI runs (.ci/run), in four phases:
#   1. the CTest suite, plain build (build/), at the full counts of the slow tests;
#   2. the CTest suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/),
#      the slow tests at CHECKPOINT_TEST_SCALE=25 (a quarter of their kills, mutations,
#      power cuts and fault points);
#   3. the CTest suite under ThreadSanitizer (build-tsan/), the slow tests at
#      CHECKPOINT_TEST_SCALE=10 (they are single-threaded or multi-process: what TSan
#      checks is in the threaded tests, which always run in full);
#   4. the libFuzzer targets, 30 s each (tools/fuzz.sh, build-fuzz/).
# Each CTest phase runs the conformance suite on both backends: one throwaway PostgreSQL
# server (tools/pg_server.sh: a private port and socket directory, fsync on) is started
# before the first phase and stopped when the script ends, whatever happens (the EXIT
# trap); the tests make a fresh database on it per test case (tests/support/pg_database.hpp).
# Any test failure, sanitizer report or fuzz crash fails the run. The phase times are
# printed at the end (about 20 minutes in all on two cores, builds included, before the
# PostgreSQL half of the conformance suite). That half, `ctest -L postgres` (88 tests), took
# alone on two cores: plain 50 s (99 s of test time), ASan at scale 25 32 s (63 s), TSan at
# scale 10 25 s (48 s); about a minute per phase in all, two to three times that on a
# machine busy with other builds.
#   tools/test.sh           all four (what CI runs)
#   tools/test.sh --quick   the plain suite only (1.), a few minutes: while developing
#   tools/test.sh --long    all four, the sanitizer suites at full counts and fuzzing
#                           10 minutes per target (an hour or more)
# (--all, which used to add 2-4 to the plain suite, is the same as no argument.)
# Environment:
#   CHECKPOINT_TEST_SCALE     the scale of the plain suite's slow tests, a percentage of
#                             their full counts (default 100; 1000 runs them ten times longer;
#                             see tests/support/scale.hpp). The sanitizer phases set their own.
#   CHECKPOINT_FUZZ_SECONDS   fuzzing time per target (default 30; --long: 600).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=ci
case "${1:-}" in
    "" | --all) ;;
    --quick) mode=quick ;;
    --long) mode=long ;;
    *)
        echo "usage: tools/test.sh [--quick | --long]" >&2
        exit 2
        ;;
esac
if [[ $mode == long ]]; then
    asan_scale=100 tsan_scale=100 fuzz_seconds=${CHECKPOINT_FUZZ_SECONDS:-600}
else
    asan_scale=25 tsan_scale=10 fuzz_seconds=${CHECKPOINT_FUZZ_SECONDS:-30}
fi

timings=()
phase=""
phase_start=0
run_start=$SECONDS
begin() {  # description
    echo "=== checkpoint: $1 ($(date -u +%H:%M:%S), load:$(cut -d' ' -f1-3 /proc/loadavg))"
    phase=$1
    phase_start=$SECONDS
}
end() {  # short name
    timings+=("$(printf '%-34s %4ds' "$1" $((SECONDS - phase_start)))")
    phase=""
}
pg_dir=""
report() {
    local status=$?
    if [[ -n $pg_dir ]]; then
        tools/pg_server.sh stop "$pg_dir" || true
        pg_dir=""
    fi
    [[ -n $phase ]] && end "$phase: stopped"
    echo "=== checkpoint: phase times (${mode}; $(nproc) cores; load at the end:$(cut -d' ' -f1-3 /proc/loadavg))"
    ((${#timings[@]})) && printf '  %s\n' "${timings[@]}"
    printf '  %-34s %4ds\n' "total" $((SECONDS - run_start))
    ((status == 0)) || echo "=== checkpoint: FAILED (exit status $status)" >&2
}
trap report EXIT
# A signal ends the script through exit, so that the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

# The lines in which the slow tests said at which scale they ran, from the JUnit report of
# the run (with --output-junit, CTest's LastTest.log keeps no test output).
show_scales() {  # build directory
    local junit="$1/ctest-junit.xml"
    [[ -f $junit ]] || return 0
    echo "--- the slow tests ran at:"
    python3 - "$junit" <<'PYTHON'
import sys
import xml.etree.ElementTree as ElementTree
for case in ElementTree.parse(sys.argv[1]).getroot().iter("testcase"):
    backend = " (on PostgreSQL)" if "[postgres]" in case.get("name", "") else ""
    for out in case.iter("system-out"):
        for line in (out.text or "").splitlines():
            if "CHECKPOINT_TEST_SCALE=" in line:
                print("  " + line + backend)
PYTHON
}

# Runs the CTest suite of a build directory, then checks that it ran every test case
# (tools/check_test_runs.py: each Catch2 test case exactly once and with an assertion,
# each Python test file in full, each shell test to its end) and prints the counts. The
# output of passing tests is kept (64 KiB, cut in the middle) for that check.
run_ctest() {  # build directory
    local junit="$PWD/$1/ctest-junit.xml"
    rm -f "$junit"
    (
        cd "$1"
        ctest --output-on-failure -j"$(nproc)" --timeout 900 --output-junit "$junit" \
            --test-output-size-passed 65536 --test-output-truncation middle
    )
    python3 tools/check_test_runs.py "$1" "$junit"
}

begin "plain build and tests (build/)"
tools/build.sh
# The PostgreSQL server of the [postgres] tests, for every CTest phase.
pg_env=$(tools/pg_server.sh start)
eval "$pg_env"
pg_dir=$CHECKPOINT_TEST_PG_DIR
(
    export CHECKPOINT_TEST_SCALE=${CHECKPOINT_TEST_SCALE:-100}
    run_ctest build
)
show_scales build
end "plain"
[[ $mode == quick ]] && exit 0

# One sanitized build directory and CTest run. Every report also goes to a file in
# <build>/sanitizer-logs: a report fails the run even when a test expected its child
# process to fail anyway.
sanitized_suite() {  # name, CHECKPOINT_SANITIZE value, CHECKPOINT_TEST_SCALE value, -O level
    local build="build-$1"
    local logs="$PWD/$build/sanitizer-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    # -g1: line tables only (reports still name function, file and line). Compiling with
    # the sanitizers at the default -O2 -g takes two to four times longer, for a suite that
    # spends its time in SQLite (not instrumented) and system calls, not in our code.
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$4 -g1 -DNDEBUG" -DCHECKPOINT_SANITIZE="$2" >/dev/null
    (
        # The same options while building: CTest's test discovery runs the test programs.
        export ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:check_initialization_order=1:strict_init_order=1:log_path=$logs/asan"
        export UBSAN_OPTIONS="halt_on_error=1:exitcode=86:print_stacktrace=1:report_error_type=1:log_path=$logs/ubsan"
        export TSAN_OPTIONS="halt_on_error=1:exitcode=86:second_deadlock_stack=1:log_path=$logs/tsan"
        # Leaks inside third-party libraries that checkpoint cannot free (each one explained).
        export LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp:print_suppressions=0"
        export CHECKPOINT_TEST_SCALE="$3"
        # A program linked against the sanitized libcheckpoint.so (tests/package_test.sh)
        # must itself be linked with the sanitizer: CXX is the compiler with its flags.
        export CXX="$PWD/$build/sanitized-c++"
        cmake --build "$build" -j"$(nproc)"
        run_ctest "$build"
    ) || {
        show_reports "$logs" || true
        return 1
    }
    show_scales "$build"
    show_reports "$logs"
}

show_reports() {  # logs directory; fails when it holds a report
    local reports
    reports=$(find "$1" -type f | sort)
    [[ -z $reports ]] && return 0
    local file
    for file in $reports; do
        echo "--- sanitizer report $file" >&2
        cat "$file" >&2
    done
    echo "checkpoint: $(wc -l <<<"$reports") sanitizer report(s) in $1" >&2
    return 1
}

# -O0 for ASan+UBSan: it compiles in 40% less time than -O1 and the suite runs no slower
# (measured); TSan's suite runs 10% slower at -O0, which eats what its build saves.
begin "AddressSanitizer + UBSan (build-asan/, scale ${asan_scale}%)"
sanitized_suite asan address,undefined "$asan_scale" -O0
end "address,undefined (scale ${asan_scale}%)"

begin "ThreadSanitizer (build-tsan/, scale ${tsan_scale}%)"
sanitized_suite tsan thread "$tsan_scale" -O1
end "thread (scale ${tsan_scale}%)"

begin "fuzzing (build-fuzz/, ${fuzz_seconds} s per target)"
tools/fuzz.sh "$fuzz_seconds"
end "fuzz (${fuzz_seconds} s per target)"
