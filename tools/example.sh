#!/usr/bin/env bash
# Builds checkpoint and runs the example pipeline: interrupted after its second stage,
# resumed (only the third stage runs, from the stored output of the second), rerun after a
# configuration change (exactly the two stale stages run again), then shows the history.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh >/dev/null
dir=build/example-checkpoints
rm -rf "$dir"

echo "== 1. the pipeline, interrupted after data_preprocessing (a simulated crash) =="
status=0
build/tools/example_pipeline --dir "$dir" --crash-after data_preprocessing || status=$?
echo "(exited with status $status)"
echo
echo "== 2. the same command again: it resumes at model_training =="
build/tools/example_pipeline --dir "$dir"
echo
echo "== 3. a configuration change: --outlier-mads 2 reruns exactly the stale stages =="
build/tools/example_pipeline --dir "$dir" --outlier-mads 2
echo
echo "== 4. the history: checkpointctl history --dir $dir =="
build/tools/checkpointctl history --dir "$dir" --format table
echo
echo "== 5. the runs: checkpointctl runs --dir $dir =="
build/tools/checkpointctl runs --dir "$dir" --format table
