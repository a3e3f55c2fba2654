#include "baselines.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

namespace bench {

std::string utc_timestamp() {
    using namespace std::chrono;
    const auto millis = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(millis % 1000));
    return buffer;
}

// ---- RawDatabase ----

RawDatabase::RawDatabase(const std::filesystem::path& file, bool full_sync, int busy_timeout_ms,
                         bool persist_wal)
    : file_(file) {
    const int opened =
        sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (opened != SQLITE_OK) {
        const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(opened);
        sqlite3_close(db_);
        db_ = nullptr;
        throw Failure("raw SQLite: cannot open " + file.string() + ": " + message);
    }
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    if (persist_wal) {
        int persist = 1;
        sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    }
    exec("PRAGMA journal_mode = WAL");
    exec(full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

RawDatabase::~RawDatabase() {
    sqlite3_close_v2(db_);
}

void RawDatabase::fail(const std::string& what) const {
    throw Failure("raw SQLite " + file_.string() + ": " + what + ": " + sqlite3_errmsg(db_));
}

void RawDatabase::exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(sql);
}

std::int64_t RawDatabase::query_int(const std::string& sql) {
    RawStatement statement(*this, sql.c_str());
    if (!statement.step()) fail("no row from " + sql);
    return sqlite3_column_int64(statement.get(), 0);
}

// ---- RawStatement ----

RawStatement::RawStatement(RawDatabase& db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db.handle(), sql, -1, SQLITE_PREPARE_PERSISTENT, &statement_, nullptr) !=
        SQLITE_OK) {
        db.fail(std::string("prepare ") + sql);
    }
}

RawStatement::~RawStatement() {
    sqlite3_finalize(statement_);
}

void RawStatement::bind(int index, std::string_view text) {
    if (sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()),
                          SQLITE_STATIC) != SQLITE_OK) {
        db_.fail("bind");
    }
}

void RawStatement::bind(int index, std::int64_t value) {
    if (sqlite3_bind_int64(statement_, index, value) != SQLITE_OK) db_.fail("bind");
}

bool RawStatement::step() {
    const int result = sqlite3_step(statement_);
    if (result == SQLITE_ROW) return true;
    if (result == SQLITE_DONE) return false;
    const std::string sql = sqlite3_sql(statement_);
    sqlite3_reset(statement_);
    db_.fail("step " + sql);
}

void RawStatement::reset() {
    sqlite3_reset(statement_);
}

// ---- RawCheckpointWriter ----

namespace {

std::string raw_run_id() {
    std::random_device seed;
    std::mt19937_64 generator(seed());
    char text[64];
    std::snprintf(text, sizeof text, "raw-%d-%016llx", static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(generator()));
    return text;
}

}  // namespace

RawCheckpointWriter::RawCheckpointWriter(const std::filesystem::path& file, bool full_sync,
                                         int busy_timeout_ms)
    : db_(file, full_sync, busy_timeout_ms),
      run_id_(raw_run_id()),
      begin_(db_, "BEGIN IMMEDIATE"),
      insert_(db_,
              "INSERT INTO checkpoints "
              "(pipeline, stage, status, version, timestamp, run_id, duration_ms, message) "
              "VALUES ('default', ?1, 'completed', 1, ?2, ?3, NULL, NULL)"),
      commit_(db_, "COMMIT"),
      rollback_(db_, "ROLLBACK") {
    RawStatement run(db_,
                     "INSERT INTO runs (run_id, pipeline, host, pid, user, started_at) "
                     "VALUES (?1, 'default', 'bench', ?2, 'bench', ?3)");
    const std::string now = utc_timestamp();
    run.bind(1, run_id_);
    run.bind(2, static_cast<std::int64_t>(::getpid()));
    run.bind(3, now);
    run.step();
}

void RawCheckpointWriter::save(std::string_view stage) {
    const std::string timestamp = utc_timestamp();
    try {
        begin_.step();
        begin_.reset();
        insert_.bind(1, stage);
        insert_.bind(2, timestamp);
        insert_.bind(3, run_id_);
        insert_.step();
        insert_.reset();
        commit_.step();
        commit_.reset();
    } catch (...) {
        insert_.reset();
        commit_.reset();
        if (!sqlite3_get_autocommit(db_.handle())) {
            rollback_.step();
            rollback_.reset();
        }
        throw;
    }
}

// ---- RawLookup ----

RawLookup::RawLookup(const std::filesystem::path& file)
    : db_(file, true, 30'000),
      lookup_(db_,
              "SELECT 1 FROM stage_heads WHERE pipeline = ?1 AND stage = ?2 "
              "AND status = 'completed'") {}

bool RawLookup::has(std::string_view stage) {
    lookup_.bind(1, std::string_view("default"));
    lookup_.bind(2, stage);
    const bool found = lookup_.step();
    lookup_.reset();
    return found;
}

// ---- OriginalCheckpointManager ----

namespace {

[[noreturn]] void fail_errno(const std::string& what, const std::filesystem::path& path) {
    throw Failure(what + " " + path.string() + ": " + std::strerror(errno));
}

}  // namespace

OriginalCheckpointManager::OriginalCheckpointManager(std::filesystem::path checkpoint_dir,
                                                     bool durable)
    : dir_(std::move(checkpoint_dir)), durable_(durable) {
    std::filesystem::create_directories(dir_);  // os.makedirs(dir, exist_ok=True)
    dir_fd_ = Fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd_.get() < 0) fail_errno("open", dir_);
}

std::filesystem::path OriginalCheckpointManager::file_of(std::string_view stage) const {
    std::string name(stage);
    name += ".checkpoint";
    return dir_ / name;
}

void OriginalCheckpointManager::save_checkpoint(std::string_view stage) {
    // with open(path, "w") as f: f.write("COMPLETED")
    const std::filesystem::path path = file_of(stage);
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) fail_errno("open", path);
    static constexpr char content[] = "COMPLETED";
    if (::write(fd.get(), content, sizeof content - 1) != sizeof content - 1)
        fail_errno("write", path);
    if (durable_ && ::fsync(fd.get()) != 0) fail_errno("fsync", path);
    if (::close(fd.release()) != 0) fail_errno("close", path);
    if (durable_ && ::fsync(dir_fd_.get()) != 0) fail_errno("fsync", dir_);
}

bool OriginalCheckpointManager::has_checkpoint(std::string_view stage) const {
    // os.path.exists(os.path.join(dir, f"{stage}.checkpoint"))
    std::error_code error;
    return std::filesystem::exists(file_of(stage), error);
}

void OriginalCheckpointManager::clear_checkpoints() {
    // for f in os.listdir(dir): if f.endswith(".checkpoint"): os.remove(os.path.join(dir, f))
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
        if (entry.path().extension() != ".checkpoint") continue;
        if (::unlink(entry.path().c_str()) != 0) fail_errno("unlink", entry.path());
    }
    if (durable_ && ::fsync(dir_fd_.get()) != 0) fail_errno("fsync", dir_);
}

// ---- Output files ----

void write_file_durably(const std::filesystem::path& directory, const std::string& name,
                        std::string_view bytes) {
    const std::filesystem::path temporary = directory / (name + ".tmp");
    const std::filesystem::path target = directory / name;
    {
        Fd file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (file.get() < 0) fail_errno("open", temporary);
        for (std::size_t done = 0; done < bytes.size();) {
            const ssize_t n = ::write(file.get(), bytes.data() + done, bytes.size() - done);
            if (n < 0) fail_errno("write", temporary);
            done += static_cast<std::size_t>(n);
        }
        if (::fsync(file.get()) != 0) fail_errno("fsync", temporary);
    }
    if (::rename(temporary.c_str(), target.c_str()) != 0) fail_errno("rename", target);
    Fd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0 || ::fsync(dir.get()) != 0) fail_errno("fsync", directory);
}

std::string read_file(const std::filesystem::path& file) {
    Fd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) fail_errno("open", file);
    std::string bytes(std::filesystem::file_size(file), '\0');
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::read(in.get(), bytes.data() + done, bytes.size() - done);
        if (n <= 0) fail_errno("read", file);
        done += static_cast<std::size_t>(n);
    }
    return bytes;
}

// ---- FdatasyncLoop ----

FdatasyncLoop::FdatasyncLoop(const std::filesystem::path& file) : file_(file) {
    fd_ = Fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (fd_.get() < 0) fail_errno("open", file);
    write_and_sync();  // the block exists from now on: each loop is a pure data overwrite
}

void FdatasyncLoop::write_and_sync() {
    static char record[100] = "checkpoint_bench fdatasync record";
    if (::pwrite(fd_.get(), record, sizeof record, 0) != static_cast<ssize_t>(sizeof record))
        fail_errno("pwrite", file_);
    if (::fdatasync(fd_.get()) != 0) fail_errno("fdatasync", file_);
}

}  // namespace bench
