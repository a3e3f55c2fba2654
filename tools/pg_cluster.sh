#!/usr/bin/env bash
# Two throwaway PostgreSQL 15 servers in streaming replication, for the failover tests and
# the failover benchmark (DESIGN.md §8): node "a" starts as the primary, node "b" as its
# standby (pg_basebackup -R), each on 127.0.0.1 at a free port of its own and on a private
# Unix socket directory, never on the machine's usual port or socket.
#
#   eval "$(tools/pg_cluster.sh start [--async])"   starts both; prints `export` lines
#   tools/pg_cluster.sh primary DIR        prints the node that is the primary now (a or b)
#   tools/pg_cluster.sh kill DIR NODE      kill -9 NODE's postmaster (a crash), then waits
#                                          until its other processes have gone
#   tools/pg_cluster.sh crash DIR NODE     kill -9 all of NODE's processes at once (the
#                                          machine dies: its walsender sends nothing more)
#   tools/pg_cluster.sh promote DIR NODE   promotes the standby NODE (pg_ctl promote) and,
#                                          alone now, lets it commit without a standby
#   tools/pg_cluster.sh restart DIR NODE   starts NODE again as it was (crash recovery)
#   tools/pg_cluster.sh rejoin DIR NODE    makes the stopped NODE a standby of the other
#                                          node (pg_rewind, else a fresh base backup),
#                                          starts it and waits until it streams (and, but
#                                          with --async, is the synchronous standby)
#   tools/pg_cluster.sh stop DIR           stops both (-m immediate) and deletes DIR
#
# The exported variables:
#   CHECKPOINT_HA_DIR     the cluster's directory: give it to the other commands
#   CHECKPOINT_HA_URL     postgresql://postgres@127.0.0.1:PA,127.0.0.1:PB/postgres?
#                         target_session_attrs=read-write&connect_timeout=2: the superuser,
#                         trust authentication, whichever node is the primary
#   CHECKPOINT_HA_PORT_A, CHECKPOINT_HA_PORT_B   the nodes' TCP ports
#   CHECKPOINT_HA_SYNC    1: synchronous replication (synchronous_standby_names = '*',
#                         synchronous_commit = on: a commit returns once the standby has
#                         flushed it); 0 with --async
#
# Settings: wal_level = replica, wal_log_hints = on (pg_rewind), wal_keep_size = 512MB,
# fsync on, hot_standby on, wal_retrieve_retry_interval = 100ms (a standby reconnects fast).
# A node left without a standby after a promotion commits alone until `rejoin` gives it one
# again (as Patroni does outside synchronous_mode_strict). As root the servers run as the
# user postgres (initdb refuses root; created when missing); otherwise as the caller.
set -Eeuo pipefail

PGBIN=${CHECKPOINT_PG_BIN:-/usr/lib/postgresql/15/bin}

usage() {
    echo "usage: tools/pg_cluster.sh start [--async] | primary DIR | kill DIR NODE |" \
        "crash DIR NODE | promote DIR NODE | restart DIR NODE | rejoin DIR NODE | stop DIR" >&2
    exit 2
}

die() {
    echo "pg_cluster.sh: $*" >&2
    exit 1
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

other() { [[ $1 == a ]] && echo b || echo a; }

load() {  # dir
    DIR=$1
    [[ -f $DIR/env ]] || die "no cluster in $DIR (no $DIR/env)"
    # shellcheck source=/dev/null
    source "$DIR/env"
}

port_of() { [[ $1 == a ]] && echo "$CHECKPOINT_HA_PORT_A" || echo "$CHECKPOINT_HA_PORT_B"; }

# psql on NODE over its socket; extra arguments follow.
node_sql() {  # node sql
    as_owner "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR/sock_$1" -p "$(port_of "$1")" \
        -U postgres -d postgres -c "$2"
}

# Waits (up to $3 seconds) until `node_sql NODE SQL` prints "t".
wait_sql() {  # node sql seconds what
    local deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        [[ $(node_sql "$1" "$2" 2>/dev/null || true) == t ]] && return 0
        sleep 0.05
    done
    tail -n 20 "$DIR/$1.log" >&2 || true
    die "node $1: $4 not reached within $3 s"
}

# Starts NODE on PORT; returns 1 when the port is taken (the caller tries another).
start_node() {  # node port
    local node=$1 port=$2
    rm -f "$DIR/$node.log.start"
    if as_owner "$PGBIN/pg_ctl" -D "$DIR/$node" -l "$DIR/$node.log" -w -t 120 \
        -o "-p $port -k $DIR/sock_$node -c listen_addresses=127.0.0.1" start \
        >"$DIR/$node.pg_ctl.log" 2>&1; then
        return 0
    fi
    if tail -n 30 "$DIR/$node.log" | grep -q "could not bind\|Address already in use\|could not create any TCP/IP sockets"; then
        return 1
    fi
    cat "$DIR/$node.pg_ctl.log" >&2 || true
    tail -n 30 "$DIR/$node.log" >&2 || true
    die "node $node did not start on port $port"
}

# Starts NODE at a random free port (20 tries); prints the port.
start_node_anywhere() {  # node
    local port
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        if start_node "$1" "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found for node $1 in 20 tries"
}

write_env() {
    local url="postgresql://postgres@127.0.0.1:$CHECKPOINT_HA_PORT_A,127.0.0.1:$CHECKPOINT_HA_PORT_B/postgres?target_session_attrs=read-write&connect_timeout=2"
    cat >"$DIR/env" <<EOF
CHECKPOINT_HA_DIR=$(printf '%q' "$DIR")
CHECKPOINT_HA_URL=$(printf '%q' "$url")
CHECKPOINT_HA_PORT_A=$CHECKPOINT_HA_PORT_A
CHECKPOINT_HA_PORT_B=$CHECKPOINT_HA_PORT_B
CHECKPOINT_HA_SYNC=$CHECKPOINT_HA_SYNC
EOF
}

print_env() {
    local name
    # shellcheck source=/dev/null
    source "$DIR/env"
    for name in CHECKPOINT_HA_DIR CHECKPOINT_HA_URL CHECKPOINT_HA_PORT_A CHECKPOINT_HA_PORT_B \
        CHECKPOINT_HA_SYNC; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done
}

# Makes the primary's standby synchronous (unless async) and waits until it streams so.
attach_standby() {  # primary
    local primary=$1
    wait_sql "$primary" "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'" \
        120 "a streaming standby"
    if [[ $CHECKPOINT_HA_SYNC == 1 ]]; then
        node_sql "$primary" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
        node_sql "$primary" "SELECT pg_reload_conf()" >/dev/null
        wait_sql "$primary" "SELECT count(*) > 0 FROM pg_stat_replication WHERE sync_state = 'sync'" \
            120 "a synchronous standby"
    fi
}

base_backup() {  # node (from the other, the primary)
    local node=$1 from
    from=$(other "$1")
    rm -rf "${DIR:?}/$node"
    as_owner "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$(port_of "$from")" -U postgres \
        -D "$DIR/$node" -R -X stream -c fast >"$DIR/$node.basebackup.log" 2>&1 ||
        { cat "$DIR/$node.basebackup.log" >&2; die "pg_basebackup of node $node failed"; }
}

cmd_start() {
    local async=0
    [[ ${1:-} == --async ]] && async=1
    [[ -x $PGBIN/initdb ]] ||
        die "no PostgreSQL 15 server in $PGBIN: run tools/deps.sh (postgresql-15)"
    if [[ $(id -u) -eq 0 ]] && ! getent passwd postgres >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    local base=${TMPDIR:-/tmp}
    if ((${#base} > 60)) || { [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$base"; }; then
        base=/tmp
    fi
    DIR=$(mktemp -d "$base/checkpoint-ha-XXXXXX")
    chmod 0700 "$DIR"
    mkdir "$DIR/sock_a" "$DIR/sock_b"
    [[ $(id -u) -eq 0 ]] && chown -R postgres: "$DIR"
    trap 'cmd_stop_dir >/dev/null 2>&1 || true' ERR

    as_owner "$PGBIN/initdb" -D "$DIR/a" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$DIR/initdb.log" 2>&1 ||
        { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    cat >>"$DIR/a/postgresql.conf" <<EOF

# tools/pg_cluster.sh: a primary and a streaming standby for the failover tests
max_connections = 100
fsync = on
synchronous_commit = on
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_log_hints = on
wal_keep_size = 512MB
hot_standby = on
wal_retrieve_retry_interval = 100ms
logging_collector = off
log_min_messages = warning
EOF
    cat >"$DIR/a/pg_hba.conf" <<EOF
# tools/pg_cluster.sh: trusted
local all         all                trust
host  all         all   127.0.0.1/32 trust
host  replication all   127.0.0.1/32 trust
EOF
    CHECKPOINT_HA_SYNC=$((1 - async))
    CHECKPOINT_HA_PORT_A=$(start_node_anywhere a)
    CHECKPOINT_HA_PORT_B=0
    write_env
    base_backup b
    CHECKPOINT_HA_PORT_B=$(start_node_anywhere b)
    write_env
    attach_standby a
    trap - ERR
    echo "pg_cluster.sh: primary a on 127.0.0.1:$CHECKPOINT_HA_PORT_A, standby b on" \
        "127.0.0.1:$CHECKPOINT_HA_PORT_B ($([[ $CHECKPOINT_HA_SYNC == 1 ]] && echo synchronous || echo asynchronous)), in $DIR" >&2
    print_env
}

cmd_primary() {
    local node
    for node in a b; do
        if [[ $(node_sql "$node" "SELECT NOT pg_is_in_recovery()" 2>/dev/null || true) == t ]]; then
            echo "$node"
            return 0
        fi
    done
    die "no node is a running primary"
}

# kill: SIGKILL to the postmaster alone (its backends and walsender notice and exit on their
# own, a walsender may still send what it has); crash: SIGKILL to all its processes at once
# (the machine dies: nothing more leaves it).
cmd_kill() {  # node [all]
    local node=$1 all=${2:-} pid children deadline
    [[ -f $DIR/$node/postmaster.pid ]] || die "node $node is not running"
    pid=$(head -n 1 "$DIR/$node/postmaster.pid")
    # Its children, from /proc (no procps needed): field 4 of /proc/PID/stat is the parent.
    # (The servers' process names, "(postgres)", hold no space.)
    local stat child_pid parent
    children=""
    for stat in /proc/[0-9]*/stat; do
        read -r child_pid _ _ parent _ 2>/dev/null <"$stat" || continue
        if [[ $parent == "$pid" ]]; then children+=" $child_pid"; fi
    done
    if [[ -n $all ]]; then
        # shellcheck disable=SC2086
        kill -9 "$pid" $children 2>/dev/null || die "node $node: no postmaster $pid"
    else
        kill -9 "$pid" 2>/dev/null || die "node $node: no postmaster $pid"
    fi
    # Its backends and helpers notice the postmaster's death and exit; a restart must not
    # find them attached to the old shared memory. Bounded: then SIGKILL them too.
    deadline=$((SECONDS + 10))
    local alive
    while :; do
        alive=""
        for child_pid in $pid $children; do
            if kill -0 "$child_pid" 2>/dev/null; then alive+=" $child_pid"; fi
        done
        [[ -z $alive ]] && break
        if ((SECONDS >= deadline)); then
            # shellcheck disable=SC2086
            kill -9 $alive 2>/dev/null || true
        fi
        ((SECONDS < deadline + 10)) || die "node $node: processes$alive left after kill -9"
        sleep 0.02
    done
}

cmd_crash() {  # node
    cmd_kill "$1" all
}

cmd_promote() {  # node
    local node=$1
    as_owner "$PGBIN/pg_ctl" -D "$DIR/$node" -w -t 120 promote >"$DIR/$node.promote.log" 2>&1 ||
        { cat "$DIR/$node.promote.log" >&2; die "promoting node $node failed"; }
    wait_sql "$node" "SELECT NOT pg_is_in_recovery()" 120 "the end of recovery"
    # Alone now: a synchronous primary without a standby would block every commit.
    node_sql "$node" "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null
    node_sql "$node" "SELECT pg_reload_conf()" >/dev/null
}

cmd_restart() {  # node
    local node=$1
    start_node "$node" "$(port_of "$node")" || die "node $node: port $(port_of "$node") is taken"
    wait_sql "$node" "SELECT true" 120 "accepting connections"
    if [[ $(node_sql "$node" "SELECT NOT pg_is_in_recovery()") == t ]]; then
        local standby
        standby=$(other "$node")
        # Its standby reconnects by itself (wal_retrieve_retry_interval).
        if [[ -f $DIR/$standby/postmaster.pid ]]; then
            wait_sql "$node" "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'" \
                120 "its standby streaming again"
        fi
    fi
}

cmd_rejoin() {  # node
    local node=$1 from
    from=$(other "$node")
    [[ ! -f $DIR/$node/postmaster.pid ]] || ! kill -0 "$(head -n 1 "$DIR/$node/postmaster.pid")" 2>/dev/null ||
        die "node $node is running: kill it first"
    # pg_rewind reads the source's timeline from its control file, updated by a checkpoint.
    node_sql "$from" "CHECKPOINT" >/dev/null
    if ! as_owner "$PGBIN/pg_rewind" -D "$DIR/$node" -R \
        --source-server="host=127.0.0.1 port=$(port_of "$from") user=postgres dbname=postgres" \
        >"$DIR/$node.rewind.log" 2>&1; then
        echo "pg_cluster.sh: pg_rewind of node $node failed (see $DIR/$node.rewind.log): a fresh base backup instead" >&2
        base_backup "$node"
    fi
    # The node's own setting would make it wait for a standby once promoted: it starts with
    # none, and a promotion sets none anyway.
    as_owner sed -i "/^synchronous_standby_names/d" "$DIR/$node/postgresql.auto.conf"
    start_node "$node" "$(port_of "$node")" || die "node $node: port $(port_of "$node") is taken"
    attach_standby "$from"
}

cmd_stop_dir() {
    local node
    for node in a b; do
        if [[ -f $DIR/$node/postmaster.pid ]]; then
            as_owner "$PGBIN/pg_ctl" -D "$DIR/$node" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$DIR"
}

case "${1:-}" in
    start)
        [[ $# -le 2 ]] || usage
        cmd_start "${2:-}"
        ;;
    primary)
        [[ $# -eq 2 ]] || usage
        load "$2"
        cmd_primary
        ;;
    kill | crash | promote | restart | rejoin)
        [[ $# -eq 3 && ($3 == a || $3 == b) ]] || usage
        load "$2"
        "cmd_$1" "$3"
        ;;
    stop)
        [[ $# -eq 2 ]] || usage
        [[ -d $2 ]] || { echo "pg_cluster.sh: no cluster directory $2" >&2; exit 0; }
        DIR=$2
        cmd_stop_dir
        ;;
    *) usage ;;
esac
