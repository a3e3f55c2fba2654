#!/usr/bin/env bash
# Builds checkpoint and runs every test (installs missing Debian packages first).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900
