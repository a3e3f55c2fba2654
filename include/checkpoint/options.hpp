// checkpoint — how a CheckpointManager opens and writes its database.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace checkpoint {

// How much a save survives once save_checkpoint() has returned.
enum class Durability {
    // Every commit is fsynced (SQLite WAL with synchronous=FULL): an acknowledged save
    // survives a process crash, a kill -9 and a power loss.
    Full,
    // Commits are written but not fsynced (synchronous=NORMAL): an acknowledged save
    // survives a process crash or kill -9; a power loss may lose the last saves, but never
    // corrupts the database.
    Normal,
};

// Options of a CheckpointManager. Every field has a usable default.
struct Options {
    // The pipeline this manager records. Several pipelines may share one database; each
    // sees only its own stages, runs and clears. Same rules as a stage name.
    // Default: "default".
    std::string pipeline = "default";

    // The database file's name inside the checkpoint directory: a plain file name, no '/'.
    // Default: "checkpoints.db".
    std::string database_file = "checkpoints.db";

    // Permission bits of the database file when the manager creates it (SQLite's -wal and
    // -shm files copy them), before the process umask. Default: 0600, owner only.
    unsigned file_mode = 0600;

    // Stage outputs (SaveOptions::output) of at most this many bytes are stored in the
    // database; larger ones in files of the outputs directory. At most 512 MiB.
    // Default: 1.5 MiB (1,572,864 bytes), where a file starts to cost less than a blob
    // (save + load, Durability::Full; README "Performance"). It used to be 1 MiB.
    std::size_t max_inline_output = 1536 * 1024;

    // Durability of each write. Output files are always fsynced before their row
    // commits, whatever the durability. Default: Durability::Full.
    Durability durability = Durability::Full;

    // How long a call waits for another process or connection that holds the database
    // locked before it throws Error(ErrorCode::Busy). Default: 30 seconds.
    std::chrono::milliseconds busy_timeout{30'000};

    // PostgreSQL only (ignored for an SQLite directory): how long a call keeps trying to
    // reconnect after the connection to the server was lost (a restart, a failover to a
    // standby), trying every host of a multi-host URI (with target_session_attrs=read-write
    // only a primary is taken). Once reconnected, a read is retried, and a write whose
    // commit's outcome was unknown is looked up by its client write id: its committed
    // result is returned, or it is written once. Each reconnect is logged at warning level
    // with the host reached. Past this time the call throws Error(ErrorCode::Unavailable)
    // naming the server; 0 makes one attempt, without waiting. Opening is not retried: a
    // server that cannot be reached when the manager is created throws Unavailable at once.
    // From 0 to 24 hours. Default: 30 seconds.
    std::chrono::milliseconds reconnect_timeout{30'000};

    // Open the database read-only: no directory or file is created, no migration is
    // applied, no run is recorded, and the database file is not modified; writes throw
    // Error(ErrorCode::ReadOnly). A missing database throws Error(ErrorCode::NotFound).
    // Default: false.
    bool read_only = false;

    // A key file (README, "Security"): 32 random bytes, or 64 hexadecimal digits and a
    // newline, readable by its owner only (`checkpointctl keygen FILE` writes one). The
    // first manager that opens a database without rows with a key records the key's check
    // value; from then on the history chain is keyed (BLAKE2b with a key derived from the
    // file), the database refuses writes without the key (Error(KeyRequired)) and any
    // other key (Error(WrongKey), before anything is written). A group- or world-readable
    // file is refused with Error(Unsafe), a missing one with Error(NotFound). A key file
    // given for a database that holds rows written without one is refused
    // (Error(InvalidArgument)). Default: empty (no key).
    std::filesystem::path key_file;

    // Where log lines go: info for saves and clears, debug for lookups, error (with the
    // database path) for failures. Default (nullptr): the spdlog logger named "checkpoint",
    // created on first use (stderr, level info) if the application has not registered one.
    std::shared_ptr<spdlog::logger> logger;
};

}  // namespace checkpoint
