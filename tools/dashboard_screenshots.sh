#!/usr/bin/env bash
# Makes the README's screenshots of `checkpointctl serve` (tools/checkpointctl/screenshots/:
# pipeline.png, run.png) from the example pipeline, with the tooling of tests/dashboard_test.py
# and headless Chromium: the example interrupted, resumed, rerun with a changed setting, then
# rerun from scratch (--reset); the pipeline page and the last run's timeline, 1280x900.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh >/dev/null
CHECKPOINTCTL=build/tools/checkpointctl \
CHECKPOINT_TEST_WORKER=build/tests/checkpoint_test_worker \
CHECKPOINT_CTL_FIXTURE=build/tests/checkpoint_ctl_fixture \
CHECKPOINT_EXAMPLE=build/tools/example_pipeline \
    python3 tests/dashboard_test.py --screenshots tools/checkpointctl/screenshots
