#!/usr/bin/env bash
# Builds checkpoint and runs every test (installs missing Debian packages first):
#   1. the CTest suite, plain build (build/);
#   2. the CTest suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/);
#   3. the CTest suite under ThreadSanitizer (build-tsan/);
#   4. the libFuzzer targets, 30 s each (tools/fuzz.sh, build-fuzz/).
# Any test failure, sanitizer report or fuzz crash fails the run.
#   tools/test.sh           the plain suite (what CI runs)
#   tools/test.sh --all     all four (sanitizers and fuzzing: long, see the README)
# CHECKPOINT_FUZZ_SECONDS changes the fuzzing time per target (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=1
case "${1:-}" in
    "") ;;
    --all) quick=0 ;;
    *)
        echo "usage: tools/test.sh [--all]" >&2
        exit 2
        ;;
esac

timings=()
phase_start=0
begin() {
    echo "=== checkpoint: $1"
    phase_start=$SECONDS
}
end() {
    timings+=("$(printf '%-28s %4ds' "$1" $((SECONDS - phase_start)))")
}
report() {
    echo "=== checkpoint: phase times"
    printf '  %s\n' "${timings[@]}"
}
trap report EXIT

begin "plain build and tests (build/)"
tools/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 900)
end "plain"
((quick)) && exit 0

# One sanitized build directory and CTest run. Every report also goes to a file in
# <build>/sanitizer-logs: a report fails the run even when a test expected its child
# process to fail anyway.
sanitized_suite() {  # name, CHECKPOINT_SANITIZE value
    local build="build-$1"
    local logs="$PWD/$build/sanitizer-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHECKPOINT_SANITIZE="$2" >/dev/null
    (
        # The same options while building: CTest's test discovery runs the test programs.
        export ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:check_initialization_order=1:strict_init_order=1:log_path=$logs/asan"
        export UBSAN_OPTIONS="halt_on_error=1:exitcode=86:print_stacktrace=1:report_error_type=1:log_path=$logs/ubsan"
        export TSAN_OPTIONS="halt_on_error=1:exitcode=86:second_deadlock_stack=1:log_path=$logs/tsan"
        # A program linked against the sanitized libcheckpoint.so (tests/package_test.sh)
        # must itself be linked with the sanitizer: CXX is the compiler with its flags.
        export CXX="$PWD/$build/sanitized-c++"
        cmake --build "$build" -j"$(nproc)"
        cd "$build"
        ctest --output-on-failure -j"$(nproc)" --timeout 900
    ) || {
        show_reports "$logs"
        return 1
    }
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

begin "AddressSanitizer + UBSan (build-asan/)"
sanitized_suite asan address,undefined
end "address,undefined"

begin "ThreadSanitizer (build-tsan/)"
sanitized_suite tsan thread
end "thread"

begin "fuzzing (build-fuzz/)"
tools/fuzz.sh "${CHECKPOINT_FUZZ_SECONDS:-30}"
end "fuzz"
