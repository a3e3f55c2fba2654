// I/O faults: through a test VFS (support/fault_vfs.hpp) registered as SQLite's default,
// the Nth read, write, sync, lock, open, truncate or file-size call of an operation fails,
// for every N the operation makes, once (transient) and from then on (persistent). Each
// time the operation either succeeds or throws checkpoint::Error naming the database file;
// afterwards the database is intact and holds exactly the state before or exactly the state
// after the operation (also as a crash at that moment would leave it: a copy of the files
// opened afresh, which recovers the WAL); and the same manager works again.
// CHECKPOINT_TEST_SCALE (support/scale.hpp) sweeps an evenly spread sample of the Ns of each
// kind of fault, from a random start (the sanitizer runs of tools/test.sh); unset, every N.
#include <checkpoint/checkpoint_manager.hpp>

#include "fault_vfs.hpp"
#include "raw_db.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::Options;
using checkpoint::test::all_io_kinds;
using checkpoint::test::FaultVfs;
using checkpoint::test::IoCounts;
using checkpoint::test::IoKind;
using checkpoint::test::RawDb;
using checkpoint::test::TempDir;

namespace {

// The largest N swept per kind (every call of an operation is swept up to it).
constexpr std::int64_t max_nth = 400;

Options quiet_options() {
    Options options;
    options.logger = std::make_shared<spdlog::logger>(
        "io_fault", std::make_shared<spdlog::sinks::null_sink_mt>());
    options.busy_timeout = std::chrono::milliseconds(5'000);
    return options;
}

// A fault to inject: the kind of call and the error it returns.
struct FaultVariant {
    IoKind kind;
    int code;
    const char* code_name;
};

const std::vector<FaultVariant>& fault_variants() {
    static const std::vector<FaultVariant> variants{
        {IoKind::Read, SQLITE_IOERR_READ, "SQLITE_IOERR_READ"},
        {IoKind::Write, SQLITE_IOERR_WRITE, "SQLITE_IOERR_WRITE"},
        {IoKind::Write, SQLITE_FULL, "SQLITE_FULL"},
        {IoKind::Sync, SQLITE_IOERR_FSYNC, "SQLITE_IOERR_FSYNC"},
        {IoKind::Lock, SQLITE_IOERR_LOCK, "SQLITE_IOERR_LOCK"},
        {IoKind::Lock, SQLITE_BUSY, "SQLITE_BUSY"},
        {IoKind::Open, SQLITE_CANTOPEN, "SQLITE_CANTOPEN"},
        {IoKind::Truncate, SQLITE_IOERR_TRUNCATE, "SQLITE_IOERR_TRUNCATE"},
        {IoKind::FileSize, SQLITE_IOERR_FSTAT, "SQLITE_IOERR_FSTAT"},
    };
    return variants;
}

// Everything the library stores, without what differs from one run to the next (times,
// run ids, pids): the rows of every table in a fixed order, runs by their rowid.
std::string dump_state(const std::filesystem::path& db_path) {
    if (!std::filesystem::exists(db_path) || std::filesystem::file_size(db_path) == 0)
        return "header 0|0|0\n";
    RawDb db(db_path);
    std::ostringstream out;
    out << "header "
        << db.value(
               "SELECT (SELECT application_id FROM pragma_application_id()), "
               "(SELECT user_version FROM pragma_user_version()), "
               "(SELECT count(*) FROM sqlite_schema)")
        << "\n";
    if (db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'checkpoints'") == "0")
        return out.str();
    const char* queries[] = {
        "SELECT version, name FROM schema_migrations ORDER BY version",
        "SELECT rowid, pipeline, outcome, ended_at IS NULL FROM runs ORDER BY rowid",
        "SELECT c.id, c.pipeline, ifnull(c.stage, '<all>'), c.status, c.version, "
        "ifnull(c.message, ''), (SELECT r.rowid FROM runs r WHERE r.run_id = c.run_id) "
        "FROM checkpoints c ORDER BY c.id",
        "SELECT pipeline, stage, status, version, head_id FROM stage_heads ORDER BY 1, 2",
        "SELECT pipeline, cleared_id FROM pipelines ORDER BY 1",
    };
    for (const char* sql : queries) {
        out << sql << "\n";
        for (const auto& row : db.rows(sql)) out << "  " << row << "\n";
    }
    return out.str();
}

std::string integrity(const std::filesystem::path& db_path) {
    if (!std::filesystem::exists(db_path)) return "ok";
    RawDb db(db_path);
    const auto rows = db.rows("PRAGMA integrity_check");
    std::string joined;
    for (const auto& row : rows) joined += (joined.empty() ? "" : "; ") + row;
    return joined;
}

// The database as a crash at this moment would leave it: the file and its WAL copied into
// `into` (without the shared memory), so that opening the copy recovers the WAL afresh.
std::filesystem::path crash_copy(const std::filesystem::path& db_path,
                                 const std::filesystem::path& into) {
    std::filesystem::create_directories(into);
    const auto copy = into / db_path.filename();
    for (const char* suffix : {"", "-wal", "-journal"}) {
        const std::filesystem::path from = db_path.string() + suffix;
        if (std::filesystem::exists(from))
            std::filesystem::copy_file(from, copy.string() + suffix,
                                       std::filesystem::copy_options::overwrite_existing);
    }
    return copy;
}

void copy_database(const std::filesystem::path& from_dir, const std::filesystem::path& to_dir) {
    for (const char* name : {"checkpoints.db", "checkpoints.db-wal"}) {
        if (std::filesystem::exists(from_dir / name))
            std::filesystem::copy_file(from_dir / name, to_dir / name);
    }
}

// The result of an operation: what it returned (as text), or the error it threw.
struct Outcome {
    enum class Kind { Returned, Error, OtherException } kind = Kind::Returned;
    std::string text;  // the value returned, or what()
};

// Runs `op`, capturing its outcome.
Outcome capture(const std::function<std::string()>& op) {
    Outcome outcome;
    try {
        outcome.text = op();
    } catch (const Error& e) {
        outcome.kind = Outcome::Kind::Error;
        outcome.text = e.what();
    } catch (const std::exception& e) {
        outcome.kind = Outcome::Kind::OtherException;
        outcome.text = std::string(typeid(e).name()) + ": " + e.what();
    } catch (...) {
        outcome.kind = Outcome::Kind::OtherException;
        outcome.text = "a non-std exception";
    }
    return outcome;
}

std::string describe_rows(const std::vector<Checkpoint>& rows) {
    std::string text;
    for (const auto& row : rows) {
        text += row.stage + ":" + std::string(checkpoint::to_string(row.status)) + ":" +
                std::to_string(row.version) + " ";
    }
    return text;
}

// Totals of one sweep.
struct Sweep {
    // Picks the Ns swept (see nths below).
    std::uint64_t seed = std::random_device{}();
    std::mt19937_64 rng{seed};
    std::int64_t points = 0;    // the Ns a full sweep would run, over every kind of fault
    std::int64_t runs = 0;      // operations run with a fault armed
    std::int64_t injected = 0;  // faults that fired (the Nth call was reached)
    std::int64_t failed = 0;    // operations that threw Error
    std::int64_t lost = 0;      // cases whose state was neither before nor after (or wrong)
    std::vector<std::string> problems;

    void problem(const std::string& text) {
        ++lost;
        if (problems.size() < 20) problems.push_back(text);
    }

    // The Ns to sweep for an operation that makes `calls` calls of a kind: every one up to
    // max_nth, or, at a CHECKPOINT_TEST_SCALE below 100, an evenly spread sample of them
    // (at least one).
    std::vector<std::int64_t> nths(std::int64_t calls) {
        const auto count = static_cast<std::size_t>(std::min(calls, max_nth));
        points += static_cast<std::int64_t>(count);
        std::vector<std::int64_t> result;
        for (const std::size_t index : checkpoint::test::scaled_sample(count, 1, rng))
            result.push_back(static_cast<std::int64_t>(index) + 1);
        return result;
    }
};

void report(const char* operation, const Sweep& sweep, const IoCounts& counts) {
    std::ostringstream calls;
    for (IoKind kind : all_io_kinds)
        calls << " " << checkpoint::test::to_string(kind) << "=" << counts[static_cast<int>(kind)];
    checkpoint::test::announce_scale(std::string("io_fault_test: ") + operation,
                                     std::to_string(sweep.runs) + " of " +
                                         std::to_string(sweep.points) + " fault points (seed " +
                                         std::to_string(sweep.seed) + ")");
    std::cout << "io_fault_test: " << operation << ": calls" << calls.str() << "; " << sweep.runs
              << " runs, injected " << sweep.injected << " faults, " << sweep.failed
              << " threw Error, " << sweep.lost << " lost" << std::endl;
    for (const auto& problem : sweep.problems) std::cout << "  PROBLEM: " << problem << "\n";
}

// One operation on a manager opened over an existing database, swept over every call.
struct ManagerOperation {
    const char* name;
    // Runs the operation; returns what it read (reads) or "" (writes).
    std::function<std::string(CheckpointManager&)> run;
};

// The database every manager operation starts from: a finished run with saves, a clear and
// a stage left begun. With `fill_wal`, more saves until the WAL is a few frames short of
// SQLite's automatic checkpoint (1000 pages), so that the next write also checkpoints.
void make_template(const std::filesystem::path& dir, bool fill_wal) {
    CheckpointManager setup(dir, quiet_options());
    setup.save_checkpoint("extract");
    setup.save_checkpoint("transform");
    setup.clear_checkpoints();
    setup.save_checkpoint("extract");
    setup.begin_stage("load");
    const auto wal = dir / "checkpoints.db-wal";
    const auto frames = [&] { return (std::filesystem::file_size(wal) - 32) / (4096 + 24); };
    while (fill_wal && frames() < 990) setup.save_checkpoint("filler");
}

void sweep_manager_operation(const ManagerOperation& operation, bool fill_wal = false) {
    FaultVfs vfs;
    vfs.set_real_sync(false);  // durability is not under test here; speed is welcome
    TempDir work;
    const auto template_dir = work / "template";
    make_template(template_dir, fill_wal);

    // The reference run: no fault. Its counts bound the sweep; its states are the two
    // acceptable ones.
    std::string before;
    std::string after;
    std::string expected_result;
    IoCounts counts{};
    {
        const auto dir = work / "reference";
        std::filesystem::create_directories(dir);
        copy_database(template_dir, dir);
        CheckpointManager manager(dir, quiet_options());
        before = dump_state(dir / "checkpoints.db");
        vfs.reset_counts();
        expected_result = operation.run(manager);
        counts = vfs.counts();
        after = dump_state(dir / "checkpoints.db");
    }
    const bool is_read = before == after;

    Sweep sweep;
    int case_number = 0;
    for (const FaultVariant& variant : fault_variants()) {
        const std::int64_t calls = counts[static_cast<int>(variant.kind)];
        for (bool persistent : {false, true}) {
            // A persistent BUSY would only wait out the busy timeout; with a full WAL (4 MB
            // copied per case) the transient faults suffice, to keep the test fast.
            if (persistent && (variant.code == SQLITE_BUSY || fill_wal)) continue;
            for (const std::int64_t nth : sweep.nths(calls)) {
                const auto dir = work / ("case" + std::to_string(++case_number));
                std::filesystem::create_directories(dir);
                copy_database(template_dir, dir);
                const auto db_path = dir / "checkpoints.db";
                std::ostringstream label;
                label << operation.name << ", " << checkpoint::test::to_string(variant.kind)
                      << " call " << nth << " fails with " << variant.code_name
                      << (persistent ? " (and every later one)" : " (once)");
                const std::string what = label.str();

                auto manager = std::make_unique<CheckpointManager>(dir, quiet_options());
                vfs.reset_counts();
                vfs.fail_nth(variant.kind, nth, variant.code, persistent);
                const Outcome outcome = capture([&] { return operation.run(*manager); });
                vfs.clear_fault();
                ++sweep.runs;
                if (vfs.fault_hits() > 0) ++sweep.injected;

                INFO(what);
                INFO("outcome: " << outcome.text);
                REQUIRE(outcome.kind != Outcome::Kind::OtherException);
                if (outcome.kind == Outcome::Kind::Error) {
                    ++sweep.failed;
                    CHECK(outcome.text.find(db_path.string()) != std::string::npos);
                } else if (is_read) {
                    CHECK(outcome.text == expected_result);
                }

                // The database as this manager sees it, and as a crash now would leave it.
                const std::string expected =
                    outcome.kind == Outcome::Kind::Returned ? after : before;
                const std::string live = dump_state(db_path);
                const auto copy = crash_copy(db_path, dir / "crash");
                const std::string recovered = dump_state(copy);
                CHECK(integrity(db_path) == "ok");
                CHECK(integrity(copy) == "ok");
                if (live != expected) {
                    sweep.problem(what + ": live state is " +
                                  (live == before  ? "the state before"
                                   : live == after ? "the state after"
                                                   : "neither before nor after") +
                                  " although the operation " +
                                  (outcome.kind == Outcome::Kind::Returned ? "returned" : "threw"));
                }
                if (recovered != expected) {
                    sweep.problem(what + ": after a crash the state would be " +
                                  (recovered == before  ? "the state before"
                                   : recovered == after ? "the state after"
                                                        : "neither before nor after") +
                                  " although the operation " +
                                  (outcome.kind == Outcome::Kind::Returned ? "returned" : "threw"));
                }
                CHECK(live == expected);
                CHECK(recovered == expected);

                // The same manager works again, and a fresh one agrees.
                const Outcome again =
                    capture([&] { return manager->save_checkpoint("after_fault"), ""; });
                INFO("save after the fault: " << again.text);
                CHECK(again.kind == Outcome::Kind::Returned);
                if (again.kind != Outcome::Kind::Returned)
                    sweep.problem(what + ": the same manager failed afterwards: " + again.text);
                manager.reset();
                CheckpointManager fresh(dir, quiet_options());
                CHECK(fresh.verify().empty());
                CHECK(fresh.has_checkpoint("after_fault") ==
                      (again.kind == Outcome::Kind::Returned));
                CHECK(fresh.has_checkpoint("extract"));
                fresh.save_checkpoint("fresh");
                CHECK(fresh.has_checkpoint("fresh"));
            }
        }
    }
    report(operation.name, sweep, counts);
    CHECK(sweep.injected > 0);
    CHECK(sweep.lost == 0);
}

}  // namespace

TEST_CASE("an I/O fault during the open (and migration) of a new database", "[fault]") {
    FaultVfs vfs;
    vfs.set_real_sync(false);
    TempDir work;
    const std::string migrated = [&] {
        const auto dir = work / "reference";
        vfs.reset_counts();
        { CheckpointManager manager(dir, quiet_options()); }
        return dump_state(dir / "checkpoints.db");
    }();
    const IoCounts counts = [&] {
        const auto dir = work / "counted";
        vfs.reset_counts();
        CheckpointManager manager(dir, quiet_options());
        return vfs.counts();
    }();
    const std::string empty = "header 0|0|0\n";

    Sweep sweep;
    int case_number = 0;
    for (const FaultVariant& variant : fault_variants()) {
        const std::int64_t calls = counts[static_cast<int>(variant.kind)];
        for (bool persistent : {false, true}) {
            if (persistent && variant.code == SQLITE_BUSY) continue;
            for (const std::int64_t nth : sweep.nths(calls)) {
                const auto dir = work / ("case" + std::to_string(++case_number));
                const auto db_path = dir / "checkpoints.db";
                std::ostringstream label;
                label << "open, " << checkpoint::test::to_string(variant.kind) << " call " << nth
                      << " fails with " << variant.code_name
                      << (persistent ? " (and every later one)" : " (once)");
                const std::string what = label.str();

                vfs.reset_counts();
                vfs.fail_nth(variant.kind, nth, variant.code, persistent);
                std::unique_ptr<CheckpointManager> manager;
                const Outcome outcome = capture([&] {
                    manager = std::make_unique<CheckpointManager>(dir, quiet_options());
                    return std::string();
                });
                vfs.clear_fault();
                ++sweep.runs;
                if (vfs.fault_hits() > 0) ++sweep.injected;

                INFO(what);
                INFO("outcome: " << outcome.text);
                REQUIRE(outcome.kind != Outcome::Kind::OtherException);
                if (outcome.kind == Outcome::Kind::Error) {
                    ++sweep.failed;
                    CHECK(outcome.text.find(db_path.string()) != std::string::npos);
                }
                const std::string live = dump_state(db_path);
                const auto copy = crash_copy(db_path, dir / "crash");
                const std::string recovered = dump_state(copy);
                CHECK(integrity(db_path) == "ok");
                CHECK(integrity(copy) == "ok");
                // A manager that opened has the whole schema; one that threw left the file
                // new (or, when the failure came after the migration's commit, migrated).
                const bool live_ok = outcome.kind == Outcome::Kind::Returned
                                         ? live == migrated
                                         : (live == empty || live == migrated);
                const bool recovered_ok = outcome.kind == Outcome::Kind::Returned
                                              ? recovered == migrated
                                              : (recovered == empty || recovered == migrated);
                if (!live_ok) sweep.problem(what + ": half-migrated database:\n" + live);
                if (!recovered_ok)
                    sweep.problem(what + ": after a crash, half-migrated database:\n" + recovered);
                CHECK(live_ok);
                CHECK(recovered_ok);

                // Works once the fault is gone: the same manager, or (it threw) a new one.
                const Outcome again = capture([&] {
                    if (!manager)
                        manager = std::make_unique<CheckpointManager>(dir, quiet_options());
                    manager->save_checkpoint("after_fault");
                    return std::string();
                });
                INFO("after the fault: " << again.text);
                CHECK(again.kind == Outcome::Kind::Returned);
                if (again.kind != Outcome::Kind::Returned)
                    sweep.problem(what + ": the database is unusable afterwards: " + again.text);
                manager.reset();
                CheckpointManager fresh(dir, quiet_options());
                CHECK(fresh.verify().empty());
                CHECK(fresh.has_checkpoint("after_fault"));
            }
        }
    }
    report("open with migration", sweep, counts);
    CHECK(sweep.injected > 0);
    CHECK(sweep.lost == 0);
}

TEST_CASE("an I/O fault during save_checkpoint", "[fault]") {
    sweep_manager_operation({"save_checkpoint", [](CheckpointManager& manager) {
                                 manager.save_checkpoint("load");
                                 return std::string();
                             }});
}

TEST_CASE("an I/O fault during a save_checkpoint that checkpoints the WAL", "[fault]") {
    sweep_manager_operation({"save_checkpoint with a WAL checkpoint",
                             [](CheckpointManager& manager) {
                                 manager.save_checkpoint("load");
                                 return std::string();
                             }},
                            true);
}

TEST_CASE("an I/O fault during clear_checkpoints", "[fault]") {
    sweep_manager_operation({"clear_checkpoints", [](CheckpointManager& manager) {
                                 manager.clear_checkpoints();
                                 return std::string();
                             }});
}

TEST_CASE("an I/O fault during reads (has_checkpoint, history)", "[fault]") {
    sweep_manager_operation({"reads", [](CheckpointManager& manager) {
                                 std::string result;
                                 result += manager.has_checkpoint("extract") ? "extract " : "- ";
                                 result +=
                                     manager.has_checkpoint("transform") ? "transform " : "- ";
                                 result += describe_rows(manager.history());
                                 result += "| " + describe_rows(manager.stages());
                                 return result;
                             }});
}

// The sweep above finds this case; here it is alone, as a plain reproduction. The WAL frames
// of the save, its commit frame included, are written before the commit's fsync; when that
// fsync fails the save throws ("nothing was written"), but the frames stay in the -wal
// file, and the next connection that reads the WAL from scratch (a new process, or the
// same one after closing) recovers them: the failed save is there after all.
TEST_CASE("a save whose commit fsync failed is not found when the database is reopened",
          "[fault]") {
    FaultVfs vfs;
    vfs.set_real_sync(false);
    TempDir dir;
    {
        CheckpointManager setup(dir.path(), quiet_options());
        setup.save_checkpoint("extract");
    }
    {
        CheckpointManager manager(dir.path(), quiet_options());
        vfs.fail_nth(IoKind::Sync, 1, SQLITE_IOERR_FSYNC);
        CHECK_THROWS_AS(manager.save_checkpoint("load"), Error);
        vfs.clear_fault();
        CHECK(vfs.fault_hits() == 1);
        CHECK_FALSE(manager.has_checkpoint("load"));
    }  // the manager wrote nothing, so it closes without writing
    CheckpointManager reopened(dir.path(), quiet_options());
    CHECK(reopened.has_checkpoint("extract"));
    CHECK_FALSE(reopened.has_checkpoint("load"));
}
