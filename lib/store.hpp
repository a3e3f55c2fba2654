// The SQLite store: the one place (with migrations/) that holds SQL. One Store is one
// connection; it is not thread-safe — CheckpointManager serializes calls to it.
#pragma once

#include "identity.hpp"

#include <checkpoint/options.hpp>
#include <checkpoint/records.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace checkpoint::detail {

struct StoreConfig {
    std::filesystem::path directory;  // the checkpoint directory
    std::string database_file = "checkpoints.db";  // a plain name inside `directory`
    std::string pipeline;
    Durability durability = Durability::Full;
    std::chrono::milliseconds busy_timeout{30'000};
    bool read_only = false;
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

class Store {
public:
    // Opens (and, unless read-only, creates and migrates) <directory>/checkpoints.db.
    // Throws Error as documented on the CheckpointManager constructor.
    Store(const StoreConfig& config, RunIdentity run);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const std::filesystem::path& path() const noexcept;

    // ---- Writes: one BEGIN IMMEDIATE transaction each; the run row is written with the
    // first of them. Throw Error; on throw nothing was written. ----

    // Appends a row for `stage` with `status` (Started, Completed, Failed or Cleared) and
    // moves the stage's head to it. Completed rows get the next version.
    Appended append(const std::string& stage, Status status,
                    std::optional<std::int64_t> duration_ms, const std::string& message);

    // Appends a Completed row stamped `timestamp` with `message`, unless one with the same
    // stage, timestamp and message exists (then returns std::nullopt, writing nothing).
    std::optional<Appended> import_completed(const std::string& stage, const std::string& timestamp,
                                             const std::string& message);

    // Appends a pipeline-wide Cleared row and marks every stage before it cleared.
    Appended clear_pipeline();

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
