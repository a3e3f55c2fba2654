#!/usr/bin/env bash
# tools/pg_server.sh, the throwaway PostgreSQL server of the tests: it starts on a free port
# (retrying when the first port it tries is taken), listens on 127.0.0.1 and its private
# socket directory only, has the settings and roles the tests rely on (trust for
# postgres, a password for the authentication role over TCP), and `stop` ends it and
# deletes its directory.
# Env (set by tests/CMakeLists.txt): CHECKPOINT_SOURCE_DIR.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

: "${CHECKPOINT_SOURCE_DIR:?set CHECKPOINT_SOURCE_DIR to the source directory}"
script="$CHECKPOINT_SOURCE_DIR/tools/pg_server.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/checkpoint-pg-server-test-XXXXXX")
listener=""
server_dir=""
cleanup() {
    [[ -n $server_dir ]] && "$script" stop "$server_dir" >/dev/null 2>&1
    [[ -n $listener ]] && kill "$listener" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A port that is taken: a listener on 127.0.0.1 at a port the kernel chose.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(600)
' >"$work/port" &
listener=$!
for _ in $(seq 1 100); do
    [[ -s $work/port ]] && break
    sleep 0.05
done
taken=$(cat "$work/port")
[[ -n $taken ]] || fail "the listener did not report its port"

echo "--- start, the first port tried ($taken) being taken"
env_lines=$(CHECKPOINT_PG_FIRST_PORT=$taken "$script" start 2>"$work/start.err") ||
    fail "pg_server.sh start failed: $(cat "$work/start.err")"
eval "$env_lines"
server_dir=$CHECKPOINT_TEST_PG_DIR
echo "$CHECKPOINT_TEST_PG_URL"
[[ $CHECKPOINT_TEST_PG_URL =~ ^postgresql://postgres@127\.0\.0\.1:([0-9]+)/postgres$ ]] ||
    fail "unexpected URL $CHECKPOINT_TEST_PG_URL"
port=${BASH_REMATCH[1]}
[[ $port != "$taken" ]] || fail "the server claims the taken port $taken"
[[ -d $CHECKPOINT_TEST_PG_DATA && -d $CHECKPOINT_TEST_PG_SOCKET ]] ||
    fail "no data or socket directory in $server_dir"
[[ -x $CHECKPOINT_TEST_PG_BIN/psql ]] || fail "no psql in $CHECKPOINT_TEST_PG_BIN"

psql=("$CHECKPOINT_TEST_PG_BIN/psql" -X -A -t -q)
query() { "${psql[@]}" "$CHECKPOINT_TEST_PG_URL" -c "$1"; }

echo "--- settings"
[[ $(query "SHOW listen_addresses") == 127.0.0.1 ]] || fail "listens on $(query "SHOW listen_addresses")"
[[ $(query "SHOW unix_socket_directories") == "$CHECKPOINT_TEST_PG_SOCKET" ]] ||
    fail "socket directory $(query "SHOW unix_socket_directories")"
(($(query "SHOW max_connections") >= 100)) || fail "max_connections $(query "SHOW max_connections")"
[[ $(query "SHOW fsync") == on ]] || fail "fsync is off"
[[ $(query "SHOW server_version_num") == 15* ]] || fail "not PostgreSQL 15"
[[ $("${psql[@]}" -h "$CHECKPOINT_TEST_PG_SOCKET" -p "$port" -U postgres -d postgres -c "SELECT 1") == 1 ]] ||
    fail "the Unix socket in $CHECKPOINT_TEST_PG_SOCKET does not answer"

echo "--- the password role over TCP"
tcp="host=127.0.0.1 port=$port dbname=postgres user=$CHECKPOINT_TEST_PG_AUTH_USER"
[[ $(PGPASSWORD=$CHECKPOINT_TEST_PG_AUTH_PASSWORD "${psql[@]}" "$tcp" -c "SELECT current_user") == \
    "$CHECKPOINT_TEST_PG_AUTH_USER" ]] || fail "the right password was refused"
if PGPASSWORD=wrong "${psql[@]}" "$tcp" -c "SELECT 1" >/dev/null 2>"$work/wrong.err"; then
    fail "a wrong password was accepted"
fi
grep -q "password authentication failed" "$work/wrong.err" ||
    fail "a wrong password failed for another reason: $(cat "$work/wrong.err")"
[[ $CHECKPOINT_TEST_PG_AUTH_PASSWORD =~ [@:/%] ]] ||
    fail "the password has no character that a URI must percent-encode"

echo "--- stop"
pid=$(head -n 1 "$CHECKPOINT_TEST_PG_DATA/postmaster.pid")
"$script" stop "$server_dir"
stopped=$server_dir
server_dir=""
[[ ! -e $stopped ]] || fail "stop left $stopped"
# pg_ctl returned once postmaster.pid was gone; the process itself is reaped a moment later.
for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
! kill -0 "$pid" 2>/dev/null || fail "the postmaster (pid $pid) still runs 10 s after stop"
if "$CHECKPOINT_TEST_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; then
    fail "something still answers on port $port"
fi

echo "PASS: tools/pg_server.sh starts on a free port, as configured, and stops cleanly"
