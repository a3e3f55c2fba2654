// The backend seam: what CheckpointManager needs from a database, in domain terms. One
// implementation per kind of database (lib/sqlite/: an SQLite file). The rules that are not
// SQL — staleness (staleness.hpp), incomplete stages and run outcomes (run_rules.hpp), the
// validation of names, options and filters (checkpoint_manager.cpp, names.hpp) — live once,
// above the seam: a backend returns facts and calls those rules, so that every backend gives
// the same answers.
//
// A Backend is one connection; it is not thread-safe: CheckpointManager serializes calls
// (read_output_file excepted, see there). Every call throws checkpoint::Error only.
#pragma once

#include "crypto/secret_key.hpp"
#include "history_chain.hpp"
#include "identity.hpp"

#include <checkpoint/error.hpp>
#include <checkpoint/lease.hpp>
#include <checkpoint/options.hpp>
#include <checkpoint/prune.hpp>
#include <checkpoint/records.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace checkpoint::detail {

// Where and how to open the database, validated by the caller (CheckpointManager).
struct BackendConfig {
    std::filesystem::path directory;               // the checkpoint directory
    std::string database_file = "checkpoints.db";  // a plain name inside `directory`
    std::string pipeline;
    Durability durability = Durability::Full;
    std::chrono::milliseconds busy_timeout{30'000};
    bool read_only = false;
    unsigned file_mode = 0600;          // of a database file (and output files) created here
    std::size_t max_inline_output = 0;  // outputs larger than this go to files (SQLite)
    // PostgreSQL: how long to keep reconnecting after a lost connection (Options).
    std::chrono::milliseconds reconnect_timeout{30'000};
    // Where a backend logs what the caller does not see otherwise (a reconnect); null:
    // the default logger.
    std::shared_ptr<spdlog::logger> logger;
    // The key file's keys (Options::key_file), or none. The backend checks it against the
    // database's recorded key when it opens (crypto/key_check.hpp: judge_key) and again
    // inside every write transaction.
    std::shared_ptr<const DatabaseKey> key;
};

// The run this backend records on its first write.
struct RunIdentity {
    std::string run_id;
    ProcessIdentity process;
};

// What a write appended.
struct Appended {
    std::int64_t id = 0;
    std::int64_t version = 0;
};

// One write, applied with others in a batch (see Backend::write_batch).
struct Write {
    enum class Kind {
        Stage,            // a row for `stage` with `status`; Completed rows get the next version
        PipelineClear,    // a pipeline-wide Cleared row: every stage before it is cleared
        Import,           // a Completed row stamped `timestamp`, unless one with the same
                          // stage, timestamp and message exists (then `appended` stays empty)
        ClearDownstream,  // Cleared rows for `stage` and every stage downstream of it
    };
    Kind kind = Kind::Stage;
    std::string stage;
    Status status = Status::Completed;
    std::optional<std::int64_t> duration_ms;
    std::string message;
    std::string timestamp;  // Import only
    // Stage writes made under a lease (fenced): inside the transaction the backend checks
    // that this token is still the stage's current claim, held by this run and not lapsed
    // (fence_failed() otherwise); the row records it in lease_token.
    std::optional<std::int64_t> lease_token;

    // Completed Stage writes only (SaveOptions), already validated:
    std::string metadata;                 // compact JSON object text; empty: none
    std::string fingerprint;              // empty: none
    const std::string* output = nullptr;  // the output's bytes (the caller's), or none
    std::string output_sha256;            // its SHA-256, hex (see prepare_output)
    bool output_in_database = true;       // set by Backend::prepare_output
    std::vector<std::string> inputs;      // upstream stages, checked by the backend

    // Results, set by write_batch.
    std::optional<Appended> appended;
    std::vector<std::string> cleared;  // ClearDownstream: the stages cleared, `stage` first
    std::exception_ptr error;          // an Error; nothing of this write was written

    // The write's client id (a UUID), drawn by a backend that needs one (PostgreSQL: to
    // find out after a lost connection whether the write committed); empty until then.
    std::string write_id;
};

// The stage's current state as has_checkpoint() sees it.
struct HeadState {
    bool completed = false;    // the last row is Completed, and no clear came after it
    std::string fingerprint;   // of that row (read only when asked for)
    std::string stale_reason;  // why the completed row is not up to date; empty if it is
};

// Where a stored output is. `data` holds the bytes when they are in the database.
struct OutputLocation {
    StoredOutput output;
    std::string data;
};

// A run as stored, for copies between databases (copy_history).
struct RawRun {
    std::string run_id;
    std::string pipeline;
    std::string host;
    std::int64_t pid = 0;
    std::string user;
    std::string started_at;
    std::optional<std::string> ended_at;
    std::string outcome;       // as stored: running, finished, failed, died
    std::string heartbeat_at;  // empty: none recorded
};

// A history row as stored, with its inputs, for copies between databases.
struct RawRow {
    std::int64_t id = 0;
    std::string pipeline;
    std::optional<std::string> stage;  // none: a pipeline-wide clear
    std::string status;                // as stored: started, completed, failed, cleared
    std::int64_t version = 0;
    std::string timestamp;
    std::string run_id;
    std::optional<std::int64_t> duration_ms;
    std::optional<std::string> message;
    std::optional<std::string> metadata;  // compact JSON object text
    std::optional<std::string> fingerprint;
    std::optional<StoredOutput> output;       // where the source keeps it does not matter
    std::vector<InputVersion> inputs;         // in SaveOptions order
    std::optional<std::int64_t> lease_token;  // the claim the row was written under
};

// What Backend::claim_lease found: the new token, or the live claim that holds the stage.
struct LeaseClaim {
    std::optional<std::int64_t> token;  // set: the stage is now claimed with this token
    StageLease holder;                  // otherwise: who holds it
};

// The error of a fenced write whose lease is no longer the stage's live claim.
Error lease_lost_error(const std::string& description, const std::string& action,
                       const std::string& stage, std::int64_t token);

// Writes a copied history into an empty database, in one transaction: runs first, then
// rows in id order; commit() derives the current state (stage heads, pipelines) from them.
// Destroying it without commit() writes nothing.
class HistoryImport {
public:
    virtual ~HistoryImport() = default;
    virtual void add_run(const RawRun& run) = 0;
    // `output` holds the row's output bytes (checked against row.output by the caller).
    virtual void add_row(const RawRow& row, const std::string* output) = 0;
    virtual void commit() = 0;
};

class Backend {
public:
    virtual ~Backend() = default;

    // Where the database is, for log lines: the file's path, or a server's address (never
    // a password).
    virtual const std::string& location() const noexcept = 0;
    // "checkpoint database <location>", for messages.
    virtual const std::string& description() const noexcept = 0;
    // The database file; empty for a backend that has none.
    virtual const std::filesystem::path& path() const noexcept = 0;
    // The schema version this library writes to this kind of database.
    virtual int schema_version() const noexcept = 0;
    // When opening created the database (0) or migrated it: the schema version it had;
    // std::nullopt when it was up to date (or read-only).
    virtual std::optional<int> migrated_from() const noexcept { return std::nullopt; }
    // Where outputs stored outside the database go; empty for a backend that keeps every
    // output in the database.
    virtual const std::filesystem::path& outputs_directory() const noexcept = 0;

    // ---- Writes ----

    // Called before the save is queued, without the connection: decides where the output
    // goes (sets write.output_in_database) and stores what must be stored outside the
    // transaction (SQLite: a file too large for the database, written and fsynced here;
    // the transaction writes it again if it vanished meanwhile). May set
    // write.output_sha256 (SQLite: hashed while the file is written); the caller computes it
    // when left empty. Thread-safe. Throws Error.
    virtual void prepare_output(Write& write) const = 0;

    // Applies `writes` in one transaction, so that they share one commit; the run is
    // recorded with its first write. Each write gets its result or its own error: a write
    // that fails is rolled back alone, and when the transaction as a whole fails every
    // write gets the error and nothing was written. Never throws for a write's failure.
    virtual void write_batch(const std::vector<Write*>& writes) = 0;

    // Records the end of the run (if it was recorded at all), "failed" when `failed`.
    virtual void close_run(bool failed) = 0;

    // Deletes history rows as PruneOptions (already validated) says. Throws Error.
    virtual PruneResult prune(const PruneOptions& options) = 0;

    // ---- Leases (the rules above them: lease.cpp, checkpoint_manager.cpp) ----
    // Each is one write transaction; expiry is decided by the clock of the database
    // (PostgreSQL's clock_timestamp()) or of the process holding the write lock (SQLite).

    // Claims `stage` for this run for `ttl`, unless another claim on it is live: then
    // returns that holder. The token is the stage's last token + 1. Records the run if
    // needed. Throws Error.
    virtual LeaseClaim claim_lease(const std::string& stage, std::chrono::milliseconds ttl) = 0;
    // Extends the claim `token` of this run to ttl from now; false (and nothing written)
    // when it is no longer the stage's live claim. Throws Error.
    virtual bool renew_lease(const std::string& stage, std::int64_t token,
                             std::chrono::milliseconds ttl) = 0;
    // Ends the claim `token` of this run (nothing when it is no longer the stage's claim).
    // Need not be durable: a release lost in a crash only leaves the claim to lapse.
    // Throws Error.
    virtual void release_lease(const std::string& stage, std::int64_t token) = 0;
    // The unreleased claims of this pipeline, by stage, with `live` by the database's clock.
    virtual std::vector<StageLease> leases() = 0;

    // ---- Reads ----

    // The stage's current state (the fingerprint is read only when `with_fingerprint`).
    virtual HeadState head_state(const std::string& stage, bool with_fingerprint) = 0;

    // The output of the stage's current completed version (no `version`), or of completed
    // version `version`; std::nullopt when there is no such row or it has no output.
    // Throws Error(OutputDamaged) when the database lacks the bytes it promises.
    virtual std::optional<OutputLocation> output_of(const std::string& stage,
                                                    std::optional<std::int64_t> version) = 0;
    // The bytes of an output that output_of() located outside the database, checked against
    // its size and SHA-256 (Error(OutputDamaged) otherwise). Thread-safe: it does not use
    // the connection, so it runs without the manager's lock.
    virtual std::string read_output_file(const StoredOutput& output) const = 0;

    virtual std::optional<Checkpoint> current(const std::string& stage) = 0;
    virtual std::vector<Checkpoint> current_all() = 0;
    // `filter` is validated, its time bounds in the stored form (normalize_time_bound).
    // Rows in id order, or newest first with filter.newest_first; with filter.before_id only
    // rows below it. A page of newest-first rows (with a stage or not) must cost the same
    // however long the history is: CheckpointManager::history's contract.
    virtual void for_each_history(const HistoryFilter& filter,
                                  const std::function<void(const Checkpoint&)>& visit) = 0;
    virtual std::vector<Run> runs() = 0;
    // Every pipeline that has written to the database (any pipeline), sorted by its bytes.
    virtual std::vector<std::string> pipelines() = 0;
    virtual std::vector<std::string> verify() = 0;
    // CheckpointManager::backup's copy. The default (a server database) refuses it.
    virtual void backup(const std::filesystem::path& destination);

    // ---- The history chain (history_chain.hpp) ----
    // Every write transaction extends it (under the lock that serializes writers).

    // The chain's start, head and prune anchors.
    virtual ChainState chain_state() = 0;
    // The neutral verify_chain() over the chain's state and every chained row, read in one
    // snapshot; `expect`: a head the caller kept (checkpointctl verify --expect-head).
    virtual std::vector<std::string> verify_chain(const std::optional<ChainHead>& expect) = 0;
    // The key the chain is keyed with (the key file's, when the database records a key);
    // nullptr for an unkeyed chain.
    virtual const SecretKey* chain_key() const noexcept = 0;
    // True when the database records a key and none was given (judge_key: KeyMissing).
    virtual bool key_missing() const noexcept = 0;
    // Re-encrypts everything under `new_key` (the backend was opened with the old one),
    // re-keys the chain and records the new key, atomically for readers; then deletes what
    // only the old key could read. The caller (lib/rekey.cpp) checked that the database is
    // encrypted (chain_key()) and that `new_key` is another key. Throws Error.
    virtual void rekey(std::shared_ptr<const DatabaseKey> new_key) = 0;
    // After a rekey killed once its commit was done: deletes what only an old key can read.
    virtual void finish_rekey() = 0;

    // ---- Copies (copy_history) ----

    // Every run, then every history row in id order, of every pipeline, with each row's
    // output bytes (std::nullopt when it has none). Outputs are loaded one at a time.
    virtual void export_history(
        const std::function<void(const RawRun&)>& run,
        const std::function<void(const RawRow&, const std::optional<std::string>&)>& row) = 0;
    // Starts a copy into this database: throws Error(InvalidArgument) when it holds any run
    // or history row already (nothing is written then).
    virtual std::unique_ptr<HistoryImport> begin_import() = 0;
};

// Opens (and, unless read-only, creates and migrates) the database `config` names.
// Throws Error as documented on the CheckpointManager constructor.
std::unique_ptr<Backend> open_backend(const BackendConfig& config, RunIdentity run);

}  // namespace checkpoint::detail
