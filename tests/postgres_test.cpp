// The PostgreSQL backend under what only a database server has: many processes over TCP, a
// writer killed while the server commits for it, the server itself stopped and started
// again. (Everything else about behaviour is the conformance suite, which tests/CMakeLists.txt
// runs on both backends.) The server is the one tools/test.sh starts
// (CHECKPOINT_TEST_PG_URL), but for the restart test, which starts and stops a server of its
// own (tools/pg_server.sh), so that stopping it cannot disturb the tests running beside it.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "pg_database.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"
#include "test_location.hpp"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::RunOutcome;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::PgDatabase;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
using checkpoint::test::TestBackend;
using checkpoint::test::TestLocation;
using checkpoint::test::with_stderr_to;
using namespace std::chrono_literals;

namespace {

constexpr int killed_status = 128 + SIGKILL;

// "ack N" lines, N = first, first + 1, ... in order; returns how many.
long count_acks(const std::string& text, long first = 0) {
    std::istringstream lines(text);
    long acked = first;
    for (std::string line; std::getline(lines, line);) {
        if (line == "ready") continue;
        INFO("worker printed: " << line);
        REQUIRE(line == "ack " + std::to_string(acked));
        ++acked;
    }
    return acked - first;
}

// The Error code `call` throws; FAILs when it throws none.
template <typename Call>
ErrorCode code_of(Call&& call, std::string* message = nullptr) {
    try {
        call();
    } catch (const Error& e) {
        if (message) *message = e.what();
        return e.code();
    }
    FAIL("no checkpoint::Error was thrown");
    return ErrorCode::Internal;
}

// A PostgreSQL server of the test's own (tools/pg_server.sh start), stopped and deleted on
// destruction (tools/pg_server.sh stop).
class OwnServer {
public:
    OwnServer() {
        const auto started = run_command(
            {"bash", std::string(CHECKPOINT_SOURCE_DIR) + "/tools/pg_server.sh", "start"});
        INFO("tools/pg_server.sh start:\n" << started.err);
        REQUIRE(started.exit_code == 0);
        std::istringstream lines(started.out);
        for (std::string line; std::getline(lines, line);) {
            // export NAME=VALUE (printf %q: our values have no characters it would quote)
            const auto equals = line.find('=');
            if (line.rfind("export ", 0) != 0 || equals == std::string::npos) continue;
            env_[line.substr(7, equals - 7)] = line.substr(equals + 1);
        }
        REQUIRE(env_.count("CHECKPOINT_TEST_PG_URL") == 1);
        REQUIRE(env_.count("CHECKPOINT_TEST_PG_DIR") == 1);
        url_ = env_["CHECKPOINT_TEST_PG_URL"];
        dir_ = env_["CHECKPOINT_TEST_PG_DIR"];
        port_ = url_.substr(url_.rfind(':') + 1);
        port_ = port_.substr(0, port_.find('/'));
    }
    ~OwnServer() {
        run_command(
            {"bash", std::string(CHECKPOINT_SOURCE_DIR) + "/tools/pg_server.sh", "stop", dir_});
    }
    OwnServer(const OwnServer&) = delete;
    OwnServer& operator=(const OwnServer&) = delete;

    // postgresql://postgres@127.0.0.1:PORT/<database>
    std::string url(const std::string& database) const {
        return url_.substr(0, url_.rfind('/') + 1) + database;
    }
    void create_database(const std::string& name) const {
        pqxx::connection connection(url_);
        pqxx::nontransaction tx(connection);
        tx.exec0("CREATE DATABASE " + name);
    }

    // pg_ctl stop -m immediate: the server ends at once, without a checkpoint (as a crash).
    void stop_immediately() const {
        const auto result = pg_ctl({"-m", "immediate", "-w", "-t", "60", "stop"});
        INFO("pg_ctl stop:\n" << result.out << result.err);
        REQUIRE(result.exit_code == 0);
    }
    // pg_ctl start on the same port (the socket directory is in postgresql.conf); it
    // recovers from its WAL first.
    void start() const {
        const auto result =
            pg_ctl({"-l", dir_ + "/log", "-w", "-t", "120", "-o", "-p " + port_, "start"});
        INFO("pg_ctl start:\n"
             << result.out << result.err << "\nlog:\n"
             << read_file(dir_ + "/log"));
        REQUIRE(result.exit_code == 0);
    }

private:
    // Runs pg_ctl as the cluster's owner, as tools/pg_server.sh does.
    checkpoint::test::CommandResult pg_ctl(const std::vector<std::string>& args) const {
        std::vector<std::string> argv;
        if (::geteuid() == 0) argv = {"runuser", "-u", "postgres", "--"};
        const std::string bin = env_.count("CHECKPOINT_TEST_PG_BIN")
                                    ? env_.at("CHECKPOINT_TEST_PG_BIN")
                                    : std::string("/usr/lib/postgresql/15/bin");
        argv.push_back(bin + "/pg_ctl");
        argv.push_back("-D");
        argv.push_back(dir_ + "/data");
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv);
    }

    std::map<std::string, std::string> env_;
    std::string url_;
    std::string dir_;
    std::string port_;
};

}  // namespace

TEST_CASE("8 processes saving the same stages over TCP lose and repeat no version",
          "[postgres][concurrency]") {
    constexpr int processes = 8;
    const int saves = checkpoint::test::scaled(500, 50);
    checkpoint::test::announce_scale(
        "postgres_test: 8 processes over TCP",
        std::to_string(processes) + " x " + std::to_string(saves) + " saves");
    TestLocation dir(TestBackend::Postgres);
    REQUIRE(dir.location().string().find("@127.0.0.1:") != std::string::npos);  // TCP
    // Every process saves shared-0 ... shared-(saves-1): each stage gets one version from
    // each process, all at once.
    const auto gate = dir / "gate";
    std::vector<std::unique_ptr<ChildProcess>> children;
    for (int p = 0; p < processes; ++p) {
        std::vector<std::string> argv{CHECKPOINT_TEST_WORKER,
                                      "save",
                                      dir.location().string(),
                                      "shared",
                                      std::to_string(saves),
                                      "--gate",
                                      gate.string()};
        if (p % 2 == 1) argv.emplace_back("begin");  // half of them begin each stage first
        children.push_back(std::make_unique<ChildProcess>(
            with_stderr_to((dir / ("worker-" + std::to_string(p) + ".err")).string(), argv)));
    }
    for (auto& child : children) {
        const auto ready = child->read_line(60s);
        REQUIRE(ready);
        REQUIRE(*ready == "ready");
    }
    std::ofstream(gate).put('\n');
    std::set<std::int64_t> pids;
    for (int p = 0; p < processes; ++p) {
        const std::string out = children[p]->read_rest();
        const int status = children[p]->wait();
        INFO("worker " << p << " stderr:\n"
                       << read_file(dir / ("worker-" + std::to_string(p) + ".err")));
        CHECK(status == 0);
        CHECK(count_acks(out) == saves);
        pids.insert(children[p]->pid());
    }

    CheckpointManager manager(dir.location());
    for (int i = 0; i < saves; ++i) {
        const std::string stage = "shared-" + std::to_string(i);
        HistoryFilter filter;
        filter.stage = stage;
        filter.status = Status::Completed;
        std::vector<std::int64_t> versions;
        std::set<std::string> runs;
        for (const auto& row : manager.history(filter)) {
            versions.push_back(row.version);
            runs.insert(row.run_id);
        }
        INFO("stage " << stage);
        // In id order, the versions are exactly 1 .. processes: none lost, none repeated,
        // and they grow with the ids.
        std::vector<std::int64_t> expected;
        for (int v = 1; v <= processes; ++v) expected.push_back(v);
        CHECK(versions == expected);
        CHECK(runs.size() == static_cast<std::size_t>(processes));
        const auto latest = manager.latest(stage);
        REQUIRE(latest);
        CHECK(latest->status == Status::Completed);
        CHECK(latest->version == processes);
    }
    const auto runs = manager.runs();
    REQUIRE(runs.size() == static_cast<std::size_t>(processes));
    for (const auto& run : runs) {
        CHECK(run.outcome == RunOutcome::Finished);
        CHECK(run.stages_completed == saves);
        CHECK(pids.count(run.pid) == 1);
    }
    CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE status = 'completed'") ==
          std::to_string(processes * saves));
    CHECK(manager.verify().empty());
}

TEST_CASE("writers killed while saving lose no acknowledged save", "[postgres][crash]") {
    const int rounds = checkpoint::test::scaled(20, 5);
    constexpr int writers = 4;
    checkpoint::test::announce_scale(
        "postgres_test: kill -9 of writers",
        std::to_string(rounds) + " rounds of " + std::to_string(writers) + " kills");
    const unsigned seed = std::random_device{}();
    INFO("random seed " << seed);
    std::mt19937 rng(seed);
    TestLocation dir(TestBackend::Postgres);
    std::map<std::string, long> acked_of;  // prefix -> acknowledged saves
    for (int round = 0; round < rounds; ++round) {
        std::vector<std::unique_ptr<ChildProcess>> children;
        std::vector<std::string> prefixes;
        for (int w = 0; w < writers; ++w) {
            prefixes.push_back("r" + std::to_string(round) + "w" + std::to_string(w));
            std::vector<std::string> argv{CHECKPOINT_TEST_WORKER, "save", dir.location().string(),
                                          prefixes.back(), "1000000"};
            if (w % 2 == 1) argv.emplace_back("begin");
            children.push_back(std::make_unique<ChildProcess>(argv));
        }
        // Most kills after a few acknowledged saves, so that they land mid-save (in a
        // transaction, or while the server commits it); some at start-up.
        std::this_thread::sleep_for(
            std::chrono::microseconds(std::uniform_int_distribution<int>(0, 150'000)(rng)));
        for (auto& child : children) child->kill(SIGKILL);
        for (int w = 0; w < writers; ++w) {
            INFO("round " << round << " writer " << prefixes[w]);
            REQUIRE(children[w]->wait() == killed_status);
            acked_of[prefixes[w]] = count_acks(children[w]->read_rest());
        }
        // The server may still be finishing a commit a killed writer had sent: once it has
        // ended their sessions, what is there stays there.
        dir.settle();
        CheckpointManager checker(dir.location());
        for (const auto& [prefix, acked] : acked_of) {
            INFO("writer " << prefix << ": " << acked << " saves acknowledged");
            long present = 0;
            while (checker.has_checkpoint(prefix + "-" + std::to_string(present))) ++present;
            CHECK(present >= acked);      // every acknowledged save
            CHECK(present <= acked + 1);  // and at most the one in flight
            CHECK_FALSE(checker.has_checkpoint(prefix + "-" + std::to_string(present + 1)));
        }
        CHECK(checker.verify().empty());
        for (const auto& run : checker.runs()) CHECK(run.outcome == RunOutcome::Died);
    }
}

TEST_CASE(
    "a server stopped mid-run: calls fail with Unavailable past reconnect_timeout, a "
    "writer waits and goes on, nothing lost",
    "[postgres][restart]") {
    // Its own server: stopping the shared one would fail the tests running beside this one.
    OwnServer server;
    const std::string database = checkpoint::test::pg_unique_name();
    server.create_database(database);
    const std::string url = server.url(database);
    TempDir scratch;

    // A manager that does not wait for the server (reconnect_timeout 0: one attempt).
    Options impatient;
    impatient.reconnect_timeout = std::chrono::milliseconds(0);
    CheckpointManager manager(url, impatient);
    manager.save_checkpoint("before");
    manager.begin_stage("during");
    // A writer process saving in a loop while the server goes away (the default
    // reconnect_timeout, 30 s: it waits for the server).
    const auto err_file = scratch / "worker.err";
    ChildProcess worker(
        with_stderr_to(err_file.string(), {CHECKPOINT_TEST_WORKER, "save", url, "w", "1000000"}));
    for (int i = 0; i < 5; ++i) {
        const auto line = worker.read_line(60s);
        REQUIRE(line);
        REQUIRE(*line == "ack " + std::to_string(i));
    }

    server.stop_immediately();

    // While it is down: every call fails with Unavailable, naming the server, not hanging.
    std::string message;
    CHECK(code_of([&] { manager.save_checkpoint("during"); }, &message) == ErrorCode::Unavailable);
    CHECK_THAT(message, Catch::Contains("127.0.0.1:"));
    CHECK_THAT(message, Catch::Contains("reconnect_timeout"));
    CHECK(code_of([&] { (void)manager.has_checkpoint("before"); }) == ErrorCode::Unavailable);
    CHECK(code_of([&] { (void)manager.history(); }) == ErrorCode::Unavailable);
    CHECK(code_of([&] { manager.save_checkpoint("during"); }) == ErrorCode::Unavailable);
    // A new manager cannot open the database either.
    CHECK(code_of([&] { CheckpointManager another(url, impatient); }) == ErrorCode::Unavailable);

    server.start();

    // The writer reconnected by itself and goes on; then it is killed.
    std::string out;
    for (int i = 0; i < 5; ++i) {
        const auto line = worker.read_line(120s);
        INFO("worker stderr:\n" << read_file(err_file));
        REQUIRE(line);
        out += *line + "\n";
    }
    worker.kill(SIGKILL);
    out += worker.read_rest();
    worker.wait();
    const std::string err = read_file(err_file);
    INFO("worker stderr:\n" << err);
    CHECK_THAT(err, !Catch::Contains("error:"));
    const long acked = 5 + count_acks(out, 5);

    // The same manager reconnects on its next call: nothing acknowledged was lost.
    CHECK(manager.has_checkpoint("before"));
    const auto during = manager.latest("during");
    REQUIRE(during);
    CHECK(during->status == Status::Started);  // its run (this manager's) goes on
    manager.save_checkpoint("during");
    CHECK(manager.has_checkpoint("during"));
    CHECK(manager.latest("during")->duration.has_value());
    long present = 0;
    while (manager.has_checkpoint("w-" + std::to_string(present))) ++present;
    INFO(acked << " saves of the writer acknowledged");
    CHECK(present >= acked);
    CHECK(present <= acked + 1);  // the save in flight when the writer was killed, at most
    CHECK(manager.verify().empty());
    const auto runs = manager.runs();
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].run_id == manager.run_id());
    CHECK(runs[0].outcome == RunOutcome::Running);
    CHECK(runs[1].outcome == RunOutcome::Died);  // the writer's (it did not close its run)
}

TEST_CASE("metadata is jsonb that psql's operators read", "[postgres][metadata]") {
    // The PostgreSQL counterpart of staleness_test's sqlite3 json_extract test ([sqlite]).
    TestLocation dir(TestBackend::Postgres);
    {
        CheckpointManager manager(dir.location());
        checkpoint::SaveOptions save;
        save.metadata = {
            {"rows", 1234}, {"source", "s3://bucket/key"}, {"nested", {{"list", {1, 2, 3}}}}};
        manager.save_checkpoint("ingest", save);
        manager.save_checkpoint("plain");
    }
    CHECK(dir.query("SELECT metadata->>'rows' FROM checkpoints WHERE stage = 'ingest'") == "1234");
    CHECK(dir.query("SELECT metadata #>> '{nested,list,1}' FROM history WHERE stage = 'ingest'") ==
          "2");
    CHECK(dir.query("SELECT jsonb_typeof(metadata) FROM checkpoints WHERE stage = 'ingest'") ==
          "object");
    CHECK(dir.query("SELECT stage FROM checkpoints WHERE (metadata->>'rows')::int > 1000") ==
          "ingest");
    CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE metadata @> '{\"source\": "
                    "\"s3://bucket/key\"}'") == "1");
    CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE stage = 'plain' AND metadata IS "
                    "NULL") == "1");
    CheckpointManager reopened(dir.location());
    const auto latest = reopened.latest("ingest");
    REQUIRE(latest);
    CHECK(latest->metadata["rows"] == 1234);
    CHECK(latest->metadata["nested"]["list"][2] == 3);
}

TEST_CASE("a save blocked past the busy timeout by a lock throws Busy and writes nothing",
          "[postgres][concurrency]") {
    // The PostgreSQL counterpart of concurrency_test's SQLite write-lock test ([sqlite]):
    // another session holds a lock the save needs (its pipeline's row) for longer than
    // Options::busy_timeout.
    TestLocation dir(TestBackend::Postgres);
    Options options;
    options.busy_timeout = 300ms;
    CheckpointManager manager(dir.location(), options);
    manager.save_checkpoint("first");
    pqxx::connection locker(dir.pg()->url());
    {
        pqxx::work hold(locker);
        REQUIRE(hold.exec("SELECT * FROM pipelines WHERE pipeline = 'default' FOR UPDATE").size() ==
                1);
        const auto started = std::chrono::steady_clock::now();
        std::string message;
        CHECK(code_of([&] { manager.save_checkpoint("second"); }, &message) == ErrorCode::Busy);
        CHECK(std::chrono::steady_clock::now() - started >= 300ms);
        CHECK_THAT(message, Catch::Contains("busy timeout"));
        hold.abort();
    }
    CHECK_FALSE(manager.has_checkpoint("second"));
    CHECK(dir.query("SELECT count(*) FROM checkpoints") == "1");
    // Once the lock is gone, the same save works.
    manager.save_checkpoint("second");
    CHECK(manager.has_checkpoint("second"));
}

TEST_CASE(
    "a stage write the server refuses writes nothing, and a refused flush after the commit "
    "is waited for again",
    "[postgres][write]") {
    // A save is two round trips (postgres_stage_write.cpp); the second sends the row, the
    // COMMIT and the write that waits for the WAL flush. A trigger refuses the row: nothing
    // is written, the transaction is rolled back and the next save works. A trigger refuses
    // the flush write once, after the COMMIT: the save committed, the flush is waited for
    // again, and the save is acknowledged once.
    TestLocation dir(TestBackend::Postgres);
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("first");
    dir.pg()->exec(
        "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.stage = 'refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER refuse_row BEFORE INSERT ON checkpoints FOR EACH ROW "
        "EXECUTE FUNCTION refuse_row()");
    std::string message;
    (void)code_of([&] { manager.save_checkpoint("refused"); }, &message);  // FAILs if none
    CHECK_THAT(message, Catch::Contains("refused by the test"));
    CHECK_FALSE(manager.has_checkpoint("refused"));
    CHECK(dir.query("SELECT count(*) FROM checkpoints") == "1");
    CHECK(dir.query("SELECT count(*) FROM stage_heads WHERE stage = 'refused'") == "0");
    manager.save_checkpoint("second");
    CHECK(manager.latest("second")->version == 1);

    dir.pg()->exec(
        "CREATE SEQUENCE flush_attempts; "
        "CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF nextval('flush_attempts') = 1 THEN RAISE EXCEPTION 'flush refused once'; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER refuse_once BEFORE UPDATE ON runs FOR EACH ROW "
        "EXECUTE FUNCTION refuse_once()");
    manager.save_checkpoint("flushed");
    CHECK(dir.query("SELECT last_value FROM flush_attempts") == "2");
    CHECK(manager.latest("flushed")->version == 1);
    CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE stage = 'flushed'") == "1");
    manager.save_checkpoint("flushed");
    CHECK(manager.latest("flushed")->version == 2);
    CHECK(manager.verify().empty());
}

TEST_CASE("a database that is not ours, or is newer, is refused and left unchanged",
          "[postgres][open]") {
    // The PostgreSQL counterparts of open_test's file checks (SQLite only).
    SECTION("tables but no checkpoint_schema marker: NotADatabase") {
        TestLocation dir(TestBackend::Postgres);
        dir.exec("CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric)");
        dir.exec("INSERT INTO invoices VALUES (1, 9.5)");
        std::string message;
        CHECK(code_of([&] { CheckpointManager manager(dir.location()); }, &message) ==
              ErrorCode::NotADatabase);
        CHECK_THAT(message, Catch::Contains(dir.described()) && Catch::Contains("unchanged"));
        CHECK(dir.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'") ==
              std::vector<std::string>{"invoices"});
        CHECK(dir.query("SELECT count(*) FROM invoices") == "1");
    }
    SECTION("another application's marker: NotADatabase") {
        TestLocation dir(TestBackend::Postgres);
        { CheckpointManager manager(dir.location()); }
        dir.exec("UPDATE checkpoint_schema SET application = 'someone-else'");
        CHECK(code_of([&] { CheckpointManager manager(dir.location()); }) ==
              ErrorCode::NotADatabase);
        CHECK(dir.query("SELECT application FROM checkpoint_schema") == "someone-else");
    }
    SECTION("a schema version newer than the library's: SchemaTooNew, nothing written") {
        TestLocation dir(TestBackend::Postgres);
        {
            CheckpointManager manager(dir.location());
            manager.save_checkpoint("s");
        }
        dir.exec("UPDATE checkpoint_schema SET version = version + 1");
        const std::string version = dir.query("SELECT version FROM checkpoint_schema");
        for (const bool read_only : {false, true}) {
            INFO("read_only " << read_only);
            Options options;
            options.read_only = read_only;
            std::string message;
            CHECK(code_of([&] { CheckpointManager manager(dir.location(), options); }, &message) ==
                  ErrorCode::SchemaTooNew);
            CHECK_THAT(message, Catch::Contains("newer"));
        }
        CHECK(dir.query("SELECT version FROM checkpoint_schema") == version);
        CHECK(dir.query("SELECT count(*) FROM checkpoints") == "1");
        CHECK(dir.query("SELECT count(*) FROM runs") == "1");
    }
}

TEST_CASE("outputs live in the database in 1 MiB chunks, and damage to them is found",
          "[postgres][outputs]") {
    // The PostgreSQL counterpart of outputs_test's damaged output files ([sqlite]).
    TestLocation dir(TestBackend::Postgres);
    std::string bytes(2 * 1024 * 1024 + 123, '\0');
    std::mt19937 rng(7);
    for (auto& byte : bytes) byte = static_cast<char>(rng() & 0xff);
    CheckpointManager manager(dir.location());
    checkpoint::SaveOptions save;
    save.output = bytes;
    manager.save_checkpoint("big", save);
    CHECK(dir.query("SELECT count(*), sum(length(data)) FROM output_chunks") ==
          "3|" + std::to_string(bytes.size()));
    CHECK(manager.load_output("big") == bytes);
    CHECK(manager.verify().empty());

    SECTION("a chunk deleted") {
        dir.exec("CREATE TABLE aside AS SELECT * FROM output_chunks WHERE chunk = 1");
        dir.exec("DELETE FROM output_chunks WHERE chunk = 1");
    }
    SECTION("a byte altered, the size unchanged") {
        dir.exec("CREATE TABLE aside AS SELECT * FROM output_chunks WHERE chunk = 1");
        dir.exec(
            "UPDATE output_chunks SET data = set_byte(data, 5, get_byte(data, 5) # 1) "
            "WHERE chunk = 1");
    }
    const auto problems = manager.verify();
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains("output_chunks"));
    CHECK(code_of([&] { (void)manager.load_output("big"); }) == ErrorCode::OutputDamaged);
    CHECK(code_of([&] { (void)manager.load_output("big", 1); }) == ErrorCode::OutputDamaged);
    // Repaired, it loads and verifies again.
    dir.exec("DELETE FROM output_chunks WHERE chunk = 1");
    dir.exec("INSERT INTO output_chunks SELECT * FROM aside");
    CHECK(manager.verify().empty());
    CHECK(manager.load_output("big") == bytes);
}
