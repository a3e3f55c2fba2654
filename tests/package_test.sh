#!/usr/bin/env bash
# The installed package, used the way a user would, from a fresh prefix:
#   1. `cmake --install` into a temporary prefix; the tree holds the library, the public
#      headers (include/checkpoint/ only: no SQLite, SQLiteCpp or private headers), the CMake
#      package and the pkg-config file;
#   2. every installed public header compiles alone as C++17 and includes no SQLite,
#      SQLiteCpp or spdlog header;
#   3. tests/package/consumer builds with find_package(checkpoint 0.1 CONFIG REQUIRED) and
#      checkpoint::checkpoint, runs and prints OK; asking for version 0.2 or 1.0 is refused;
#   4. the same consumer builds with `pkg-config --cflags --libs checkpoint`, runs and
#      prints OK, and pkg-config points into the prefix (not where the build was configured).
# Env (set by tests/CMakeLists.txt): CHECKPOINT_SOURCE_DIR, CHECKPOINT_BINARY_DIR, CMAKE_COMMAND.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

: "${CHECKPOINT_SOURCE_DIR:?set CHECKPOINT_SOURCE_DIR to the source directory}"
: "${CHECKPOINT_BINARY_DIR:?set CHECKPOINT_BINARY_DIR to the build directory}"
CMAKE_COMMAND=${CMAKE_COMMAND:-cmake}
CXX=${CXX:-c++}
command -v "$CXX" >/dev/null || fail "no C++ compiler ($CXX) found"
command -v pkg-config >/dev/null ||
    fail "pkg-config is not installed (apt-get install pkg-config); the pkg-config file cannot be checked"

work=$(mktemp -d "${TMPDIR:-/tmp}/checkpoint-package-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
consumer_src="$CHECKPOINT_SOURCE_DIR/tests/package/consumer"

step() { echo "--- $*"; }

# Runs a command quietly; on failure shows its output and fails with $1.
quietly() {
    local what=$1
    shift
    local log="$work/last.log"
    "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        fail "$what"
    }
}

# ---- 1. Install into a fresh prefix ----
step "install into $prefix"
quietly "cmake --install $CHECKPOINT_BINARY_DIR failed" \
    "$CMAKE_COMMAND" --install "$CHECKPOINT_BINARY_DIR" --prefix "$prefix"
(cd "$prefix" && find . -type f -o -type l | sort)

# The library directory (lib, or lib/<multiarch>) is where pkgconfig/checkpoint.pc went.
pc_file=$(find "$prefix" -path '*/pkgconfig/checkpoint.pc' -print -quit)
[[ -n $pc_file ]] || fail "checkpoint.pc is not installed (no <libdir>/pkgconfig/checkpoint.pc)"
libdir=$(dirname "$(dirname "$pc_file")")
if compgen -G "$libdir/libcheckpoint.so*" >/dev/null; then
    shared=1
elif [[ -f $libdir/libcheckpoint.a ]]; then
    shared=0  # BUILD_SHARED_LIBS=OFF: consumers link the private dependencies too
else
    fail "libcheckpoint is not installed in $libdir"
fi
for file in checkpointConfig.cmake checkpointConfigVersion.cmake checkpointTargets.cmake; do
    [[ -f $libdir/cmake/checkpoint/$file ]] || fail "${libdir#"$prefix"/}/cmake/checkpoint/$file is not installed"
done
for header in checkpoint_manager error options records export; do
    [[ -f $prefix/include/checkpoint/$header.hpp ]] || fail "include/checkpoint/$header.hpp is not installed"
done

# Headers: only ours, only under include/checkpoint/.
stray=$(cd "$prefix" && find . -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.hh' -o -name '*.inl' \) \
    ! -path './include/checkpoint/*' | sort)
[[ -z $stray ]] || fail "headers installed outside include/checkpoint/: $stray"
[[ -z $(find "$prefix" -iname '*sqlite*') ]] ||
    fail "SQLite files were installed: $(find "$prefix" -iname '*sqlite*')"
installed=$(cd "$prefix/include/checkpoint" && find . -mindepth 1 | sort | tr '\n' ' ')
expected=$(cd "$CHECKPOINT_SOURCE_DIR/include/checkpoint" && { find . -mindepth 1; echo ./export.hpp; } |
    sort -u | tr '\n' ' ')
[[ $installed == "$expected" ]] ||
    fail "include/checkpoint/ holds '$installed', expected the public headers '$expected'"
for private in "$CHECKPOINT_SOURCE_DIR"/lib/*.hpp; do
    [[ ! -e $prefix/include/checkpoint/$(basename "$private") ]] ||
        fail "the private header lib/$(basename "$private") was installed"
done

# ---- 2. The public headers stand alone as C++17 ----
step "public headers compile alone with -std=c++17"
if grep -nE '^\s*#\s*include\s*[<"](sqlite3\.h|SQLiteCpp/|spdlog/)' "$prefix"/include/checkpoint/*.hpp; then
    fail "an installed public header includes SQLite, SQLiteCpp or spdlog (lines above)"
fi
for header in "$prefix"/include/checkpoint/*.hpp; do
    name=$(basename "$header")
    printf '#include <checkpoint/%s>\n#include <checkpoint/%s>\nint main() {}\n' "$name" "$name" \
        >"$work/header_$name.cpp"
    quietly "<checkpoint/$name> does not compile alone as C++17 against the installed tree" \
        "$CXX" -std=c++17 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -I"$prefix/include" \
        "$work/header_$name.cpp"
done

# ---- 3. A CMake consumer: find_package(checkpoint 0.1 CONFIG REQUIRED) ----
step "CMake consumer (find_package)"
quietly "configuring the consumer with find_package(checkpoint 0.1 CONFIG) failed" \
    "$CMAKE_COMMAND" -S "$consumer_src" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
found_dir=$(sed -n 's/^checkpoint_DIR:PATH=//p' "$work/consumer-build/CMakeCache.txt")
[[ $found_dir == "$libdir/cmake/checkpoint" ]] ||
    fail "find_package found checkpoint in '$found_dir', not in the install prefix"
quietly "building the CMake consumer failed" "$CMAKE_COMMAND" --build "$work/consumer-build"
commands="$work/consumer-build/compile_commands.json"
grep -qF -- "$prefix/include" "$commands" ||
    fail "the consumer is not compiled against $prefix/include: $(grep '"command"' "$commands")"
if grep -qF -- "$CHECKPOINT_SOURCE_DIR/include" "$commands"; then
    fail "the consumer was compiled against the source tree's headers, not the installed ones"
fi
# The build tree's RPATH points at $prefix/lib: no LD_LIBRARY_PATH needed.
out=$(TMPDIR="$work" "$work/consumer-build/consumer" 2>&1) ||
    fail "the CMake consumer failed: $out"
[[ $(tail -n 1 <<<"$out") == OK ]] || fail "the CMake consumer did not print OK: $out"
if ((shared)); then
    # Captured first: `ldd | grep -q` under pipefail fails when grep exits before ldd is done.
    libraries=$(ldd "$work/consumer-build/consumer")
    [[ $libraries == *"$libdir/libcheckpoint"* ]] ||
        fail "the CMake consumer does not load libcheckpoint from the prefix: $libraries"
fi

# The version file: SameMinorVersion compatibility.
for wanted in 0.2 1.0; do
    mkdir -p "$work/version-$wanted"
    cat >"$work/version-$wanted/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(version_check LANGUAGES CXX)
find_package(checkpoint $wanted CONFIG REQUIRED)
EOF
    if "$CMAKE_COMMAND" -S "$work/version-$wanted" -B "$work/version-$wanted/build" \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON >/dev/null 2>&1; then
        fail "find_package(checkpoint $wanted) accepted the installed version 0.1"
    fi
done

# ---- 4. A pkg-config consumer ----
step "pkg-config consumer"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
static=()
((shared)) || static=(--static)
flags=$(pkg-config "${static[@]}" --cflags --libs checkpoint) ||
    fail "pkg-config --cflags --libs checkpoint failed (missing dependency .pc files?)"
echo "pkg-config ${static[*]} --cflags --libs checkpoint: $flags"
[[ $(pkg-config --modversion checkpoint) == 0.1.0 ]] ||
    fail "pkg-config reports version $(pkg-config --modversion checkpoint), expected 0.1.0"
# -I and -L must lead into the prefix (compared as real paths: a relocatable .pc may say
# ${pcfiledir}/../../include), not to where the build was configured to install.
points_into() {  # dir, path...
    local want path
    want=$(realpath "$1")
    shift
    for path in "$@"; do
        [[ -d $path && $(realpath "$path") == "$want" ]] && return 0
    done
    return 1
}
# Only the leading -I / -L of each flag goes: the temporary prefix's random name may hold
# "-L" or "-I" itself (checkpoint-package-LGoIIp failed CI when sed removed every one).
read -ra include_flags <<<"$(pkg-config --cflags-only-I checkpoint)"
read -ra lib_flags <<<"$(pkg-config --libs-only-L checkpoint)"
include_dirs=("${include_flags[@]#-I}")
lib_dirs=("${lib_flags[@]#-L}")
pc_paths=$(grep -E '^(prefix|libdir|includedir)=' "$libdir/pkgconfig/checkpoint.pc" | tr '\n' ' ')
points_into "$prefix/include" "${include_dirs[@]}" ||
    fail "pkg-config --cflags gives no -I for $prefix/include (got: $flags); checkpoint.pc is not relocatable: $pc_paths"
points_into "$libdir" "${lib_dirs[@]}" ||
    fail "pkg-config --libs gives no -L for $libdir (got: $flags); checkpoint.pc is not relocatable: $pc_paths"
# shellcheck disable=SC2086  # the flags are meant to be split
quietly "compiling the consumer with the pkg-config flags failed" \
    "$CXX" -std=c++17 -o "$work/consumer-pc" "$consumer_src/main.cpp" $flags -Wl,-rpath,"$libdir"
out=$(TMPDIR="$work" "$work/consumer-pc" 2>&1) || fail "the pkg-config consumer failed: $out"
[[ $(tail -n 1 <<<"$out") == OK ]] || fail "the pkg-config consumer did not print OK: $out"

echo "PASS: the installed package works with find_package and pkg-config"
