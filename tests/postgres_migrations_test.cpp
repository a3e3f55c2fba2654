// The PostgreSQL schema and its migration runner, on the throwaway server: a fresh
// database is migrated once (also by many openers at once), a database that is not ours or
// is newer is refused with nothing written, read-only opens write nothing, and the schema
// mirrors SQLite's columns.
#include "postgres/migrations.hpp"

#include "migrations.hpp"
#include "pg_database.hpp"

#include <checkpoint/error.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::detail::embedded_postgres_migrations;
using checkpoint::detail::latest_postgres_schema_version;
using checkpoint::detail::migrate_postgres;
using checkpoint::detail::parse_location;
using checkpoint::detail::PgConnection;
using checkpoint::test::PgDatabase;
using namespace std::chrono_literals;

namespace {

ErrorCode code_of(const std::function<void()>& call, std::string* message = nullptr) {
    try {
        call();
    } catch (const Error& e) {
        if (message != nullptr) *message = e.what();
        return e.code();
    }
    FAIL("no checkpoint::Error was thrown");
    return ErrorCode::Internal;
}

void open_and_migrate(const PgDatabase& db, bool read_only,
                      std::chrono::milliseconds busy = 5000ms) {
    PgConnection connection(parse_location(db.url()), busy, read_only);
    migrate_postgres(connection);
}

// The relations of the database's public schema, the marker and the rows of
// schema_migrations, as one string: what "left unchanged" compares.
std::string snapshot(const PgDatabase& db) {
    std::string text = db.exec(
        "SELECT string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public'");
    if (db.exec("SELECT to_regclass('public.checkpoint_schema') IS NOT NULL") == "t") {
        text += "|" + db.exec(
                          "SELECT string_agg(application || '=' || version, ',') "
                          "FROM checkpoint_schema");
    }
    if (db.exec("SELECT to_regclass('public.schema_migrations') IS NOT NULL") == "t")
        text += "|" + db.exec("SELECT string_agg(version || name, ',') FROM schema_migrations");
    return text;
}

std::string columns_of(const PgDatabase& db, const std::string& relation) {
    return db.exec(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '" +
        relation + "'");
}

}  // namespace

TEST_CASE("a fresh database is migrated to the latest version, once", "[postgres][migrations]") {
    PgDatabase db;
    const int latest = latest_postgres_schema_version();
    REQUIRE(latest == static_cast<int>(embedded_postgres_migrations().size()));
    open_and_migrate(db, false);
    CHECK(db.exec("SELECT application || ' ' || version FROM checkpoint_schema") ==
          "checkpoint " + std::to_string(latest));
    CHECK(db.exec("SELECT count(*) FROM schema_migrations") == std::to_string(latest));
    CHECK(db.exec("SELECT name FROM schema_migrations WHERE version = 1") == "0001_initial.sql");
    const std::string applied = db.exec("SELECT applied_at FROM schema_migrations");
    CHECK(applied.size() == 24);  // 2026-11-27T06:37:48.123Z
    CHECK(applied.back() == 'Z');
    CHECK(applied[10] == 'T');

    // Opening again changes nothing, for writing or reading.
    const std::string before = snapshot(db);
    open_and_migrate(db, false);
    open_and_migrate(db, true);
    CHECK(snapshot(db) == before);
    CHECK(db.exec("SELECT count(*) FROM schema_migrations") == std::to_string(latest));
}

TEST_CASE("the schema has SQLite schema 2's tables and columns, and the views work",
          "[postgres][migrations][schema]") {
    PgDatabase db;
    open_and_migrate(db, false);
    CHECK(columns_of(db, "runs") ==
          "run_id,pipeline,host,pid,user,started_at,ended_at,outcome,heartbeat_at");
    CHECK(columns_of(db, "checkpoints") ==
          "id,pipeline,stage,status,version,timestamp,run_id,duration_ms,message,metadata,"
          "fingerprint,output_size,output_sha256,output_in_database,input_count,lease_token,"
          "write_id,chain_hash,key_id");
    CHECK(columns_of(db, "stage_leases") ==
          "pipeline,stage,token,run_id,host,pid,claimed_at,expires_at");
    CHECK(columns_of(db, "history_chain") == "singleton,start_id");
    CHECK(columns_of(db, "history_chain_anchors") == "row_id,prev_id,prev_hash,tag");
    CHECK(columns_of(db, "encryption_keys") == "key_id,check_value,role");
    CHECK(columns_of(db, "stage_heads") == "pipeline,stage,status,version,head_id,checks");
    CHECK(columns_of(db, "pipelines") == "pipeline,cleared_id");
    CHECK(columns_of(db, "checkpoint_inputs") ==
          "checkpoint_id,position,input_stage,input_id,input_version");
    CHECK(columns_of(db, "output_chunks") == "checkpoint_id,chunk,data");
    CHECK(columns_of(db, "schema_migrations") == "version,name,applied_at");
    CHECK(columns_of(db, "history") ==
          "id,pipeline,stage,status,version,timestamp,run_id,duration_ms,message,host,pid,"
          "run_outcome,open_attempt,metadata,fingerprint,output_size,output_sha256,"
          "output_in_database,inputs");
    CHECK(columns_of(db, "current_state") ==
          "pipeline,stage,status,version,id,timestamp,run_id,duration_ms,message,host,pid,"
          "run_outcome,metadata,fingerprint,output_size,output_sha256,output_in_database,"
          "inputs");
    CHECK(db.exec("SELECT data_type FROM information_schema.columns WHERE table_name = "
                  "'checkpoints' AND column_name = 'metadata'") == "jsonb");

    // A run that died with a started stage, a completed save with inputs, a clear.
    db.exec(R"sql(
        INSERT INTO runs (run_id, pipeline, host, pid, "user", started_at, outcome)
            VALUES ('r1', 'p', 'h1', 10, 'alice', '2026-11-27T06:00:00.000Z', 'died'),
                   ('r2', 'p', 'h2', 20, 'bob', '2026-11-27T07:00:00.000Z', 'running');
        INSERT INTO pipelines VALUES ('p', 0);
        INSERT INTO checkpoints (pipeline, stage, status, version, timestamp, run_id)
            VALUES ('p', 'load', 'started', 0, '2026-11-27T06:00:01.000Z', 'r1');
        INSERT INTO checkpoints (pipeline, stage, status, version, timestamp, run_id,
                                 metadata, input_count, output_size, output_sha256,
                                 output_in_database)
            VALUES ('p', 'train', 'completed', 1, '2026-11-27T07:00:01.000Z', 'r2',
                    '{"loss": 0.25}', 2, 3, 'abc', true);
        INSERT INTO checkpoint_inputs VALUES (2, 1, 'clean', 7, 3), (2, 0, 'load', 5, 1);
        INSERT INTO output_chunks VALUES (2, 0, '\x010203');
        INSERT INTO stage_heads VALUES ('p', 'load', 'started', 0, 1, false),
                                       ('p', 'train', 'completed', 1, 2, true);
    )sql");
    CHECK(db.exec("SELECT status FROM history WHERE id = 1") == "incomplete");
    CHECK(db.exec("SELECT open_attempt FROM history WHERE id = 1") == "t");
    CHECK(db.exec("SELECT status FROM current_state WHERE stage = 'load'") == "incomplete");
    CHECK(db.exec("SELECT (inputs->0->>'stage') || (inputs->1->>'stage') || "
                  "jsonb_array_length(inputs) FROM history WHERE id = 2") == "loadclean2");
    CHECK(db.exec("SELECT metadata->>'loss' FROM current_state WHERE stage = 'train'") == "0.25");
    CHECK(db.exec("SELECT sum(length(data)) FROM output_chunks WHERE checkpoint_id = 2") == "3");
    // "user" is quoted: unquoted, `user` is the connected role.
    CHECK(db.exec("SELECT string_agg(\"user\", ',' ORDER BY run_id) FROM runs") == "alice,bob");

    // A pipeline-wide clear after both: every stage reads cleared.
    db.exec(
        "INSERT INTO checkpoints (pipeline, status, version, timestamp, run_id) "
        "VALUES ('p', 'cleared', 0, '2026-11-27T08:00:00.000Z', 'r2'); "
        "UPDATE pipelines SET cleared_id = 3 WHERE pipeline = 'p'");
    CHECK(db.exec("SELECT string_agg(status, ',' ORDER BY stage) FROM current_state") ==
          "cleared,cleared");
    // ids can be given (a copy keeps them); text sorts bytewise, as in SQLite.
    db.exec(
        "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id) "
        "VALUES (100, 'p', 'Zeta', 'started', 0, '2026-11-27T09:00:00.000Z', 'r2'), "
        "(101, 'p', 'alpha', 'started', 0, '2026-11-27T09:00:00.000Z', 'r2')");
    CHECK(db.exec("SELECT string_agg(stage, ',' ORDER BY stage) FROM checkpoints "
                  "WHERE id >= 100") == "Zeta,alpha");
    CHECK_THROWS_AS(db.exec("INSERT INTO checkpoints (pipeline, stage, status, version, "
                            "timestamp, run_id) VALUES ('p', 's', 'done', 0, 't', 'r2')"),
                    pqxx::check_violation);
}

TEST_CASE("concurrent openers migrate a fresh database exactly once", "[postgres][migrations]") {
    PgDatabase db;
    constexpr int openers = 8;
    std::vector<PgConnection> connections;
    for (int i = 0; i < openers; ++i)
        connections.emplace_back(parse_location(db.url()), 30000ms, false);
    std::atomic<int> ready{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < openers; ++i) {
        threads.emplace_back([&, i] {
            ++ready;
            while (ready.load() < openers) std::this_thread::yield();  // start together
            try {
                migrate_postgres(connections[i]);
            } catch (const std::exception& e) {
                ++failures;
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    CHECK(failures.load() == 0);
    CHECK(db.exec("SELECT count(*) FROM schema_migrations") ==
          std::to_string(latest_postgres_schema_version()));
    CHECK(db.exec("SELECT version FROM checkpoint_schema") ==
          std::to_string(latest_postgres_schema_version()));
}

TEST_CASE("concurrent openers in several processes migrate a fresh database exactly once",
          "[postgres][migrations]") {
    PgDatabase db;
    constexpr int openers = 4;
    const std::string url = db.url();
    int gate[2];
    REQUIRE(::pipe(gate) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < openers; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {  // the child: wait for the gate to open, migrate, report by exit code
            ::close(gate[1]);
            char byte;
            while (::read(gate[0], &byte, 1) < 0) {
            }
            int status = 0;
            try {
                PgConnection connection(parse_location(url), 30000ms, false);
                migrate_postgres(connection);
            } catch (...) {
                status = 1;
            }
            ::_exit(status);
        }
        children.push_back(pid);
    }
    ::close(gate[0]);
    ::close(gate[1]);  // every child's read returns: they start together
    int succeeded = 0;
    for (const pid_t pid : children) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++succeeded;
    }
    CHECK(succeeded == openers);
    CHECK(db.exec("SELECT count(*) FROM schema_migrations") ==
          std::to_string(latest_postgres_schema_version()));
    CHECK(db.exec("SELECT version FROM checkpoint_schema") ==
          std::to_string(latest_postgres_schema_version()));
}

TEST_CASE("a database with tables but no marker is refused, unchanged", "[postgres][migrations]") {
    PgDatabase db;
    db.exec("CREATE TABLE orders (id integer PRIMARY KEY); INSERT INTO orders VALUES (1)");
    const std::string before = snapshot(db);
    std::string message;
    CHECK(code_of([&] { open_and_migrate(db, false); }, &message) == ErrorCode::NotADatabase);
    CHECK(message.find("not a checkpoint database") != std::string::npos);
    CHECK(message.find("'" + db.name() + "'") != std::string::npos);
    CHECK(code_of([&] { open_and_migrate(db, true); }) == ErrorCode::NotADatabase);
    CHECK(snapshot(db) == before);
    CHECK(db.exec("SELECT to_regclass('public.checkpoints') IS NULL") == "t");
    CHECK(db.exec("SELECT count(*) FROM orders") == "1");

    // A view or a sequence alone is not an empty database either.
    PgDatabase other;
    other.exec("CREATE SEQUENCE s");
    CHECK(code_of([&] { open_and_migrate(other, false); }) == ErrorCode::NotADatabase);
}

TEST_CASE("a marker of another application is refused, unchanged", "[postgres][migrations]") {
    PgDatabase db;
    db.exec(
        "CREATE TABLE checkpoint_schema (singleton boolean PRIMARY KEY DEFAULT true, "
        "application text NOT NULL, version integer NOT NULL); "
        "INSERT INTO checkpoint_schema (application, version) VALUES ('other-app', 1)");
    const std::string before = snapshot(db);
    std::string message;
    CHECK(code_of([&] { open_and_migrate(db, false); }, &message) == ErrorCode::NotADatabase);
    CHECK(message.find("'other-app'") != std::string::npos);
    CHECK(snapshot(db) == before);
}

TEST_CASE("a newer schema version is refused, unchanged", "[postgres][migrations]") {
    PgDatabase db;
    open_and_migrate(db, false);
    const int newer = latest_postgres_schema_version() + 1;
    db.exec("UPDATE checkpoint_schema SET version = " + std::to_string(newer));
    const std::string before = snapshot(db);
    std::string message;
    CHECK(code_of([&] { open_and_migrate(db, false); }, &message) == ErrorCode::SchemaTooNew);
    CHECK(message.find("newer than this library") != std::string::npos);
    CHECK(code_of([&] { open_and_migrate(db, true); }) == ErrorCode::SchemaTooNew);
    CHECK(snapshot(db) == before);
    CHECK(db.exec("SELECT count(*) FROM schema_migrations") ==
          std::to_string(latest_postgres_schema_version()));
}

TEST_CASE(
    "read-only opens write nothing: an empty database is NotFound, an old one "
    "SchemaTooOld",
    "[postgres][migrations][readonly]") {
    PgDatabase db;
    std::string message;
    CHECK(code_of([&] { open_and_migrate(db, true); }, &message) == ErrorCode::NotFound);
    CHECK(message.find("is empty") != std::string::npos);
    CHECK(db.exec("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                  "c.relnamespace WHERE n.nspname = 'public'") == "0");

    // A database at an older version (as if written by an older library): version 0 is
    // older than every library's.
    open_and_migrate(db, false);
    db.exec("ALTER TABLE checkpoint_schema DROP CONSTRAINT checkpoint_schema_version_check");
    db.exec("UPDATE checkpoint_schema SET version = 0");
    const std::string before = snapshot(db);
    CHECK(code_of([&] { open_and_migrate(db, true); }, &message) == ErrorCode::SchemaTooOld);
    CHECK(message.find("checkpointctl migrate") != std::string::npos);
    CHECK(snapshot(db) == before);
}

TEST_CASE(
    "a migration held off by another opener's lock past busy_timeout is Busy, and "
    "writes nothing",
    "[postgres][migrations][busy]") {
    PgDatabase db;
    pqxx::connection holder(db.url());
    pqxx::work holding(holder);
    holding.exec("SELECT pg_advisory_xact_lock(1128811344, 1)");  // 0x43484B50, 1
    std::string message;
    CHECK(code_of([&] { open_and_migrate(db, false, 200ms); }, &message) == ErrorCode::Busy);
    CHECK(message.find("busy_timeout") != std::string::npos);
    holding.abort();
    CHECK(db.exec("SELECT to_regclass('public.checkpoint_schema') IS NULL") == "t");
    open_and_migrate(db, false, 200ms);  // the lock released: it migrates
    CHECK(db.exec("SELECT to_regclass('public.checkpoint_schema') IS NULL") == "f");
}
