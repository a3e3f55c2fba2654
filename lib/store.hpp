// The SQLite store: the one place (with migrations/) that holds SQL. One Store is one
// connection; it is not thread-safe — CheckpointManager serializes calls to it.
#pragma once

#include "identity.hpp"

#include <checkpoint/options.hpp>
#include <checkpoint/records.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace checkpoint::detail {

struct StoreConfig {
    std::filesystem::path directory;               // the checkpoint directory
    std::string database_file = "checkpoints.db";  // a plain name inside `directory`
    std::string pipeline;
    Durability durability = Durability::Full;
    std::chrono::milliseconds busy_timeout{30'000};
    bool read_only = false;
    unsigned file_mode = 0600;  // of a database file created here
};

// The run this store records on its first write.
struct RunIdentity {
    std::string run_id;
    ProcessIdentity process;
};

// What a write appended.
struct Appended {
    std::int64_t id = 0;
    std::int64_t version = 0;
};

// One write, applied with others in a batch (see Store::write_batch).
struct Write {
    enum class Kind {
        Stage,          // a row for `stage` with `status`; Completed rows get the next version
        PipelineClear,  // a pipeline-wide Cleared row: every stage before it is cleared
        Import,         // a Completed row stamped `timestamp`, unless one with the same
                        // stage, timestamp and message exists (then `appended` stays empty)
    };
    Kind kind = Kind::Stage;
    std::string stage;
    Status status = Status::Completed;
    std::optional<std::int64_t> duration_ms;
    std::string message;
    std::string timestamp;  // Import only

    // Results, set by write_batch.
    std::optional<Appended> appended;
    std::exception_ptr error;  // an Error; nothing of this write was written
};

class Store {
public:
    // Opens (and, unless read-only, creates and migrates) <directory>/checkpoints.db.
    // Throws Error as documented on the CheckpointManager constructor.
    Store(const StoreConfig& config, RunIdentity run);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const std::filesystem::path& path() const noexcept;

    // ---- Writes ----

    // Applies `writes` in one BEGIN IMMEDIATE transaction, so that they share one commit
    // (and one fsync); the run row is written with the run's first write. Each write gets
    // its result or its own error: a write that fails is rolled back alone (savepoints),
    // and when the transaction as a whole fails, every write gets the error and nothing
    // was written. Never throws for a write's failure.
    void write_batch(const std::vector<Write*>& writes);

    // Records the end of the run (if it was recorded at all). Throws Error.
    void close_run();

    // ---- Reads ----
    bool has_completed(const std::string& stage);
    std::optional<Checkpoint> current(const std::string& stage);
    std::vector<Checkpoint> current_all();
    void for_each_history(const HistoryFilter& filter,
                          const std::function<void(const Checkpoint&)>& visit);
    std::vector<Run> runs();
    std::vector<std::string> verify();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace checkpoint::detail
