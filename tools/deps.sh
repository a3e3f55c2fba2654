#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing checkpoint needs, when missing.
# Used by tools/example.sh, tools/test.sh and tools/fuzz.sh; safe to run again (installs nothing twice).
set -euo pipefail

# clang-14 and libclang-rt-14-dev: libFuzzer for tools/fuzz.sh (the sanitizers of g++ 12
# come with g++). postgresql-15: the server the PostgreSQL tests start (tools/pg_server.sh);
# libpqxx-dev (6.4) and libpq-dev: the PostgreSQL backend. python3-dev, pybind11-dev and
# python3-pybind11: the Python module (lib/python/), built for Debian's /usr/bin/python3
# (pybind11-dev does not pull in python3-dev's headers); python3-pytest runs its tests.
# libcpp-httplib-dev: checkpointctl serve's HTTP server; chromium: the headless browser of
# tests/dashboard_test.py. libssl-dev: OpenSSL 3's libcrypto, SHA-256 with the CPU's SHA
# extensions (lib/sha256.cpp).
packages=(g++ make cmake pkg-config python3 sqlite3 libsqlite3-dev libsqlitecpp-dev
          libspdlog-dev libfmt-dev catch2 libcli11-dev nlohmann-json3-dev libsodium-dev libssl-dev
          clang-14 libclang-rt-14-dev postgresql-15 libpqxx-dev libpq-dev
          python3-dev pybind11-dev python3-pybind11 python3-pytest libcpp-httplib-dev chromium)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [[ $status != *"install ok installed"* ]]; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "checkpoint: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "checkpoint: cannot install packages: run as root, or install them: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
