// checkpoint — records a pipeline's progress stage by stage in an SQLite database, so an
// interrupted pipeline resumes at the first unfinished stage.
//
//     checkpoint::CheckpointManager manager;              // ./checkpoints/checkpoints.db
//     if (!manager.has_checkpoint("data_ingestion")) {
//         ingest();
//         manager.save_checkpoint("data_ingestion");      // durable when it returns
//     }
//     manager.run_stage("training", [] { train(); });     // skipped once completed
#pragma once

#include <checkpoint/error.hpp>
#include <checkpoint/export.hpp>
#include <checkpoint/fingerprint.hpp>
#include <checkpoint/lease.hpp>
#include <checkpoint/options.hpp>
#include <checkpoint/prune.hpp>
#include <checkpoint/records.hpp>
#include <checkpoint/save_options.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace checkpoint {

namespace detail {
struct ChainHead;
}

// The schema version this library writes to SQLite databases (their PRAGMA user_version).
// PostgreSQL databases number their own schema: see CheckpointManager::schema_version().
CHECKPOINT_EXPORT int schema_version() noexcept;

// The longest stage or pipeline name accepted, in bytes of UTF-8.
inline constexpr std::size_t max_name_bytes = 1024;
// Failure messages longer than this (in bytes) are stored truncated.
inline constexpr std::size_t max_message_bytes = 64 * 1024;

// Whether clear_checkpoint() also clears the stages that consumed the stage.
enum class ClearScope {
    StageOnly,       // only the stage named
    WithDownstream,  // the stage and, transitively, every stage whose current checkpoint
                     // named it (or one of them) in SaveOptions::inputs
};

// Records the stages of one pipeline in <checkpoint_dir>/checkpoints.db (SQLite), or in a
// PostgreSQL database when the location is a postgresql:// or postgres:// URI.
//
// Stage names are data: any valid UTF-8 text of 1 to max_name_bytes bytes without NUL
// bytes, stored and returned verbatim; no file is ever created from a stage name. Calls
// given an invalid name throw Error(ErrorCode::InvalidArgument) and write nothing.
//
// Each instance is one run: its first write records a run (run id, host, pid, user, start)
// and its destruction records the end. An instance that only reads records nothing.
//
// Thread safety: a CheckpointManager is safe for concurrent use from multiple threads
// without external synchronization. Many processes may use the same directory at once
// (SQLite WAL; writes take the lock up front and wait up to Options::busy_timeout), and
// processes on many hosts the same PostgreSQL database (a lock wait is bounded by
// Options::busy_timeout too; deadlocks and serialization failures are retried inside).
//
// Every write is one transaction: when the call returns it is committed (and, with
// Durability::Full, on disk); when it throws, nothing of it was written. One exception:
// when the disk fails to sync while committing, checkpoint discards the commit record with
// a second commit; if the disk fails that too, the Error (ErrorCode::Io) says that the
// write may have reached the disk, and reopening the database tells.
class CHECKPOINT_EXPORT CheckpointManager {
public:
    // Opens ./checkpoints/checkpoints.db, creating the directory and database if missing.
    CheckpointManager();

    // Opens <checkpoint_dir>/checkpoints.db, creating the directory (with parents) and the
    // database when missing (unless options.read_only), and applies pending schema
    // migrations in one transaction.
    // A `checkpoint_dir` that starts with "postgresql://" or "postgres://" is a libpq
    // connection URI instead (several hosts, target_session_attrs, sslmode, ...; the
    // password from the URI, PGPASSWORD or ~/.pgpass): the database must exist; its tables
    // are created (or migrated) on the first open. Options::database_file and file_mode do
    // not apply there; every output is stored in the database.
    // Throws Error: InvalidArgument (bad pipeline name, options or URI), Io (the directory
    // cannot be created or written), NotFound (read_only and no database), NotADatabase
    // (the file or database is not a checkpoint database; it is left unchanged), Corrupt,
    // SchemaTooNew (written by a newer library; nothing is written), SchemaTooOld
    // (read_only and the database needs a migration), Busy, Unavailable (the server cannot
    // be reached, refused the login, or the database does not exist).
    explicit CheckpointManager(std::filesystem::path checkpoint_dir, Options options = {});

    // Closes the run (records its end and outcome) if this instance wrote anything. Never
    // throws; a failure to record the end is logged, and the run then reads as Died.
    ~CheckpointManager();

    CheckpointManager(const CheckpointManager&) = delete;
    CheckpointManager& operator=(const CheckpointManager&) = delete;
    // Moving transfers the run; a moved-from manager may only be destroyed or assigned to.
    CheckpointManager(CheckpointManager&&) noexcept;
    CheckpointManager& operator=(CheckpointManager&&) noexcept;

    // ---- Writes. Each is one transaction; each throws Error and then wrote nothing. ----

    // Records `stage` as completed, as a new version (1, 2, 3, ... per stage). If the stage
    // was begun in this run, the row carries the time since begin_stage() as its duration.
    void save_checkpoint(std::string_view stage);

    // The same, with metadata, a fingerprint, the stage's output and the upstream stages it
    // consumed (see SaveOptions). An output file is written, fsynced and renamed into the
    // outputs directory before the row commits, so a checkpoint never names a missing or
    // partial file. Throws Error(InvalidArgument) for bad metadata, fingerprint or inputs
    // (an input that is not completed and up to date, the stage itself, a duplicate),
    // Error(Io/DiskFull) when the output file cannot be written, Error(Unsafe) when the
    // outputs directory is a symbolic link; nothing is recorded then.
    void save_checkpoint(std::string_view stage, const SaveOptions& options);

    // Records that `stage` started (status Started). has_checkpoint(stage) is false from
    // now until the stage is saved again.
    void begin_stage(std::string_view stage);

    // Records that `stage` failed, with `message` (any bytes; NUL and invalid UTF-8 bytes are
    // replaced by U+FFFD and text beyond max_message_bytes is cut). has_checkpoint(stage) is false.
    void fail_stage(std::string_view stage, std::string_view message);

    // Runs a stage unless it is already completed. When has_checkpoint(stage): returns false
    // without calling fn. Otherwise: begin_stage(stage), fn(), save_checkpoint(stage) and
    // returns true; if fn throws, records fail_stage(stage, <the exception's what()>) and
    // rethrows the exception unchanged.
    bool run_stage(std::string_view stage, const std::function<void()>& fn);

    // ---- Leases: parallel workers (see lease.hpp and "Leases" in the README). ----

    // Claims `stage` for this manager, so that among all the workers that claim it (any
    // process, any host sharing the database) one at a time runs it. Returns the Lease when
    // this caller may now run the stage; std::nullopt when the stage is completed and up
    // to date (has_checkpoint), also when it became so while waiting for another holder.
    // While another live claim holds the stage, waits (polling with a bounded back-off)
    // until it is released or lapses, for at most options.wait. Each claim gets the next
    // fencing token of the stage. While the Lease is held, this manager's begin_stage,
    // save_checkpoint and fail_stage of the stage are fenced (see Lease).
    // Throws Error(InvalidArgument) for a bad name or options, or when this manager holds a
    // lease on the stage already; Error(Busy) when `wait` ran out while another live lease
    // held it; Error as for writes (a claim is a write).
    std::optional<Lease> claim_stage(std::string_view stage, const LeaseOptions& options = {});

    // run_stage with a lease: claim_stage(stage, lease); std::nullopt -> returns false
    // without calling fn. Otherwise begin_stage, fn(), save_checkpoint (both fenced),
    // release, and returns true; if fn throws, records fail_stage (fenced; a failure of it
    // is logged) and rethrows fn's exception unchanged. Throws Error(LeaseLost) when the
    // claim was lost before the save (the save wrote nothing; another worker has the stage).
    bool run_stage(std::string_view stage, const std::function<void()>& fn,
                   const LeaseOptions& lease);

    // The unreleased claims of this pipeline's stages, ordered by stage, with whether each
    // is live by the database's clock. Only reads.
    std::vector<StageLease> leases() const;

    // Atomically resets every stage of this pipeline to not-completed. One history row
    // records the clear (with an empty stage); the cost does not depend on how many
    // checkpoints exist. Versions keep counting from where they were.
    void clear_checkpoints();

    // Resets one stage to not-completed (a Cleared row). Clearing a stage that was never
    // saved still records the clear.
    void clear_checkpoint(std::string_view stage);

    // The same, and with ClearScope::WithDownstream also every stage downstream of it, all
    // in one transaction (one Cleared row per stage). Returns the stages cleared, `stage`
    // first, then the others by name.
    std::vector<std::string> clear_checkpoint(std::string_view stage, ClearScope scope);

    // Deletes old history rows of this pipeline (see PruneOptions for which, and what is
    // never deleted — note that this manager's own run is still running, so the rows it
    // wrote are kept until a later run prunes), the runs left without rows, and output files no
    // remaining row references; also output files orphaned by a process killed while saving. Rows
    // go in one transaction, and a file is deleted only once no remaining row names it, so a prune
    // killed half-way never leaves a current checkpoint without its output. Throws
    // Error(InvalidArgument) for bad options; Error as for writes.
    PruneResult prune(const PruneOptions& options);

    // Records `stage` as completed at `timestamp` (the stored form, e.g.
    // "2026-11-27T06:37:48.123Z") with `source` (where it came from) as its message: for
    // importing checkpoints made elsewhere, such as the original design's files. Returns
    // false and writes nothing when a Completed row with the same stage, timestamp and
    // source exists already, so an import can be run again safely.
    // Throws Error(InvalidArgument) for a bad name or timestamp.
    bool import_checkpoint(std::string_view stage, std::string_view timestamp,
                           std::string_view source);

    // ---- Reads. They never write, never create a run, and see every committed write. ----

    // True when the stage's current state is completed and up to date: its last row is
    // Completed, no clear (of the stage or of the pipeline) came after it, its output file
    // (if any) exists with its recorded size, and every input it recorded is still at the
    // version it used and up to date itself (transitively).
    bool has_checkpoint(std::string_view stage) const;

    // has_checkpoint(stage), and the checkpoint was saved with this fingerprint (a save
    // without a fingerprint matches only the empty fingerprint).
    bool has_checkpoint(std::string_view stage, std::string_view fingerprint) const;

    // The output saved with the stage's current completed version: std::nullopt when the
    // stage is not completed (never saved, cleared, failed, ...) or was saved without an
    // output. Staleness does not matter here. The bytes are checked against their SHA-256.
    // Throws Error(OutputDamaged) when the output file is missing, truncated or altered.
    std::optional<std::string> load_output(std::string_view stage) const;

    // The output saved with version `version` of the stage, while its row is retained:
    // std::nullopt when there is no such completed version (never made, or pruned) or it
    // has no output. Throws as load_output(stage).
    std::optional<std::string> load_output(std::string_view stage, std::int64_t version) const;

    // The current state of `stage`: its last row, reported as Cleared (with the clear's id,
    // timestamp, run and the stage's last version) when a pipeline-wide clear came after
    // it, and as Incomplete when it is Started and its run has ended or died. std::nullopt
    // when the stage has no row at all.
    std::optional<Checkpoint> latest(std::string_view stage) const;

    // The current state (as latest()) of every stage of this pipeline, ordered by stage name.
    std::vector<Checkpoint> stages() const;

    // The history of this pipeline, oldest first, filtered by `filter`.
    std::vector<Checkpoint> history(const HistoryFilter& filter = {}) const;

    // Streams the same rows as history(filter) to `visit`, one at a time, in constant
    // memory. `visit` must not call this manager (the connection is held meanwhile).
    void for_each_history(const HistoryFilter& filter,
                          const std::function<void(const Checkpoint&)>& visit) const;

    // Every run of this pipeline, oldest first. A run that never ended reads as Died when
    // its process (on this host) no longer exists.
    std::vector<Run> runs() const;

    // The names of every pipeline that has written to this database (any pipeline, not only
    // this manager's: a pipeline appears with its first write and stays, even once pruned or
    // cleared), sorted by their UTF-8 bytes. Empty for a database nothing was written to.
    std::vector<std::string> pipelines() const;

    // Checks the whole database file (every pipeline in it): SQLite's integrity check, then
    // the invariants of the history — valid statuses and timestamps, completed versions
    // strictly increasing per stage, every row's run recorded, and the derived state
    // (current_state) agreeing with the history, stored outputs complete (every output file
    // a row names present, with its size and SHA-256; every output in the database too),
    // metadata valid JSON objects. Returns one line per problem found (at
    // most 1000); empty when the database is sound. Only reads. Throws Error when the
    // file cannot be read at all.
    //
    // Then the tamper-evident history (README, "Security"): recomputes the hash chain over
    // every row written since the chain started (in id order, every pipeline) and reports
    // each row that does not match its hash — an edited column, a deleted, inserted or
    // moved row names the first row after it — or has none (inserted by something else).
    // With a key the chain is keyed, and encrypted outputs are decrypted and checked; a
    // database that records a key needs it here (Error(KeyRequired) without it).
    std::vector<std::string> verify() const;
    // The same, and also checks `expected_head` ("<row id> <64 hex digits>", as
    // history_head() returned it earlier): a problem when that row is gone (the newest rows
    // were deleted) or differs. Throws Error(InvalidArgument) for malformed text.
    std::vector<std::string> verify(std::string_view expected_head) const;

    // The head of the history chain: "<row id> <64 hex digits>", the newest row and its
    // hash, for the caller to keep outside the database (`checkpointctl seal`) and check
    // later with verify(expected_head). "<start> 000…0" while no row was chained. Throws
    // Error(KeyRequired) for a database that records a key when none was given.
    std::string history_head() const;

    // Writes a consistent copy of the database (every pipeline) into `destination`, a
    // directory (created if missing) that must not hold a file of the database's name yet:
    // <destination>/<Options::database_file> and, for the outputs stored as files, the
    // files the copied rows name in its -outputs directory; the copy is self-contained
    // (no -wal) and passes verify(). Online: it reads one snapshot (SQLite's backup API)
    // while other processes go on writing, and blocks none of them. Works on a read-only
    // manager. Throws Error(InvalidArgument) when `destination` already holds the database
    // file or on PostgreSQL (use pg_dump there), Error(Io) or Error(DiskFull) when the copy
    // cannot be written (the unfinished database file is removed; output files already
    // copied stay, and a new backup into the same directory reuses them),
    // Error(OutputDamaged) when an output file a copied row names is missing or altered in
    // the source. Thread-safe.
    void backup(const std::filesystem::path& destination) const;

    // ---- Identity. ----

    // This instance's run id (assigned at construction, recorded at the first write).
    const std::string& run_id() const noexcept;
    // Where outputs too large for the database are stored:
    // <checkpoint_dir>/<Options::database_file>-outputs (by default
    // checkpoints.db-outputs), one file per distinct output, named by its SHA-256. Empty on
    // PostgreSQL, which keeps every output in the database.
    std::filesystem::path outputs_directory() const;
    // The schema version this library writes to this manager's kind of database: the free
    // function schema_version() on SQLite; PostgreSQL's own numbering (checkpoint_schema).
    int schema_version() const noexcept;
    // The pipeline name from Options.
    const std::string& pipeline() const noexcept;
    // <checkpoint_dir>/<Options::database_file>: by default <checkpoint_dir>/checkpoints.db.
    // Empty on PostgreSQL (there is no file: see location()).
    const std::filesystem::path& database_path() const noexcept;
    // Where the database is, for messages and tools: database_path() as text on SQLite; on
    // PostgreSQL the connection URI with its password replaced by "***".
    const std::string& location() const noexcept;

private:
    std::vector<std::string> verify_history(
        const std::optional<detail::ChainHead>& expected_head) const;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace checkpoint
