#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang++-14 (-fsanitize=fuzzer,address,
# undefined, in build-fuzz/) and runs each for SECONDS (default 30), as many at once as
# there are cores. A crash, a sanitizer report, a timeout or an out-of-memory fails the run;
# the input that caused it is left in build-fuzz/artifacts/ (replay:
# build-fuzz/tests/fuzz/fuzz_<target> <file>).
#   tools/fuzz.sh          30 s per target (what tools/test.sh runs)
#   tools/fuzz.sh 3600     a long run: an hour per target
# New inputs found are kept in build-fuzz/corpus/<target>/ (seeded from
# tests/fuzz/corpus/<target>/), so successive runs continue where the last one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || {
    echo "usage: tools/fuzz.sh [SECONDS]" >&2
    exit 2
}
tools/deps.sh
command -v clang++-14 >/dev/null || {
    echo "checkpoint: clang++-14 is missing (apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 1
}
build=build-fuzz
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCHECKPOINT_FUZZ=ON -DCHECKPOINT_BUILD_TESTS=OFF -DCHECKPOINT_BUILD_TOOLS=OFF \
    -DCHECKPOINT_BUILD_PYTHON=OFF \
    -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:report_error_type=1
mkdir -p "$build/artifacts"

# One target, in the background: its log in build-fuzz/fuzz_<target>.log, its exit status
# in build-fuzz/fuzz_<target>.status.
fuzz_target() {  # target, seeds directory
    local corpus="$build/corpus/$1"
    mkdir -p "$corpus"
    local status=0
    "$build/tests/fuzz/fuzz_$1" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$1-" "$corpus" "$2" \
        >"$build/fuzz_$1.log" 2>&1 || status=$?
    echo "$status" >"$build/fuzz_$1.status"
}

targets=()
running=0
for seeds in tests/fuzz/corpus/*/; do
    target=$(basename "$seeds")
    [[ -x $build/tests/fuzz/fuzz_$target ]] || {
        echo "checkpoint: tests/fuzz/corpus/$target has no target $build/tests/fuzz/fuzz_$target" >&2
        exit 1
    }
    targets+=("$target")
    rm -f "$build/fuzz_$target.status"
    if ((running >= $(nproc))); then
        wait -n || true  # one target ended (its status is in its file)
        running=$((running - 1))
    fi
    echo "--- fuzz_$target for ${seconds}s"
    fuzz_target "$target" "$seeds" &
    running=$((running + 1))
done
wait

status=0
for target in "${targets[@]}"; do
    log="$build/fuzz_$target.log"
    code=$(cat "$build/fuzz_$target.status" 2>/dev/null || echo "none")
    if [[ $code == 0 ]]; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz_$target: ok, ${runs:-?} executions in ${seconds}s," \
            "corpus $(find "$build/corpus/$target" -type f | wc -l) inputs"
    else
        status=1
        tail -n 60 "$log" >&2
        echo "fuzz_$target: FAILED (exit status $code; full log: $log;" \
            "inputs: $build/artifacts/${target}-*)" >&2
    fi
done
((${#targets[@]} > 0)) || {
    echo "checkpoint: no fuzz target found in tests/fuzz/corpus/" >&2
    exit 1
}
exit "$status"
