#!/usr/bin/env bash
# The example pipeline, interrupted then resumed, checked through its output and the
# database (with the sqlite3 shell):
#   1. --crash-after data_preprocessing: exit 3, the first two stages completed, their
#      outputs, metadata and inputs stored;
#   2. a plain rerun: only model_training runs, from the output stored by the first run;
#      the crashed run now reads 'died', this one 'finished';
#   3. a third run skips every stage and writes nothing;
#   4. --outlier-mads 2 (a config change) reruns exactly data_preprocessing and
#      model_training;
#   5. --reset runs every stage again; bad flags exit 2.
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
expect_output "running data_ingestion: never ran"
expect_output "crashing after data_preprocessing (simulated kill)"
reject_output "model_training:"
expect_eq "completed stages after the crash" "data_ingestion|data_preprocessing" \
    "$(sql "SELECT group_concat(stage, '|') FROM (SELECT stage FROM current_state
            WHERE status = 'completed' ORDER BY stage)")"
expect_eq "rows of model_training after the crash" 0 \
    "$(sql "SELECT count(*) FROM history WHERE stage = 'model_training'")"
# The killed run never closed, and no writer has looked at it since: it still reads running.
expect_eq "the crashed run (outcome, ended_at)" "running|" "$(sql "SELECT outcome, ended_at FROM runs")"
# The outputs are in the database (small: stored inline), with their metadata and inputs.
expect_eq "data_ingestion's stored output (lines, in database)" "1001|1" \
    "$(sql "SELECT length(CAST(d.data AS TEXT)) - length(replace(CAST(d.data AS TEXT), char(10), '')),
                   c.output_in_database
            FROM checkpoints c JOIN output_data d ON d.checkpoint_id = c.id
            WHERE c.stage = 'data_ingestion' AND c.status = 'completed'")"
expect_eq "data_ingestion's metadata" "1000|23" \
    "$(sql "SELECT json_extract(metadata, '$.samples'), json_extract(metadata, '$.corrupted')
            FROM checkpoints WHERE stage = 'data_ingestion' AND status = 'completed'")"
expect_eq "data_preprocessing's recorded input" '[{"stage":"data_ingestion","version":1,"id":2}]' \
    "$(sql "SELECT inputs FROM history WHERE stage = 'data_preprocessing' AND status = 'completed'")"
ingestion_sha=$(sql "SELECT output_sha256 FROM checkpoints WHERE stage = 'data_ingestion' AND status = 'completed'")
[[ $ingestion_sha =~ ^[0-9a-f]{64}$ ]] || fail "data_ingestion's output has no SHA-256: '$ingestion_sha'"

# ---- 2. Resumed: only model_training runs, from the stored output ----
run
expect_eq "exit code of the resumed run" 0 "$rc"
expect_output "skipping data_ingestion (completed, up to date)"
expect_output "skipping data_preprocessing (completed, up to date)"
expect_output "running model_training: never ran"
reject_output "data_ingestion: produced"
reject_output "data_preprocessing: kept"
grep -qE '^model_training: fitted y = 2\.[45][0-9]* x \+ (0\.9|1\.0)[0-9]* on 977 rows$' <<<"$out" ||
    fail "model_training did not report a fit close to y = 2.5 x + 1 on the 977 stored rows"
grep -qE '^pipeline complete: model_training version 1, slope 2\.[45]' <<<"$out" ||
    fail "the run did not finish with the stored model"
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
expect_eq "model_training's metadata (rows)" 977 \
    "$(sql "SELECT json_extract(metadata, '$.rows') FROM checkpoints WHERE stage = 'model_training'
            AND status = 'completed'")"

# ---- 3. Nothing left to do: every stage skipped, nothing written ----
rows_before=$(sql "SELECT count(*) FROM checkpoints")
run
expect_eq "exit code of the third run" 0 "$rc"
expect_output "skipping data_ingestion (completed, up to date)"
expect_output "skipping data_preprocessing (completed, up to date)"
expect_output "skipping model_training (completed, up to date)"
reject_output "model_training: fitted"
grep -qE '^pipeline complete: model_training version 1, slope 2\.[45]' <<<"$out" ||
    fail "the third run did not load the stored model"
expect_eq "history rows after a run that skipped everything" "$rows_before" \
    "$(sql "SELECT count(*) FROM checkpoints")"
expect_eq "runs after a run that only read" 2 "$(sql "SELECT count(*) FROM runs")"

# ---- 4. A config change reruns exactly the stale stages ----
run --outlier-mads 2
expect_eq "exit code with --outlier-mads 2" 0 "$rc"
expect_output "skipping data_ingestion (completed, up to date)"
expect_output "running data_preprocessing: its configuration changed"
expect_output "running model_training: its input 'data_preprocessing' was saved again (version 2; this checkpoint used version 1)"
grep -qE '^data_preprocessing: kept 967 of 1000 rows .*beyond 2 MADs' <<<"$out" ||
    fail "data_preprocessing did not apply --outlier-mads 2"
expect_eq "completed versions after the config change" \
    "data_ingestion 1|data_preprocessing 2|model_training 2" \
    "$(sql "SELECT group_concat(stage || ' ' || version, '|') FROM (SELECT * FROM current_state ORDER BY stage)")"
expect_eq "data_preprocessing's metadata (outlier_mads)" 2.0 \
    "$(sql "SELECT json_extract(metadata, '$.outlier_mads') FROM current_state WHERE stage = 'data_preprocessing'")"
run --outlier-mads 2
expect_output "skipping data_preprocessing (completed, up to date)"
expect_output "skipping model_training (completed, up to date)"

# ---- 5. --reset runs everything again; bad flags are refused ----
run --reset
expect_eq "exit code of --reset" 0 "$rc"
reject_output "skipping"
for stage in data_ingestion data_preprocessing model_training; do
    expect_output "running $stage: it is cleared"
done
expect_eq "completed versions after --reset" \
    "data_ingestion 2|data_preprocessing 3|model_training 3" \
    "$(sql "SELECT group_concat(stage || ' ' || version, '|') FROM (SELECT * FROM current_state
            WHERE status = 'completed' ORDER BY stage)")"
expect_eq "pipeline-wide clears in the history" 1 \
    "$(sql "SELECT count(*) FROM history WHERE stage IS NULL AND status = 'cleared'")"
expect_eq "data_ingestion's output after --reset (deterministic)" "$ingestion_sha" \
    "$(sql "SELECT output_sha256 FROM current_state WHERE stage = 'data_ingestion'")"

cwd="$work/cwd"  # where a wrongly accepted command line would create ./checkpoints
mkdir "$cwd"
for args in "--bogus" "--crash-after" "--crash-after no_such_stage" "--dir" "--outlier-mads" \
    "--outlier-mads 0" "--outlier-mads x"; do
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
touch "$work/a-file"
out=$("$example" --dir "$work/a-file/sub" 2>&1) || rc=$?
expect_eq "exit code with an unusable --dir" 1 "$rc"
grep -q '^error: .*a-file/sub' <<<"$out" || fail "no 'error: <what>' line for an unusable --dir: $out"

echo "PASS: example pipeline crashes, resumes from its stored outputs, reruns exactly the stale stages"
