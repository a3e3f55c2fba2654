#!/usr/bin/env bash
# The example pipeline, interrupted then resumed, checked through its files, its output and
# the database (with the sqlite3 shell):
#   1. --crash-after data_preprocessing: exit 3, no model.txt, the first two stages completed;
#   2. a plain rerun: only model_training runs, from the files the first run left; the
#      crashed run now reads 'died', this one 'finished';
#   3. a third run skips every stage and writes nothing;
#   4. --reset runs every stage again; bad flags exit 2.
# Env (set by tests/CMakeLists.txt): CHECKPOINT_BINARY_DIR, SQLITE3.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

: "${CHECKPOINT_BINARY_DIR:?set CHECKPOINT_BINARY_DIR to the build directory}"
SQLITE3=${SQLITE3:-sqlite3}
command -v "$SQLITE3" >/dev/null || fail "the sqlite3 shell ($SQLITE3) is not installed"
example="$CHECKPOINT_BINARY_DIR/tools/example_pipeline"
[[ -x $example ]] || fail "$example is missing: build the example_pipeline target first"

work=$(mktemp -d "${TMPDIR:-/tmp}/checkpoint-example-XXXXXX")
trap 'rm -rf "$work"' EXIT
dir="$work/checkpoints"
db="$dir/checkpoints.db"
data="$dir/data"

sql() { "$SQLITE3" -batch -noheader "$db" "$1"; }

# Runs the example with "$@"; sets $rc and $out (stdout and stderr together).
run() {
    rc=0
    out=$("$example" --dir "$dir" "$@" 2>&1) || rc=$?
    printf '%s\n' "--- example_pipeline ${*:-(no flags)}: exit $rc" "$out"
}

expect_eq() {  # what, expected, actual
    [[ $2 == "$3" ]] || fail "$1: expected '$2', got '$3'"
}

expect_output() {  # a line the output must contain
    grep -qxF -- "$1" <<<"$out" || fail "the output lacks the line '$1'"
}

reject_output() {  # a text the output must not contain
    if grep -qF -- "$1" <<<"$out"; then fail "the output should not contain '$1'"; fi
}

# ---- 1. Interrupted after data_preprocessing ----
run --crash-after data_preprocessing
expect_eq "exit code of the crashed run" 3 "$rc"
expect_output "crashing after data_preprocessing (simulated kill)"
reject_output "model_training:"
[[ -s $data/raw.csv ]] || fail "data_ingestion did not write $data/raw.csv"
[[ -s $data/clean.csv ]] || fail "data_preprocessing did not write $data/clean.csv"
[[ ! -e $data/model.txt ]] || fail "model.txt exists although the run crashed before model_training"
expect_eq "raw.csv row count (header + 1000 rows)" 1001 "$(wc -l <"$data/raw.csv")"
expect_eq "completed stages after the crash" "data_ingestion|data_preprocessing" \
    "$(sql "SELECT group_concat(stage, '|') FROM (SELECT stage FROM current_state
            WHERE status = 'completed' ORDER BY stage)")"
expect_eq "rows of model_training after the crash" 0 \
    "$(sql "SELECT count(*) FROM history WHERE stage = 'model_training'")"
# The killed run never closed, and no writer has looked at it since: it still reads running.
expect_eq "the crashed run (outcome, ended_at)" "running|" "$(sql "SELECT outcome, ended_at FROM runs")"

# Files a resumed run must read, not rewrite (a rewrite replaces the inode: rename).
raw_before=$(stat -c '%i %Y' "$data/raw.csv")
clean_before=$(stat -c '%i %Y' "$data/clean.csv")
raw_sum=$(cksum <"$data/raw.csv")

# ---- 2. Resumed: only model_training runs ----
run
expect_eq "exit code of the resumed run" 0 "$rc"
expect_output "skipping data_ingestion (completed)"
expect_output "skipping data_preprocessing (completed)"
reject_output "skipping model_training"
reject_output "data_ingestion: wrote"
reject_output "data_preprocessing: kept"
grep -qE '^model_training: fitted y = 2\.[45][0-9]* x \+ (0\.9|1\.0)[0-9]* on [0-9]+ rows' <<<"$out" ||
    fail "model_training did not report a fit close to y = 2.5 x + 1"
expect_output "pipeline complete"
[[ -s $data/model.txt ]] || fail "the resumed run did not write $data/model.txt"
grep -q '^slope 2\.[45]' "$data/model.txt" || fail "model.txt holds no slope near 2.5: $(cat "$data/model.txt")"
expect_eq "raw.csv inode and mtime (not rewritten)" "$raw_before" "$(stat -c '%i %Y' "$data/raw.csv")"
expect_eq "clean.csv inode and mtime (not rewritten)" "$clean_before" "$(stat -c '%i %Y' "$data/clean.csv")"
expect_eq "raw.csv content" "$raw_sum" "$(cksum <"$data/raw.csv")"
leftovers=$(find "$data" -name '*.tmp')
[[ -z $leftovers ]] || fail "temporary files were left behind: $leftovers"

expect_eq "history after the resume" \
    "data_ingestion started|data_ingestion completed|data_preprocessing started|data_preprocessing completed|model_training started|model_training completed" \
    "$(sql "SELECT group_concat(stage || ' ' || status, '|') FROM (SELECT * FROM history ORDER BY id)")"
expect_eq "each stage ran in exactly one run" 1 \
    "$(sql "SELECT count(DISTINCT run_id) FROM history WHERE stage <> 'model_training'")"
expect_eq "model_training ran in another run" 1 \
    "$(sql "SELECT count(*) FROM history h WHERE stage = 'model_training' AND status = 'completed'
            AND run_id <> (SELECT run_id FROM history WHERE stage = 'data_ingestion' LIMIT 1)")"
# The crashed process is gone: the next writer on this host marked its run died.
expect_eq "run outcomes (oldest first)" "died|finished" \
    "$(sql "SELECT group_concat(outcome, '|') FROM (SELECT outcome FROM runs ORDER BY started_at)")"
expect_eq "history's run_outcome of the crashed run's rows" "died" \
    "$(sql "SELECT group_concat(DISTINCT run_outcome) FROM history WHERE stage = 'data_ingestion'")"
expect_eq "current state after the resume" "completed|completed|completed" \
    "$(sql "SELECT group_concat(status, '|') FROM (SELECT status FROM current_state ORDER BY stage)")"

# ---- 3. Nothing left to do: every stage skipped, nothing written ----
rows_before=$(sql "SELECT count(*) FROM checkpoints")
model_before=$(stat -c '%i %Y' "$data/model.txt")
run
expect_eq "exit code of the third run" 0 "$rc"
expect_output "skipping data_ingestion (completed)"
expect_output "skipping data_preprocessing (completed)"
expect_output "skipping model_training (completed)"
reject_output "model_training: fitted"
expect_eq "history rows after a run that skipped everything" "$rows_before" \
    "$(sql "SELECT count(*) FROM checkpoints")"
expect_eq "runs after a run that only read" 2 "$(sql "SELECT count(*) FROM runs")"
expect_eq "model.txt inode and mtime (not rewritten)" "$model_before" "$(stat -c '%i %Y' "$data/model.txt")"

# ---- 4. --reset runs everything again; bad flags are refused ----
run --reset
expect_eq "exit code of --reset" 0 "$rc"
reject_output "skipping"
for stage in data_ingestion data_preprocessing model_training; do
    grep -q "^$stage: " <<<"$out" || fail "--reset did not run $stage"
    expect_eq "completed version of $stage after --reset" 2 \
        "$(sql "SELECT version FROM current_state WHERE stage = '$stage' AND status = 'completed'")"
done
expect_eq "pipeline-wide clears in the history" 1 \
    "$(sql "SELECT count(*) FROM history WHERE stage IS NULL AND status = 'cleared'")"
expect_eq "raw.csv content after --reset (deterministic)" "$raw_sum" "$(cksum <"$data/raw.csv")"

cwd="$work/cwd"  # where a wrongly accepted command line would create ./checkpoints
mkdir "$cwd"
for args in "--bogus" "--crash-after" "--crash-after no_such_stage" "--dir"; do
    rc=0
    # shellcheck disable=SC2086  # split the flags on purpose
    out=$(cd "$cwd" && "$example" $args 2>&1) || rc=$?
    expect_eq "exit code of 'example_pipeline $args'" 2 "$rc"
    grep -q '^usage: example_pipeline' <<<"$out" || fail "'example_pipeline $args' printed no usage"
done
rc=0
out=$(cd "$cwd" && "$example" --help 2>&1) || rc=$?
expect_eq "exit code of --help" 0 "$rc"
grep -q -- '--crash-after STAGE' <<<"$out" || fail "--help does not describe --crash-after"
[[ ! -e $cwd/checkpoints ]] || fail "a refused command line created ./checkpoints"

# A checkpoint::Error (here: the directory cannot be created) exits 1 with "error: ...".
rc=0
out=$("$example" --dir "$data/model.txt/sub" 2>&1) || rc=$?
expect_eq "exit code with an unusable --dir" 1 "$rc"
grep -q '^error: .*model.txt/sub' <<<"$out" || fail "no 'error: <what>' line for an unusable --dir: $out"

echo "PASS: example pipeline crashes, resumes from its files, and skips completed stages"
