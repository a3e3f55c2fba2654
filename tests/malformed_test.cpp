// Malformed databases: well over a thousand damaged copies of a database the library made
// (several pipelines, versions, failures, clears, runs, a died run), damaged byte by byte
// (flips in the header, in b-tree pages and in the WAL; truncation; swapped and zeroed
// pages) and logically through SQLite (dropped columns, tables, views and indexes; bogus
// statuses; versions going backwards; deleted runs; derived state pointing nowhere; wrong
// user_version and application_id). Each copy is opened read-only and read-write and read
// through every call, in a forked child bounded by alarm(): every call either works or
// throws checkpoint::Error — never another exception, a crash or a hang — and when the
// damage is to a stage the test knows, the answer about that stage is still right unless
// an Error was thrown or verify() reported a problem. CHECKPOINT_TEST_SCALE (support/
// scale.hpp) runs an evenly spread sample of the cases (the sanitizer runs of
// tools/test.sh); unset, every case.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::Status;
using checkpoint::test::TempDir;
using checkpoint::test::write_file;
using namespace std::chrono_literals;

namespace {

// The file's bytes (read in one go: checkpoint::test::read_file goes byte by byte, which is
// slow under AddressSanitizer for a thousand copies).
std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes;
    if (!in) return bytes;
    in.seekg(0, std::ios::end);
    bytes.resize(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
}

const std::vector<std::string> pipelines{"alpha", "beta", "default", "gamma"};
// The stages whose answers are compared, per pipeline ("ghost" has no history anywhere).
const std::map<std::string, std::vector<std::string>> known_stages{
    {"alpha", {"load", "train", "eval", "report", "late", "ghost"}},
    {"beta", {"fetch", "parse", "many", "ghost"}},
    {"default", {"stuck", "ghost"}},
    {"gamma", {"step-7", "step-8", "ghost"}},
};
constexpr int case_seconds = 30;  // the watchdog of one case (alarm() in the child)

std::shared_ptr<spdlog::logger> quiet_logger() {
    static const auto logger = std::make_shared<spdlog::logger>(
        "malformed_test", std::make_shared<spdlog::sinks::null_sink_mt>());
    return logger;
}

Options options_for(const std::string& pipeline, bool read_only,
                    checkpoint::Durability durability = checkpoint::Durability::Full) {
    Options options;
    options.pipeline = pipeline;
    options.read_only = read_only;
    options.durability = durability;
    options.busy_timeout = 2s;
    options.logger = quiet_logger();
    return options;
}

// ---- Raw SQLite on a copy: the damage done through SQLite itself. ----

// Runs `sql` on the database in `dir`. With `keep_wal`, the connection neither checkpoints
// nor deletes the WAL when it closes, so the change stays in the -wal file; otherwise the
// change is checkpointed into the main file and the WAL removed.
void damage_with_sql(const fs::path& dir, const std::string& sql, bool keep_wal) {
    const fs::path db_path = dir / "checkpoints.db";
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    if (keep_wal) {
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        int persist = 1;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    }
    char* message = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    const std::string text = message ? message : "";
    sqlite3_free(message);
    if (rc == SQLITE_OK && !keep_wal) {
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    }
    sqlite3_close(db);
    INFO("damage SQL: " << sql << "\nSQLite: " << text);
    REQUIRE(rc == SQLITE_OK);
    if (!keep_wal) {
        fs::remove(dir / "checkpoints.db-wal");
        fs::remove(dir / "checkpoints.db-shm");
    }
}

// The columns of `table`, through a raw connection.
std::vector<std::string> columns_of(const fs::path& db_path, const std::string& table) {
    checkpoint::test::RawDb raw(db_path, SQLITE_OPEN_READONLY);
    return raw.rows("SELECT name FROM pragma_table_info(?1) ORDER BY cid", {table});
}

// Drops a column: ALTER TABLE ... DROP COLUMN where SQLite allows it, else the table is
// recreated without the column (the views that use it are left broken).
void drop_column(const fs::path& dir, const std::string& table, const std::string& column,
                 bool keep_wal) {
    const fs::path db_path = dir / "checkpoints.db";
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        int persist = 1;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
        const std::string sql = "ALTER TABLE " + table + " DROP COLUMN " + column;
        const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
        sqlite3_close(db);
        if (rc == SQLITE_OK) {
            if (!keep_wal) damage_with_sql(dir, "SELECT 1", false);  // checkpoint it
            return;
        }
    }
    std::string kept;
    for (const auto& name : columns_of(db_path, table)) {
        if (name == column) continue;
        kept += (kept.empty() ? "" : ", ") + name;
    }
    REQUIRE_FALSE(kept.empty());
    damage_with_sql(dir,
                    "PRAGMA legacy_alter_table = ON; BEGIN; CREATE TABLE damaged_copy AS SELECT " +
                        kept + " FROM " + table + "; DROP TABLE " + table +
                        "; ALTER TABLE damaged_copy RENAME TO " + table + "; COMMIT;",
                    keep_wal);
}

// ---- What the library answers. ----

// The stage whose answers the damage may have made wrong, and the right answers.
struct Target {
    std::string pipeline;
    std::string stage;
    bool completed = false;
    std::optional<std::pair<Status, std::int64_t>> latest;  // status and version
};

std::string describe_latest(const std::optional<Checkpoint>& latest) {
    if (!latest) return "none";
    return std::string(checkpoint::to_string(latest->status)) + " v" +
           std::to_string(latest->version) + " #" + std::to_string(latest->id);
}

// What one read-only or read-write pass over every pipeline saw.
struct Pass {
    std::string answers;                  // every answer, as text
    std::vector<std::string> errors;      // "call: code" for each Error thrown
    std::optional<std::size_t> problems;  // verify()'s problem count, if it answered
    // About the target stage, when the calls answered.
    std::optional<bool> target_completed;
    std::optional<std::optional<Checkpoint>> target_latest;
    std::optional<std::optional<Checkpoint>> target_in_stages;
};

const char* current_call = "";  // the call in progress (for a report from the child)

// Runs one call; an Error is recorded (any other exception propagates: it is a failure).
template <class F>
void attempt(Pass& pass, const std::string& what, F&& call) {
    current_call = what.c_str();
    try {
        call();
    } catch (const Error& e) {
        pass.errors.push_back(what + ": " + std::string(checkpoint::to_string(e.code())));
        pass.answers += what + " -> error " + std::string(checkpoint::to_string(e.code())) + "\n";
    }
    current_call = "";
}

// Opens the database of `dir` for each pipeline (read-only or read-write) and reads
// everything; a read-write pass also tries one save at the end.
Pass read_everything(const fs::path& dir, bool read_only, const std::optional<Target>& target) {
    Pass pass;
    const std::string mode = read_only ? "read-only " : "read-write ";
    for (const auto& pipeline : pipelines) {
        std::optional<CheckpointManager> manager;
        const std::string prefix = mode + pipeline + " ";  // names the calls in errors
        const std::string answer = pipeline + " ";         // starts each answer (any mode)
        // Durability::Normal: the probe save and the run's end need no fsync (the disk is not
        // what is tested, and a thousand fsyncs would take minutes).
        attempt(pass, prefix + "open", [&] {
            manager.emplace(dir, options_for(pipeline, read_only, checkpoint::Durability::Normal));
        });
        if (!manager) continue;
        const bool is_target = target && target->pipeline == pipeline;
        for (const auto& stage : known_stages.at(pipeline)) {
            attempt(pass, prefix + "has_checkpoint(" + stage + ")", [&] {
                const bool completed = manager->has_checkpoint(stage);
                pass.answers += answer + "has " + stage + " " + (completed ? "1" : "0") + "\n";
                if (is_target && stage == target->stage) pass.target_completed = completed;
            });
            attempt(pass, prefix + "latest(" + stage + ")", [&] {
                const auto latest = manager->latest(stage);
                pass.answers += answer + "latest " + stage + " " + describe_latest(latest) + "\n";
                if (is_target && stage == target->stage) pass.target_latest = latest;
            });
        }
        attempt(pass, prefix + "stages()", [&] {
            std::optional<Checkpoint> found;
            for (const auto& current : manager->stages()) {
                pass.answers +=
                    answer + "stage " + current.stage + " " + describe_latest(current) + "\n";
                if (is_target && current.stage == target->stage) found = current;
            }
            if (is_target) pass.target_in_stages = found;
        });
        attempt(pass, prefix + "history()", [&] {
            for (const auto& row : manager->history()) {
                pass.answers += answer + "row " + row.stage + " " + describe_latest(row) + " " +
                                row.timestamp + " " + row.run_id + " " +
                                std::to_string(std::hash<std::string>{}(row.message)) + "\n";
            }
        });
        if (is_target) {
            attempt(pass, prefix + "history(stage)", [&] {
                HistoryFilter filter;
                filter.stage = target->stage;
                manager->history(filter);
            });
        }
        attempt(pass, prefix + "runs()", [&] {
            for (const auto& run : manager->runs()) {
                pass.answers += answer + "run " + run.run_id + " " +
                                std::string(checkpoint::to_string(run.outcome)) + " " +
                                std::to_string(run.stages_completed) + "/" +
                                std::to_string(run.stages_failed) + "\n";
            }
        });
        if (pipeline == pipelines.front()) {
            attempt(pass, prefix + "verify()", [&] { pass.problems = manager->verify().size(); });
        }
        if (!read_only && pipeline == pipelines.back()) {
            attempt(pass, prefix + "save_checkpoint(probe)",
                    [&] { manager->save_checkpoint("probe"); });
        }
    }
    return pass;
}

// True when the answers about the target are wrong although nothing said so: every call
// about it answered, verify() answered and found nothing, and an answer differs.
std::optional<std::string> silent_wrong_answer(const Pass& pass, const Target& target) {
    if (!pass.errors.empty() || !pass.problems || *pass.problems != 0) return std::nullopt;
    if (!pass.target_completed || !pass.target_latest || !pass.target_in_stages)
        return std::nullopt;
    auto matches = [&](const std::optional<Checkpoint>& got) {
        if (!got || !target.latest) return !got && !target.latest;
        return got->status == target.latest->first && got->version == target.latest->second;
    };
    std::string wrong;
    if (*pass.target_completed != target.completed)
        wrong += "has_checkpoint = " + std::to_string(*pass.target_completed) + "; ";
    if (!matches(*pass.target_latest))
        wrong += "latest = " + describe_latest(*pass.target_latest) + "; ";
    if (!matches(*pass.target_in_stages))
        wrong += "stages() entry = " + describe_latest(*pass.target_in_stages) + "; ";
    if (wrong.empty()) return std::nullopt;
    std::string expected =
        "expected has_checkpoint = " + std::to_string(target.completed) + ", latest = " +
        (target.latest ? std::string(checkpoint::to_string(target.latest->first)) + " v" +
                             std::to_string(target.latest->second)
                       : std::string("none"));
    return "stage '" + target.stage + "' of pipeline '" + target.pipeline + "': " + wrong +
           expected;
}

// ---- One case: damage a copy, read it in a child bounded by a watchdog. ----

struct Case {
    Case(std::string description_, bool wal_base_, std::function<void(const fs::path&)> damage_,
         std::optional<Target> target_ = std::nullopt)
        : description(std::move(description_)),
          wal_base(wal_base_),
          damage(std::move(damage_)),
          target(std::move(target_)) {}
    std::string description;
    bool wal_base = false;  // damage the copy that has a -wal file
    std::function<void(const fs::path& dir)> damage;
    std::optional<Target> target;  // the stage the damage is about, if any
};

struct Result {
    bool failed = false;
    std::string failure;
    bool refused = false;   // some call threw Error
    bool detected = false;  // verify() reported problems
    bool undetected_change = false;
    std::set<std::string> codes;
};

void write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

// Reads everything twice (read-only, then read-write) and returns the report: one line
// per finding ("E call: code" for an Error, "V mode" when verify() found problems, "D mode"
// when the answers differ from the undamaged copy's although nothing said so, "W mode: ..."
// for a silent wrong answer about the target, "X ..." for any other exception).
std::string probe(const fs::path& dir, const Case& c, const std::string& expected_answers) {
    std::string report;
    try {
        for (const bool read_only : {true, false}) {
            const Pass pass = read_everything(dir, read_only, c.target);
            const std::string mode = read_only ? "read-only" : "read-write";
            for (const auto& error : pass.errors) report += "E " + error + "\n";
            if (pass.problems && *pass.problems > 0) report += "V " + mode + "\n";
            if (pass.errors.empty() && pass.problems == std::size_t{0} &&
                pass.answers != expected_answers) {
                report += "D " + mode + "\n";
                if (const char* dump = std::getenv("MALFORMED_TEST_DUMP")) {
                    write_file(std::string(dump) + ".expected", expected_answers);
                    write_file(std::string(dump) + "." + mode, pass.answers);
                }
            }
            if (c.target) {
                if (auto wrong = silent_wrong_answer(pass, *c.target))
                    report += "W " + mode + ": " + *wrong + "\n";
            }
        }
    } catch (const std::exception& e) {
        report += std::string("X ") + current_call + " threw " + typeid(e).name() + ": " +
                  e.what() + "\n";
    } catch (...) {
        report += std::string("X ") + current_call + " threw a non-std exception\n";
    }
    return report;
}

constexpr const char* end_of_report = "END\n";

// A child process that probes one case after another (forking once per case would cost
// more than the probe): the parent damages the copy, sends the case's index, and reads the
// report up to "END". A crash or a hang ends the child; the parent then starts another.
class Prober {
public:
    Prober(const std::vector<Case>& cases, fs::path dir, const std::string (&expected)[2])
        : cases_(cases), dir_(std::move(dir)), expected_(expected) {}
    ~Prober() { stop(); }
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;

    Result run(std::size_t index) {
        if (pid_ < 0) start();
        Result result;
        const auto request = static_cast<std::uint32_t>(index);
        REQUIRE(::write(to_child_, &request, sizeof request) == sizeof request);
        std::string report;
        bool complete = false;
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::seconds(case_seconds + 10);
        while (!complete) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd fd{from_child_, POLLIN, 0};
            const int ready = left.count() > 0 ? ::poll(&fd, 1, static_cast<int>(left.count())) : 0;
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) {  // the watchdog: the child's own alarm() did not end it either
                ::kill(pid_, SIGKILL);
                break;
            }
            char chunk[4096];
            const ssize_t n = ::read(from_child_, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // the child died
            report.append(chunk, static_cast<std::size_t>(n));
            const std::size_t end = report.size() >= 4 ? report.size() - 4 : std::string::npos;
            complete = end != std::string::npos && report.compare(end, 4, end_of_report) == 0;
        }
        std::istringstream lines(report);
        for (std::string line; std::getline(lines, line);) {
            if (line.rfind("E ", 0) == 0) {
                result.refused = true;
                result.codes.insert(line.substr(line.rfind(": ") + 2));
            } else if (line.rfind("V ", 0) == 0) {
                result.detected = true;
            } else if (line.rfind("D ", 0) == 0) {
                result.undetected_change = true;
            } else if (line.rfind("W ", 0) == 0 || line.rfind("X ", 0) == 0) {
                result.failed = true;
                result.failure += line + "\n";
            }
        }
        if (!complete) {
            result.failed = true;
            const int status = stop();
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
                result.failure +=
                    "hang: still running after " + std::to_string(case_seconds) + " s\n";
            } else if (WIFSIGNALED(status)) {
                result.failure += "crash: killed by signal " + std::to_string(WTERMSIG(status)) +
                                  " (" + strsignal(WTERMSIG(status)) + ")\n";
            } else {
                result.failure += "the child exited with status " +
                                  std::to_string(WEXITSTATUS(status)) +
                                  " (a sanitizer report?) in the middle of the case\n";
            }
        }
        return result;
    }

private:
    void start() {
        int requests[2], reports[2];
        REQUIRE(::pipe2(requests, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(reports, O_CLOEXEC) == 0);
        std::fflush(stdout);
        std::cout.flush();
        std::cerr.flush();
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(requests[1]);
            ::close(reports[0]);
            serve(requests[0], reports[1]);
        }
        ::close(requests[0]);
        ::close(reports[1]);
        to_child_ = requests[1];
        from_child_ = reports[0];
    }

    [[noreturn]] void serve(int in, int out) {
        for (std::uint32_t index = 0;;) {
            if (::read(in, &index, sizeof index) != sizeof index) ::_exit(0);
            const Case& c = cases_[index];
            ::alarm(case_seconds);  // a hang ends the child with SIGALRM
            const std::string report = probe(dir_, c, expected_[c.wal_base ? 1 : 0]);
            ::alarm(0);
            write_all(out, report + end_of_report);
        }
    }

    int stop() {
        int status = 0;
        if (pid_ < 0) return status;
        ::close(to_child_);
        ::close(from_child_);
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        return status;
    }

    const std::vector<Case>& cases_;
    fs::path dir_;
    const std::string (&expected_)[2];
    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
};

// ---- The databases to damage. ----

// Builds, with the library, a database with several pipelines, versions, failures, clears
// of one stage and of a pipeline, runs that finished, failed and died. Returns the WAL
// checkpointed into the main file, without -wal or -shm.
void build_base(const fs::path& dir) {
    using checkpoint::Durability;
    {
        CheckpointManager first(dir, options_for("alpha", false));
        first.save_checkpoint("load");
        first.save_checkpoint("train");
        first.save_checkpoint("eval");
    }
    {
        CheckpointManager second(dir, options_for("alpha", false));
        second.begin_stage("train");
        second.fail_stage("train", "out of memory");
        second.save_checkpoint("train");
        second.save_checkpoint("load");
        second.clear_checkpoint("eval");
    }
    {
        CheckpointManager third(dir, options_for("alpha", false));
        third.clear_checkpoints();
        third.save_checkpoint("load");
        third.run_stage("report", [] {});
    }
    {
        CheckpointManager beta(dir, options_for("beta", false));
        beta.save_checkpoint("fetch");
        beta.save_checkpoint("parse");
        for (int i = 0; i < 5; ++i) beta.save_checkpoint("many");
        beta.begin_stage("fetch");
        beta.fail_stage("fetch", "timeout");
        beta.clear_checkpoint("parse");
    }
    {
        // Enough rows for b-trees with interior pages, and long messages for overflow pages.
        CheckpointManager gamma(dir, options_for("gamma", false, Durability::Normal));
        for (int round = 0; round < 2; ++round) {
            for (int i = 0; i < 120; ++i) gamma.save_checkpoint("step-" + std::to_string(i));
        }
        for (int i = 0; i < 6; ++i) {
            gamma.fail_stage("broken-" + std::to_string(i),
                             std::string(static_cast<std::size_t>(3000 * (i + 1)), 'x'));
        }
    }
    // A run that died in the middle of a stage (pipeline "default").
    {
        checkpoint::test::ChildProcess child(
            {"/bin/sh", "-c", std::string("exec \"$0\" \"$@\" 2>/dev/null"), CHECKPOINT_TEST_WORKER,
             "begin", dir.string(), "stuck"});
        const auto line = child.read_line(30s);
        REQUIRE(line);
        REQUIRE(*line == "begun");
        child.kill(SIGKILL);
        child.wait();
    }
    // A writer records the death (so that no answer depends on process liveness).
    { CheckpointManager reaper(dir, options_for("default", false)); }
    damage_with_sql(dir, "SELECT 1", false);  // checkpoint the WAL into the main file
    REQUIRE_FALSE(fs::exists(dir / "checkpoints.db-wal"));
}

// A copy of the base with more writes left in its -wal file (not checkpointed).
void build_wal_base(const fs::path& base, const fs::path& dir) {
    fs::create_directories(dir);
    fs::copy_file(base / "checkpoints.db", dir / "checkpoints.db");
    {
        CheckpointManager alpha(dir, options_for("alpha", false));
        alpha.save_checkpoint("eval");
        alpha.save_checkpoint("late");
    }
    {
        CheckpointManager beta(dir, options_for("beta", false));
        beta.clear_checkpoints();
        beta.save_checkpoint("fetch");
        beta.begin_stage("parse");
        beta.fail_stage("parse", "bad input");
    }
    {
        CheckpointManager gamma(dir, options_for("gamma", false));
        gamma.save_checkpoint("step-7");
        gamma.clear_checkpoint("step-8");
    }
    fs::remove(dir / "checkpoints.db-shm");
    REQUIRE(fs::exists(dir / "checkpoints.db-wal"));
    REQUIRE(fs::file_size(dir / "checkpoints.db-wal") > 0);
}

// The right answers about `stage`, read from the undamaged database.
Target target_of(const fs::path& dir, const std::string& pipeline, const std::string& stage) {
    CheckpointManager reader(dir, options_for(pipeline, true));
    Target target;
    target.pipeline = pipeline;
    target.stage = stage;
    target.completed = reader.has_checkpoint(stage);
    if (const auto latest = reader.latest(stage))
        target.latest = std::make_pair(latest->status, latest->version);
    return target;
}

std::string sql_quote(const std::string& text) {
    return "'" + text + "'";
}

std::uint32_t page_size_of(const std::string& bytes) {
    REQUIRE(bytes.size() >= 100);
    std::uint32_t size =
        (static_cast<unsigned char>(bytes[16]) << 8) | static_cast<unsigned char>(bytes[17]);
    return size == 1 ? 65536 : size;
}

}  // namespace

TEST_CASE("damaged databases are refused with checkpoint::Error or read right", "[malformed]") {
    const unsigned seed = std::random_device{}();
    std::cout << "malformed_test: random seed " << seed << std::endl;
    INFO("random seed " << seed);
    std::mt19937 rng(seed);
    const auto started = std::chrono::steady_clock::now();

    TempDir scratch;
    const fs::path base = scratch / "base";
    const fs::path wal_base = scratch / "wal-base";
    build_base(base);
    build_wal_base(base, wal_base);
    const std::string base_db = slurp(base / "checkpoints.db");
    const std::string wal_db = slurp(wal_base / "checkpoints.db");
    const std::string wal_file = slurp(wal_base / "checkpoints.db-wal");
    const std::uint32_t page_size = page_size_of(base_db);
    const std::size_t base_pages = base_db.size() / page_size;
    const std::size_t wal_db_pages = wal_db.size() / page_size;
    const std::size_t frame_size = 24 + page_size;
    const std::size_t wal_frames = (wal_file.size() - 32) / frame_size;
    REQUIRE(base_pages >= 20);
    REQUIRE(wal_frames >= 10);
    std::cout << "malformed_test: base " << base_pages << " pages of " << page_size
              << " bytes; WAL copy " << wal_db_pages << " pages + " << wal_frames << " WAL frames"
              << std::endl;

    // The right answers of the undamaged copies (read-only and read-write read the same).
    std::string expected[2];
    for (const bool wal : {false, true}) {
        for (const bool read_only : {true, false}) {
            TempDir copy;
            fs::copy_file((wal ? wal_base : base) / "checkpoints.db", copy / "checkpoints.db");
            if (wal) {
                fs::copy_file(wal_base / "checkpoints.db-wal", copy / "checkpoints.db-wal");
            }
            const Pass pass = read_everything(copy.path(), read_only, std::nullopt);
            INFO((wal ? "WAL copy, " : "base, ") << (read_only ? "read-only" : "read-write"));
            INFO(pass.answers);
            REQUIRE(pass.errors.empty());
            REQUIRE(pass.problems == std::size_t{0});
            if (read_only) {
                expected[wal] = pass.answers;
            } else {
                CHECK(pass.answers == expected[wal]);
            }
        }
    }

    std::vector<Case> cases;
    // Controls: undamaged copies read fine and right.
    cases.push_back({"undamaged", false, [](const fs::path&) {}, std::nullopt});
    cases.push_back({"undamaged (with -wal)", true, [](const fs::path&) {}, std::nullopt});

    // ---- Byte damage. ----
    auto flip_db = [&](bool wal, std::size_t offset, unsigned char mask, const std::string& what) {
        cases.push_back({what + ": byte " + std::to_string(offset) + " ^= " + std::to_string(mask) +
                             (wal ? " (with -wal)" : ""),
                         wal, [offset, mask](const fs::path& dir) {
                             std::string bytes = slurp(dir / "checkpoints.db");
                             if (offset < bytes.size())
                                 bytes[offset] = static_cast<char>(bytes[offset] ^ mask);
                             write_file(dir / "checkpoints.db", bytes);
                         }});
    };
    auto random_mask = [&] {
        return static_cast<unsigned char>(std::uniform_int_distribution<int>(1, 255)(rng));
    };
    auto random_offset_in_page = [&](std::size_t page) {  // page numbers start at 1
        return (page - 1) * page_size + rng() % page_size;
    };
    for (int i = 0; i < 100; ++i) flip_db(false, rng() % 100, random_mask(), "header flip");
    for (int i = 0; i < 30; ++i) flip_db(true, rng() % 100, random_mask(), "header flip");
    for (int i = 0; i < 200; ++i) {
        const std::size_t page = 2 + rng() % (base_pages - 1);
        flip_db(false, random_offset_in_page(page), random_mask(),
                "b-tree page " + std::to_string(page) + " flip");
    }
    for (int i = 0; i < 50; ++i) {
        const std::size_t page = 1 + rng() % wal_db_pages;
        flip_db(true, random_offset_in_page(page), random_mask(),
                "page " + std::to_string(page) + " flip");
    }
    for (int i = 0; i < 40; ++i) {
        // Several bytes at once, anywhere in the file.
        std::vector<std::pair<std::size_t, unsigned char>> flips;
        const int count = std::uniform_int_distribution<int>(2, 24)(rng);
        for (int k = 0; k < count; ++k) flips.emplace_back(rng() % base_db.size(), random_mask());
        cases.push_back({std::to_string(count) + " random flips (first at byte " +
                             std::to_string(flips.front().first) + ")",
                         false, [flips](const fs::path& dir) {
                             std::string bytes = slurp(dir / "checkpoints.db");
                             for (const auto& [offset, mask] : flips)
                                 bytes[offset] = static_cast<char>(bytes[offset] ^ mask);
                             write_file(dir / "checkpoints.db", bytes);
                         }});
    }
    for (int i = 0; i < 100; ++i) {
        // In the WAL: its header, a frame header, or a frame's page image.
        std::size_t offset = 0;
        std::string where;
        const std::size_t frame = rng() % wal_frames;
        switch (rng() % 3) {
            case 0:
                offset = rng() % 32;
                where = "WAL header";
                break;
            case 1:
                offset = 32 + frame * frame_size + rng() % 24;
                where = "WAL frame " + std::to_string(frame) + " header";
                break;
            default:
                offset = 32 + frame * frame_size + 24 + rng() % page_size;
                where = "WAL frame " + std::to_string(frame) + " page";
                break;
        }
        const unsigned char mask = random_mask();
        cases.push_back(
            {where + " flip: byte " + std::to_string(offset) + " ^= " + std::to_string(mask), true,
             [offset, mask](const fs::path& dir) {
                 std::string bytes = slurp(dir / "checkpoints.db-wal");
                 bytes[offset] = static_cast<char>(bytes[offset] ^ mask);
                 write_file(dir / "checkpoints.db-wal", bytes);
             }});
    }
    for (int i = 0; i < 60; ++i) {
        const std::size_t length = rng() % base_db.size();
        cases.push_back(
            {"truncated to " + std::to_string(length) + " bytes", false,
             [length](const fs::path& dir) { fs::resize_file(dir / "checkpoints.db", length); }});
    }
    for (int i = 0; i < 40; ++i) {
        const bool db_file = rng() % 3 == 0;
        const std::size_t length = rng() % (db_file ? wal_db.size() : wal_file.size());
        const std::string file = db_file ? "checkpoints.db" : "checkpoints.db-wal";
        cases.push_back(
            {file + " (with -wal) truncated to " + std::to_string(length) + " bytes", true,
             [file, length](const fs::path& dir) { fs::resize_file(dir / file, length); }});
    }
    auto swap_pages = [&](bool wal, std::size_t pages) {
        const std::size_t a = 1 + rng() % pages;
        std::size_t b = 1 + rng() % pages;
        if (b == a) b = a % pages + 1;
        cases.push_back({"pages " + std::to_string(a) + " and " + std::to_string(b) + " swapped" +
                             (wal ? " (with -wal)" : ""),
                         wal, [a, b, page_size](const fs::path& dir) {
                             std::string bytes = slurp(dir / "checkpoints.db");
                             std::string page_a = bytes.substr((a - 1) * page_size, page_size);
                             bytes.replace((a - 1) * page_size, page_size,
                                           bytes.substr((b - 1) * page_size, page_size));
                             bytes.replace((b - 1) * page_size, page_size, page_a);
                             write_file(dir / "checkpoints.db", bytes);
                         }});
    };
    auto zero_page = [&](bool wal, std::size_t pages) {
        const std::size_t page = 1 + rng() % pages;
        cases.push_back({"page " + std::to_string(page) + " zeroed" + (wal ? " (with -wal)" : ""),
                         wal, [page, page_size](const fs::path& dir) {
                             std::string bytes = slurp(dir / "checkpoints.db");
                             bytes.replace((page - 1) * page_size, page_size,
                                           std::string(page_size, '\0'));
                             write_file(dir / "checkpoints.db", bytes);
                         }});
    };
    for (int i = 0; i < 50; ++i) swap_pages(false, base_pages);
    for (int i = 0; i < 15; ++i) swap_pages(true, wal_db_pages);
    for (int i = 0; i < 50; ++i) zero_page(false, base_pages);
    for (int i = 0; i < 15; ++i) zero_page(true, wal_db_pages);

    // ---- Logical damage, through SQLite, on both copies. ----
    for (const bool wal : {false, true}) {
        const fs::path& source = wal ? wal_base : base;
        const std::string suffix = wal ? " (with -wal)" : "";
        auto sql_case = [&](const std::string& what, const std::string& sql,
                            std::optional<Target> target) {
            cases.push_back({what + suffix, wal,
                             [sql, wal](const fs::path& dir) { damage_with_sql(dir, sql, wal); },
                             std::move(target)});
        };
        const Target load = target_of(source, "alpha", "load");

        // Damage to one stage's rows, for stages in every state.
        const std::vector<std::pair<std::string, std::string>> stages{
            {"alpha", "load"},   {"alpha", "train"},  {"alpha", "report"}, {"alpha", "eval"},
            {"beta", "fetch"},   {"beta", "parse"},   {"beta", "many"},    {"default", "stuck"},
            {"gamma", "step-7"}, {"gamma", "step-8"}, {"alpha", "late"}};
        for (const auto& [pipeline, stage] : stages) {
            const Target target = target_of(source, pipeline, stage);
            if (!target.latest) continue;  // not in this copy
            const std::string p = sql_quote(pipeline), s = sql_quote(stage);
            const std::string where_head = " WHERE pipeline = " + p + " AND stage = " + s;
            const std::string head = "(SELECT head_id FROM stage_heads" + where_head + ")";
            const std::string head_run = "(SELECT run_id FROM checkpoints WHERE id = " + head + ")";
            const std::string last_completed =
                "(SELECT max(id) FROM checkpoints" + where_head + " AND status = 'completed')";
            const std::string name = " of " + pipeline + "/" + stage;
            const std::string unchecked = "PRAGMA ignore_check_constraints = 1; ";
            sql_case("bogus status on the head row" + name,
                     unchecked + "UPDATE checkpoints SET status = 'bogus' WHERE id = " + head,
                     target);
            sql_case("bogus status in stage_heads" + name,
                     unchecked + "UPDATE stage_heads SET status = 'bogus'" + where_head, target);
            sql_case("bogus status in the head row and stage_heads" + name,
                     unchecked + "UPDATE checkpoints SET status = 'bogus' WHERE id = " + head +
                         "; UPDATE stage_heads SET status = 'bogus'" + where_head,
                     target);
            for (const char* status : {"completed", "failed", "started", "cleared"}) {
                sql_case(
                    std::string("stage_heads status set to ") + status + name,
                    "UPDATE stage_heads SET status = '" + std::string(status) + "'" + where_head,
                    target);
            }
            sql_case("version going backwards on the last completed row" + name,
                     unchecked + "UPDATE checkpoints SET version = version - 1 WHERE id = " +
                         last_completed,
                     target);
            sql_case("version going backwards, in stage_heads too" + name,
                     unchecked + "UPDATE checkpoints SET version = version - 1 WHERE id = " +
                         last_completed + "; UPDATE stage_heads SET version = version - 1" +
                         where_head,
                     target);
            sql_case("stage_heads version raised" + name,
                     "UPDATE stage_heads SET version = version + 5" + where_head, target);
            sql_case("stage_heads version as text" + name,
                     "UPDATE stage_heads SET version = 'three'" + where_head, target);
            sql_case("stage_heads row pointing nowhere" + name,
                     "UPDATE stage_heads SET head_id = 999999" + where_head, target);
            sql_case("stage_heads row pointing at another stage's row" + name,
                     "UPDATE stage_heads SET head_id = (SELECT min(id) FROM checkpoints WHERE "
                     "stage IS NOT NULL AND stage <> " +
                         s + ")" + where_head,
                     target);
            sql_case("stage_heads row deleted" + name, "DELETE FROM stage_heads" + where_head,
                     target);
            sql_case("head history row deleted" + name,
                     "DELETE FROM checkpoints WHERE id = " + head, target);
            sql_case("run of the head row deleted" + name,
                     "DELETE FROM runs WHERE run_id = " + head_run, target);
            sql_case("run of the head row with a bogus outcome" + name,
                     unchecked + "UPDATE runs SET outcome = 'zombie' WHERE run_id = " + head_run,
                     target);
            sql_case("head row timestamp not a timestamp" + name,
                     "UPDATE checkpoints SET timestamp = 'yesterday' WHERE id = " + head, target);
            sql_case("head row moved to another pipeline" + name,
                     "UPDATE checkpoints SET pipeline = 'elsewhere' WHERE id = " + head, target);
            sql_case("head row without a stage" + name,
                     unchecked + "UPDATE checkpoints SET stage = NULL WHERE id = " + head, target);
            sql_case("negative version on the head row" + name,
                     unchecked + "UPDATE checkpoints SET version = -3 WHERE id = " + head, target);
            sql_case("pipelines row deleted" + name, "DELETE FROM pipelines WHERE pipeline = " + p,
                     target);
            sql_case("pipeline's last clear forgotten" + name,
                     "UPDATE pipelines SET cleared_id = 0 WHERE pipeline = " + p, target);
            sql_case("pipeline's last clear beyond the history" + name,
                     "UPDATE pipelines SET cleared_id = 999999 WHERE pipeline = " + p, target);
        }
        // A stage_heads row for a stage that has no history at all.
        for (const char* pipeline : {"alpha", "beta", "gamma"}) {
            const Target ghost = target_of(source, pipeline, "ghost");
            const std::string p = sql_quote(pipeline);
            sql_case(std::string("stage_heads row for a stage without history, pointing at an "
                                 "existing row, in ") +
                         pipeline,
                     "INSERT INTO stage_heads (pipeline, stage, status, version, head_id) "
                     "VALUES (" +
                         p +
                         ", 'ghost', 'completed', 1, (SELECT max(id) FROM checkpoints WHERE "
                         "pipeline = " +
                         p + " AND status = 'completed'))",
                     ghost);
            sql_case(std::string("stage_heads row for a stage without history, pointing "
                                 "nowhere, in ") +
                         pipeline,
                     "INSERT INTO stage_heads (pipeline, stage, status, version, head_id) "
                     "VALUES (" +
                         p + ", 'ghost', 'completed', 1, 999999)",
                     ghost);
        }

        // Damage to the whole file.
        for (const char* version : {"0", "2", "99", "-1"})
            sql_case(std::string("user_version ") + version,
                     std::string("PRAGMA user_version = ") + version, load);
        for (const char* id : {"0", "1", "1128811345"})
            sql_case(std::string("application_id ") + id,
                     std::string("PRAGMA application_id = ") + id, load);
        sql_case("user_version 0 and application_id 0",
                 "PRAGMA user_version = 0; PRAGMA application_id = 0", load);
        for (const char* view : {"history", "current_state"})
            sql_case(std::string("view ") + view + " dropped", std::string("DROP VIEW ") + view,
                     load);
        sql_case("both views dropped", "DROP VIEW history; DROP VIEW current_state", load);
        sql_case("history view replaced by an empty one",
                 "DROP VIEW history; CREATE VIEW history AS SELECT * FROM checkpoints WHERE 0",
                 load);
        for (const char* table :
             {"checkpoints", "runs", "stage_heads", "pipelines", "schema_migrations"}) {
            sql_case(std::string("table ") + table + " dropped", std::string("DROP TABLE ") + table,
                     load);
            sql_case(std::string("table ") + table + " emptied",
                     std::string("DELETE FROM ") + table, load);
        }
        for (const char* index :
             {"runs_by_pipeline", "runs_open", "checkpoints_by_stage", "checkpoints_by_run"})
            sql_case(std::string("index ") + index + " dropped", std::string("DROP INDEX ") + index,
                     load);
        sql_case("index checkpoints_by_stage declared over other columns than it holds",
                 "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = "
                 "'CREATE INDEX checkpoints_by_stage ON checkpoints (pipeline, id, stage)' "
                 "WHERE name = 'checkpoints_by_stage'",
                 load);
        sql_case("every run deleted", "DELETE FROM runs", load);
        sql_case("every run still running on a dead process",
                 "UPDATE runs SET outcome = 'running', ended_at = NULL, pid = 999999999", load);
        if (!wal) sql_case("journal mode switched to DELETE", "PRAGMA journal_mode = DELETE", load);
        for (const char* table :
             {"checkpoints", "runs", "stage_heads", "pipelines", "schema_migrations"}) {
            for (const auto& column : columns_of(source / "checkpoints.db", table)) {
                const std::string t = table;
                cases.push_back(
                    {"column " + t + "." + column + " dropped" + suffix, wal,
                     [t, column, wal](const fs::path& dir) { drop_column(dir, t, column, wal); },
                     load});
            }
        }
    }

    // ---- Run every case (at a lower CHECKPOINT_TEST_SCALE, the controls and a sample). ----
    std::vector<std::size_t> selected{0, 1};
    for (const std::size_t index : checkpoint::test::scaled_sample(cases.size() - 2, 100, rng))
        selected.push_back(index + 2);
    checkpoint::test::announce_scale(
        "malformed_test", selected.size() == cases.size()
                              ? "every one of " + std::to_string(cases.size()) + " mutations"
                              : std::to_string(selected.size()) + " of " +
                                    std::to_string(cases.size()) +
                                    " mutations (the controls and an evenly spread sample)");
    int opened_fine = 0, refused = 0, detected = 0, undetected = 0, failures = 0;
    std::map<std::string, int> codes;
    const fs::path case_dir = scratch / "case";
    Prober prober(cases, case_dir, expected);
    for (const std::size_t i : selected) {
        const Case& c = cases[i];
        fs::remove_all(case_dir);
        fs::create_directories(case_dir);
        const fs::path& source = c.wal_base ? wal_base : base;
        fs::copy_file(source / "checkpoints.db", case_dir / "checkpoints.db");
        if (c.wal_base)
            fs::copy_file(source / "checkpoints.db-wal", case_dir / "checkpoints.db-wal");
        const auto t0 = std::chrono::steady_clock::now();
        c.damage(case_dir);
        const auto t1 = std::chrono::steady_clock::now();
        const Result result = prober.run(i);
        const auto t2 = std::chrono::steady_clock::now();
        if (std::getenv("MALFORMED_TEST_VERBOSE")) {  // one line per case
            std::cout << "case " << i << " damage "
                      << std::chrono::duration<double>(t1 - t0).count() << " s, probe "
                      << std::chrono::duration<double>(t2 - t1).count()
                      << " s:" << (result.detected ? " verify-detected" : "")
                      << (result.undetected_change ? " undetected-change" : "");
            for (const auto& code : result.codes) std::cout << " " << code;
            std::cout << " | " << c.description << std::endl;
        }
        if (result.failed) {
            ++failures;
            FAIL_CHECK("case " << i << " (" << c.description << "), seed " << seed << ":\n"
                               << result.failure);
            if (failures >= 25) FAIL("too many failures; stopping");
            continue;
        }
        if (result.refused) {
            ++refused;
            for (const auto& code : result.codes) ++codes[code];
        } else {
            ++opened_fine;
        }
        detected += result.detected;
        undetected += result.undetected_change;
        if (i < 2) {
            INFO("control case " << c.description);
            CHECK_FALSE(result.refused);
            CHECK_FALSE(result.detected);
            CHECK_FALSE(result.undetected_change);
        }
    }
    fs::remove_all(case_dir);

    const auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "malformed_test: " << selected.size() << " mutations: " << opened_fine
              << " opened fine, " << refused << " refused with Error, " << failures
              << " crashes/hangs/wrong answers/other exceptions (seed " << seed << ", " << seconds
              << " s)" << std::endl;
    std::cout << "malformed_test: verify() reported the damage in " << detected << " cases; in "
              << undetected
              << " cases every call answered, verify() was clean and some answer differed "
                 "from the undamaged copy's (damage SQLite cannot see, e.g. in a text value, "
                 "or WAL frames dropped by their checksums)"
              << std::endl;
    std::cout << "malformed_test: Error codes seen:";
    for (const auto& [code, count] : codes) std::cout << " " << code << " " << count;
    std::cout << std::endl;
    CHECK(cases.size() >= 1000);
    CHECK(selected.size() >=
          std::min<std::size_t>(cases.size(), checkpoint::test::scaled(1000, 100)));
    CHECK(failures == 0);
    CHECK(opened_fine + refused + failures == static_cast<int>(selected.size()));
}
