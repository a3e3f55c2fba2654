// SqliteBackend: opening, writes and reads (see sqlite_backend_impl.hpp for the other files).
#include "sqlite/sqlite_backend.hpp"

#include "clock.hpp"
#include "crypto/field_cipher.hpp"
#include "migrations.hpp"
#include "sqlite/chain.hpp"
#include "sqlite/db_file.hpp"
#include "sqlite/migrate.hpp"
#include "sqlite/output_files.hpp"
#include "sqlite/sqlite_backend_impl.hpp"
#include "sqlite/verify.hpp"
#include "stored_values.hpp"

#include <checkpoint/error.hpp>

#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <sqlite3.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

// ---- SQL. Column lists match read_checkpoint(). ----

// The stage's current completed row (none when its last row is not Completed, or a
// pipeline-wide clear came after it): its id, version and whether it has anything to check.
constexpr const char* sql_completed_head =
    "SELECT h.head_id, h.version, h.checks "
    "FROM stage_heads h JOIN pipelines p ON p.pipeline = h.pipeline "
    "WHERE h.pipeline = ?1 AND h.stage = ?2 AND h.status = 'completed' "
    "AND h.head_id > p.cleared_id";

constexpr const char* sql_row_outputs =
    "SELECT output_size, output_sha256, output_in_database, input_count, fingerprint "
    "FROM checkpoints WHERE id = ?1";

// The inputs a row recorded, with the current state of each input stage.
constexpr const char* sql_input_states =
    "SELECT i.input_stage, i.input_id, i.input_version, h.head_id, h.status, h.version, "
    "p.cleared_id FROM checkpoint_inputs i "
    "LEFT JOIN stage_heads h ON h.pipeline = ?1 AND h.stage = i.input_stage "
    "LEFT JOIN pipelines p ON p.pipeline = ?1 "
    "WHERE i.checkpoint_id = ?2 ORDER BY i.position";

// A history row, written once: its id, version, key (an encrypted database: its message
// and metadata are ciphertext) and chain hash are computed before the INSERT, under the
// write lock (append_row). The parameters are in chain_row_columns order (its PostgreSQL-
// only write_id aside), then the hash.
constexpr const char* sql_append =
    "INSERT INTO checkpoints "
    "(id, pipeline, stage, status, version, timestamp, run_id, duration_ms, message, "
    "metadata, fingerprint, output_size, output_sha256, output_in_database, input_count, "
    "key_id, lease_token, chain_hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

// The stage's latest completed version (0 if none): what its next row records.
constexpr const char* sql_stage_version =
    "SELECT version FROM stage_heads WHERE pipeline = ?1 AND stage = ?2";

constexpr const char* sql_insert_input =
    "INSERT INTO checkpoint_inputs "
    "(checkpoint_id, position, input_stage, input_id, input_version) VALUES (?1, ?2, ?3, ?4, ?5)";

constexpr const char* sql_insert_output_data =
    "INSERT INTO output_data (checkpoint_id, data) VALUES (?1, ?2)";

constexpr const char* sql_move_head =
    "INSERT INTO stage_heads (pipeline, stage, status, version, head_id, checks) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (pipeline, stage) DO UPDATE SET "
    "status = excluded.status, version = excluded.version, head_id = excluded.head_id, "
    "checks = excluded.checks";

constexpr const char* sql_find_import =
    "SELECT 1 FROM checkpoints WHERE pipeline = ?1 AND stage = ?2 AND status = 'completed' "
    "AND timestamp = ?3 AND message = ?4";

constexpr const char* sql_mark_pipeline_cleared =
    "UPDATE pipelines SET cleared_id = ?2 WHERE pipeline = ?1";

constexpr const char* sql_insert_run =
    "INSERT INTO runs (run_id, pipeline, host, pid, user, started_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

constexpr const char* sql_insert_pipeline =
    "INSERT INTO pipelines (pipeline) VALUES (?1) ON CONFLICT DO NOTHING";

constexpr const char* sql_close_run =
    "UPDATE runs SET ended_at = ?2, outcome = ?3 WHERE run_id = ?1";

constexpr const char* sql_schema_header =
    "SELECT (SELECT application_id FROM pragma_application_id()), "
    "(SELECT user_version FROM pragma_user_version()), (SELECT count(*) FROM sqlite_schema)";

constexpr const char* sql_open_runs_on_host =
    "SELECT run_id, pid FROM runs WHERE outcome = 'running' AND host = ?1";

constexpr const char* sql_mark_run_died =
    "UPDATE runs SET outcome = 'died' WHERE run_id = ?1 AND outcome = 'running'";

// Selected from a view aliased `v` (history or current_state).
constexpr const char* checkpoint_columns =
    "id, pipeline, stage, status, version, timestamp, run_id, duration_ms, message, "
    "host, pid, run_outcome, metadata, fingerprint, output_size, output_sha256, "
    "output_in_database, inputs, "
    "(SELECT l.lease_token FROM checkpoints l WHERE l.id = v.id)";
constexpr int checkpoint_column_count = 19;

constexpr const char* sql_runs =
    "SELECT run_id, pipeline, host, pid, user, started_at, ended_at, outcome, "
    "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.run_id AND c.status = 'completed'), "
    "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.run_id AND c.status = 'failed') "
    "FROM runs r WHERE pipeline = ?1 ORDER BY started_at, run_id";

std::optional<std::string> optional_text(const SQLite::Column& column) {
    if (column.isNull()) return std::nullopt;
    return column.getString();
}

// Reads one row selected with `checkpoint_columns` (from the history or current_state
// view), its status as reported_status() says (`open_attempt`: it was never finished).
// `encrypted`: the database records a key. With `key` (it was given) the message and
// metadata are decrypted; without it (KeyMissing) they read as "(encrypted)" and no
// metadata. In a plaintext database nothing is taken for a ciphertext: a message that
// happens to look sealed is the user's text, and such metadata is damage (Corrupt).
Checkpoint read_checkpoint(SQLite::Statement& row, const std::string& description,
                           LivenessCache& liveness, bool open_attempt, bool encrypted,
                           const DatabaseKey* key) {
    Checkpoint checkpoint;
    checkpoint.id = row.getColumn(0).getInt64();
    checkpoint.pipeline = row.getColumn(1).getString();
    checkpoint.stage = row.getColumn(2).getString();  // NULL (pipeline-wide clear) → ""
    const Status stored = parse_status(row.getColumn(3).getString(), description);
    checkpoint.version = row.getColumn(4).getInt64();
    checkpoint.timestamp = row.getColumn(5).getString();
    checkpoint.run_id = row.getColumn(6).getString();
    if (!row.getColumn(7).isNull())
        checkpoint.duration = std::chrono::milliseconds(row.getColumn(7).getInt64());
    checkpoint.message = row.getColumn(8).getString();
    // NULL: no metadata; any text (an empty one too) must parse as a JSON object.
    bool has_metadata = !row.getColumn(12).isNull();
    std::string metadata = has_metadata ? row.getColumn(12).getString() : std::string();
    if (encrypted) {  // (the context and the row's name only then: not per plaintext row)
        const FieldContext context{checkpoint.pipeline, checkpoint.stage, checkpoint.version, ""};
        const std::string where = description + ": history row " + std::to_string(checkpoint.id);
        if (is_sealed_text(checkpoint.message)) {
            checkpoint.message =
                key ? open_text_field(*key,
                                      {context.pipeline, context.stage, context.version, "message"},
                                      checkpoint.message, where)
                    : "(encrypted)";
        }
        if (is_sealed_text(metadata)) {
            metadata =
                key ? open_text_field(
                          *key, {context.pipeline, context.stage, context.version, "metadata"},
                          metadata, where)
                    : std::string();
            has_metadata = key != nullptr;
        }
    }
    if (has_metadata) checkpoint.metadata = parse_json_object(metadata, "metadata", description);
    checkpoint.fingerprint = row.getColumn(13).getString();
    checkpoint.output = stored_output(row, 14);
    if (!row.getColumn(17).isNull())
        checkpoint.inputs = parse_inputs(row.getColumn(17).getString(), description);
    if (!row.getColumn(18).isNull()) checkpoint.lease_token = row.getColumn(18).getInt64();
    const RunFacts run{parse_outcome(row.getColumn(11).getString(), description),
                       row.getColumn(9).getString(),
                       row.getColumn(10).getInt64(),
                       {}};  // SQLite records no heartbeat
    checkpoint.status = reported_status(stored, open_attempt, run, liveness);
    return checkpoint;
}

// The connections that may write which this process has open, per database file. The last
// one to close checkpoints the WAL into the database file (SqliteBackend::~SqliteBackend).
std::mutex writers_mutex;
std::map<std::string, int> open_writers;

}  // namespace

SqliteBackend::SqliteBackend(const BackendConfig& config, RunIdentity run)
    : impl_(std::make_unique<Impl>()) {
    impl_->config = config;
    impl_->run = std::move(run);
    impl_->path = config.directory / config.database_file;
    impl_->location = impl_->path.string();
    impl_->description = describe(impl_->path);
    impl_->outputs = detail::outputs_directory(config.directory, config.database_file);
    impl_->open();
}

SqliteBackend::~SqliteBackend() {
    if (impl_ && impl_->counted_writer) impl_->checkpoint_if_last();
}

// When the last connection of this process that may write closes cleanly (not inside a
// transaction), a PASSIVE checkpoint copies the WAL into the database file, so that the
// file alone (`cp checkpoints.db elsewhere/`) holds every committed row. PASSIVE takes no
// lock on the database file and never waits: a reader (the sqlite3 shell, which has no busy
// timeout) or a writer of another process is neither blocked nor failed; when one of them
// holds the pages back (a reader on an older snapshot, another checkpoint running), the
// checkpoint copies what it can, and the rest stays in the -wal file (still part of the
// database: the directory as a whole is always complete). SQLite's own checkpoint on close
// stays off (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE): it takes an exclusive lock.
void SqliteBackend::Impl::checkpoint_if_last() noexcept {
    bool last = false;
    {
        std::lock_guard lock(writers_mutex);
        const auto entry = open_writers.find(location);
        if (entry != open_writers.end() && --entry->second == 0) {
            open_writers.erase(entry);
            last = true;
        }
    }
    if (!last || !db || sqlite3_get_autocommit(db->getHandle()) == 0) return;
    sqlite3_wal_checkpoint_v2(db->getHandle(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

const std::string& SqliteBackend::location() const noexcept {
    return impl_->location;
}

const std::string& SqliteBackend::description() const noexcept {
    return impl_->description;
}

const std::filesystem::path& SqliteBackend::path() const noexcept {
    return impl_->path;
}

int SqliteBackend::schema_version() const noexcept {
    return latest_schema_version();
}

std::optional<int> SqliteBackend::migrated_from() const noexcept {
    return impl_->migrated_from;
}

const std::filesystem::path& SqliteBackend::outputs_directory() const noexcept {
    return impl_->outputs;
}

void SqliteBackend::Impl::open() {
    const std::filesystem::path& directory = config.directory;
    if (!config.read_only) {
        std::error_code error;
        std::filesystem::create_directories(directory, error);
        if (error) {
            throw Error(ErrorCode::Io, "checkpoint directory " + directory.string() +
                                           ": cannot be created (" + error.message() +
                                           "). Choose a writable location");
        }
        if (!std::filesystem::is_directory(directory)) {
            throw Error(ErrorCode::Io, "checkpoint directory " + directory.string() +
                                           ": exists but is not a directory. Choose another "
                                           "location");
        }
    }
    const bool shared_directory = check_directory_safety(directory);
    const FileState state = inspect_database_file(path, shared_directory);
    if (config.read_only && state != FileState::Present) {
        throw Error(ErrorCode::NotFound,
                    describe(path) + ": does not exist" +
                        (state == FileState::Empty ? " (the file is empty)" : "") +
                        ". Check the directory, or run the pipeline once to create it");
    }
    try {
        int flags =
            config.read_only ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE;
        // A read-only connection creates the -wal and -shm files SQLite's WAL mode needs, and
        // (as it may not checkpoint) leaves them behind. When the database has neither (a
        // copy, a backup, a database no process has open), it is opened read-write instead,
        // with PRAGMA query_only: then, as the last connection, it removes them on close, as
        // the sqlite3 shell does. Nothing is written (query_only; no recovery is needed
        // without a -wal). When the file or its directory is not writable, read-only it is.
        const bool leave_no_files = config.read_only && !sibling_exists("-wal") &&
                                    !sibling_exists("-shm") && ::access(path.c_str(), W_OK) == 0 &&
                                    ::access(directory.c_str(), W_OK) == 0;
        if (leave_no_files) flags = SQLite::OPEN_READWRITE;
        if (state == FileState::Missing && !config.read_only)
            create_database_file(path, config.file_mode);
        db = std::make_unique<SQLite::Database>(path.string(),
                                                flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                                                static_cast<int>(config.busy_timeout.count()));
        if (!config.read_only) {
            // Keep the -wal file between connections: a new process then opens in well
            // under a millisecond instead of creating and deleting it each time.
            int persist = 1;
            sqlite3_file_control(db->getHandle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
            // No checkpoint when the connection closes: it would take an exclusive lock for a
            // moment, and a reader without a busy timeout (the sqlite3 shell) would get
            // "database is locked". Writes checkpoint the WAL as they go.
            sqlite3_db_config(db->getHandle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        }
        if (leave_no_files) db->exec("PRAGMA query_only = 1");
        check_schema();
        if (!config.read_only) {
            set_wal_mode();
            db->exec(config.durability == Durability::Full ? "PRAGMA synchronous = FULL"
                                                           : "PRAGMA synchronous = NORMAL");
            migrated_from = migrate(*db, path);
            if (state == FileState::Missing) sync_directory(directory);
        }
        check_key();
        completed_head.emplace(*db, sql_completed_head);
        row_outputs.emplace(*db, sql_row_outputs);
        input_states.emplace(*db, sql_input_states);
        current.emplace(*db, std::string("SELECT ") + checkpoint_columns +
                                 " FROM current_state v WHERE pipeline = ?1 AND stage = ?2");
        if (!config.read_only) {
            append.emplace(*db, sql_append);
            stage_version.emplace(*db, sql_stage_version);
            chain_writer.emplace(*db);
            move_head.emplace(*db, sql_move_head);
            mark_pipeline_cleared.emplace(*db, sql_mark_pipeline_cleared);
            find_import.emplace(*db, sql_find_import);
            insert_input.emplace(*db, sql_insert_input);
            insert_output_data.emplace(*db, sql_insert_output_data);
            begin_immediate.emplace(*db, "BEGIN IMMEDIATE");
            commit.emplace(*db, "COMMIT");
            rollback.emplace(*db, "ROLLBACK");
            savepoint.emplace(*db, "SAVEPOINT batch_write");
            release_savepoint.emplace(*db, "RELEASE batch_write");
            rollback_to_savepoint.emplace(*db, "ROLLBACK TO batch_write");
            reap_dead_runs();
            std::lock_guard lock(writers_mutex);
            ++open_writers[location];
            counted_writer = true;
        }
    } catch (...) {
        fail("opening");
    }
}

// Refuses, before anything is written, a file that is an SQLite database of some other
// application, or a checkpoint database of a newer (or, read-only, older) schema.
void SqliteBackend::Impl::check_schema() {
    // One statement, so one snapshot: another process may be creating the database at this
    // very moment, and its commit must not fall between these three reads.
    SQLite::Statement header(*db, sql_schema_header);
    header.executeStep();
    const int app_id = header.getColumn(0).getInt();
    const int version = header.getColumn(1).getInt();
    const int objects = header.getColumn(2).getInt();
    const int latest = latest_schema_version();
    if (app_id != application_id) {
        if (app_id != 0 || objects != 0 || version != 0) {
            throw Error(ErrorCode::NotADatabase,
                        describe(path) +
                            ": is an SQLite database, but not a checkpoint database "
                            "(application_id " +
                            std::to_string(app_id) + ", " + std::to_string(objects) +
                            " schema objects); it was left unchanged. Point the manager "
                            "at another directory");
        }
        if (config.read_only) {
            throw Error(ErrorCode::NotFound,
                        describe(path) + ": is empty (no checkpoint was ever recorded)");
        }
        return;  // a new, empty database: migrate() initializes it
    }
    if (version > latest) {
        throw Error(ErrorCode::SchemaTooNew,
                    describe(path) + ": its schema version " + std::to_string(version) +
                        " is newer than this library knows (" + std::to_string(latest) +
                        "); nothing was written. Upgrade the checkpoint library");
    }
    if (config.read_only && version < latest) {
        throw Error(ErrorCode::SchemaTooOld,
                    describe(path) + ": its schema version " + std::to_string(version) +
                        " is older than this library's (" + std::to_string(latest) +
                        ") and a read-only open does not migrate. Run `checkpointctl "
                        "migrate`, or open it once for writing");
    }
}

// The recorded key against the key file given (judge_key), recording it in a database
// without rows; under the write lock, so that two processes cannot record two keys.
void SqliteBackend::Impl::check_key() {
    const auto recorded = [&]() -> std::optional<RecordedKey> {
        SQLite::Statement query(
            *db, "SELECT key_id, check_value FROM encryption_keys WHERE role = 'current'");
        if (!query.executeStep()) return std::nullopt;
        const SQLite::Column check = query.getColumn(1);
        return RecordedKey{query.getColumn(0).getString(),
                           std::string(static_cast<const char*>(check.getBlob()),
                                       static_cast<std::size_t>(check.getBytes()))};
    };
    const auto has_rows = [&] {
        return db->execAndGet("SELECT EXISTS (SELECT 1 FROM checkpoints)").getInt() != 0;
    };
    key_verdict =
        judge_key(recorded(), config.key.get(), has_rows(), config.read_only, describe(path));
    if (key_verdict != KeyVerdict::Register) return;
    SQLite::Transaction transaction(*db, SQLite::TransactionBehavior::IMMEDIATE);
    key_verdict = judge_key(recorded(), config.key.get(), has_rows(), false, describe(path));
    if (key_verdict == KeyVerdict::Register) {
        SQLite::Statement insert(*db,
                                 "INSERT INTO encryption_keys (key_id, check_value, role) "
                                 "VALUES (?1, ?2, 'current')");
        insert.bind(1, config.key->key_id);
        insert.bind(2, config.key->check_value.data(),
                    static_cast<int>(config.key->check_value.size()));
        insert.exec();
        transaction.commit();
        key_verdict = KeyVerdict::Keyed;
    }
}

void SqliteBackend::Impl::begin_chain() {
    const std::string& recorded = chain_writer->begin(chain_key(), run.run_id);
    const std::string_view expected =
        key_verdict == KeyVerdict::Keyed ? std::string_view(config.key->key_id) : "";
    if (recorded != expected) {
        if (expected.empty()) throw_key_required(describe(path), "writing");
        throw Error(ErrorCode::WrongKey, describe(path) +
                                             ": its key changed since it was opened; nothing "
                                             "was written. Open it again with its key file");
    }
}

// PRAGMA journal_mode=WAL needs an exclusive lock when it changes the mode, and SQLite
// does not call the busy handler for it: retry until the busy timeout has passed.
void SqliteBackend::Impl::set_wal_mode() {
    const auto deadline = std::chrono::steady_clock::now() + config.busy_timeout;
    for (;;) {
        try {
            const std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
            if (mode != "wal") {
                throw Error(ErrorCode::Io, describe(path) + ": cannot use WAL mode (got '" + mode +
                                               "'); use a local filesystem");
            }
            return;
        } catch (const SQLite::Exception& e) {
            if (e.getErrorCode() != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline)
                throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
}

// Marks died the runs of this host whose process no longer exists, so that their
// unfinished stages read as incomplete. Writes only when there is something to mark.
void SqliteBackend::Impl::reap_dead_runs() {
    std::vector<std::string> dead;
    {
        SQLite::Statement open_runs(*db, sql_open_runs_on_host);
        open_runs.bind(1, run.process.host);
        while (open_runs.executeStep()) {
            if (!process_may_be_alive(run.process.host, open_runs.getColumn(1).getInt64()))
                dead.push_back(open_runs.getColumn(0).getString());
        }
    }
    if (dead.empty()) return;
    SQLite::Transaction transaction(*db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement mark(*db, sql_mark_run_died);
    for (const std::string& run_id : dead) {
        mark.bind(1, run_id);
        mark.exec();
        mark.reset();
    }
    transaction.commit();
}

// Inside a write transaction: records the run and the pipeline with the run's first write.
void SqliteBackend::Impl::record_run_if_needed() {
    if (run_recorded) return;
    SQLite::Statement insert_run(*db, sql_insert_run);
    insert_run.bind(1, run.run_id);
    insert_run.bind(2, config.pipeline);
    insert_run.bind(3, run.process.host);
    insert_run.bind(4, run.process.pid);
    insert_run.bind(5, run.process.user);
    insert_run.bind(6, utc_now());
    insert_run.exec();
    SQLite::Statement insert_pipeline(*db, sql_insert_pipeline);
    insert_pipeline.bind(1, config.pipeline);
    insert_pipeline.exec();
}

namespace {

// One step of a statement that returns no row (BEGIN, COMMIT, SAVEPOINT, ...), prepared once.
void run_once(SQLite::Statement& statement) {
    StatementUse use(statement);
    statement.executeStep();
}

constexpr std::size_t column(std::string_view name) {
    return chain_column_index(name);
}

// A history row being built: each value is bound to the INSERT (sql_append, whose
// parameters are in chain_row_columns order) and recorded for its chain hash at once, so
// that the hash covers exactly what is written. Texts are bound without a copy: they must
// outlive the INSERT.
class RowBuilder {
public:
    explicit RowBuilder(SQLite::Statement& insert) : insert_(insert) {}
    void integer(std::size_t index, std::int64_t value) {
        row_.values[index] = value;
        insert_.bind(parameter(index), value);
    }
    void text(std::size_t index, const std::string& value) {
        row_.values[index] = std::string_view(value);
        insert_.bindNoCopy(parameter(index), value);
    }
    void input(std::int64_t position, const std::string& stage, std::int64_t id,
               std::int64_t version) {
        row_.inputs.push_back({position, std::string_view(stage), id, version});
    }
    const ChainRowView& row() const { return row_; }
    // Binds the chain hash, after every value.
    void hash(const std::string& hash) {
        insert_.bindNoCopy(static_cast<int>(chain_row_column_count), hash.data(),
                           static_cast<int>(hash.size()));
    }

private:
    static int parameter(std::size_t index) { return static_cast<int>(index) + 1; }
    SQLite::Statement& insert_;
    ChainRowView row_;
};
static_assert(!chain_row_columns[chain_row_column_count - 1].in_sqlite,
              "sql_append binds chain_row_columns but the last (PostgreSQL's write_id), then "
              "the hash as ?18");
static_assert(chain_row_column_count == 18);

}  // namespace

// Inside a write transaction: appends one row for `stage` and moves its head to it.
Appended SqliteBackend::Impl::append_row(const std::string& stage, Status status,
                                         std::optional<std::int64_t> duration_ms,
                                         const std::string& message, const std::string& timestamp,
                                         const Write* save, std::optional<std::int64_t> lease_token,
                                         const std::vector<InputUse>& used) {
    if (!lease_token && save) lease_token = save->lease_token;
    Appended appended;
    appended.id = chain_writer->next_id();
    {
        StatementUse use(*stage_version);
        stage_version->bindNoCopy(1, config.pipeline);
        stage_version->bindNoCopy(2, stage);
        const std::int64_t latest =
            stage_version->executeStep() ? stage_version->getColumn(0).getInt64() : 0;
        appended.version = latest + (status == Status::Completed ? 1 : 0);
    }
    const std::string status_text(to_string(status));
    // Encrypted: plaintext never reaches a page; the row's version is bound into the
    // ciphertext.
    const DatabaseKey* key = data_key();
    std::string sealed_message, sealed_metadata;
    if (key && !message.empty()) {
        sealed_message =
            seal_text_field(*key, {config.pipeline, stage, appended.version, "message"}, message);
    }
    if (key && save && !save->metadata.empty()) {
        sealed_metadata = seal_text_field(
            *key, {config.pipeline, stage, appended.version, "metadata"}, save->metadata);
    }
    std::string hash;
    {
        StatementUse use(*append);
        // NULL (nothing bound) where the row has nothing.
        RowBuilder row(*append);
        row.integer(column("id"), appended.id);
        row.text(column("pipeline"), config.pipeline);
        row.text(column("stage"), stage);
        row.text(column("status"), status_text);
        row.integer(column("version"), appended.version);
        row.text(column("timestamp"), timestamp);
        row.text(column("run_id"), run.run_id);
        if (duration_ms) row.integer(column("duration_ms"), *duration_ms);
        if (!message.empty()) row.text(column("message"), key ? sealed_message : message);
        row.integer(column("input_count"), 0);
        if (save) {
            if (!save->metadata.empty())
                row.text(column("metadata"), key ? sealed_metadata : save->metadata);
            if (!save->fingerprint.empty()) row.text(column("fingerprint"), save->fingerprint);
            if (save->output) {
                row.integer(column("output_size"), static_cast<std::int64_t>(save->output->size()));
                row.text(column("output_sha256"), save->output_sha256);
                row.integer(column("output_in_database"), save->output_in_database ? 1 : 0);
            }
            row.integer(column("input_count"), static_cast<std::int64_t>(save->inputs.size()));
            if (used.size() != save->inputs.size())
                throw Error(ErrorCode::Internal, "append_row: the inputs' rows are missing");
            for (std::size_t i = 0; i < used.size(); ++i)
                row.input(static_cast<std::int64_t>(i), save->inputs[i], used[i].id,
                          used[i].version);
        }
        if (key) row.text(column("key_id"), key->key_id);
        if (lease_token) row.integer(column("lease_token"), *lease_token);
        hash = chain_writer->link(row.row(), chain_key());
        row.hash(hash);
        append->exec();
    }
    StatementUse use(*move_head);
    move_head->bindNoCopy(1, config.pipeline);
    move_head->bindNoCopy(2, stage);
    move_head->bindNoCopy(3, status_text);
    move_head->bind(4, appended.version);
    move_head->bind(5, appended.id);
    const bool checks =
        save && ((save->output && !save->output_in_database) || !save->inputs.empty());
    move_head->bind(6, checks ? 1 : 0);
    move_head->exec();
    return appended;
}

// Inside a write transaction: a pipeline-wide clear's row (no stage, version 0).
Appended SqliteBackend::Impl::append_pipeline_clear(const std::string& timestamp) {
    Appended appended;
    appended.id = chain_writer->next_id();
    static const std::string cleared(to_string(Status::Cleared));
    StatementUse use(*append);
    RowBuilder row(*append);
    row.integer(column("id"), appended.id);
    row.text(column("pipeline"), config.pipeline);
    row.text(column("status"), cleared);
    row.integer(column("version"), 0);
    row.text(column("timestamp"), timestamp);
    row.text(column("run_id"), run.run_id);
    row.integer(column("input_count"), 0);
    const std::string hash = chain_writer->link(row.row(), chain_key());
    row.hash(hash);
    append->exec();
    return appended;
}

// Inside a write transaction: applies one write.
void SqliteBackend::Impl::apply(Write& write) {
    switch (write.kind) {
        case Write::Kind::Stage:
            if (write.lease_token) check_lease(write);
            if (write.status == Status::Completed) {
                apply_completed(write);
            } else {
                write.appended = append_row(write.stage, write.status, write.duration_ms,
                                            write.message, utc_now(), nullptr, write.lease_token);
            }
            return;
        case Write::Kind::ClearDownstream:
            apply_clear_downstream(write);
            return;
        case Write::Kind::Import: {
            StatementUse use(*find_import);
            find_import->bindNoCopy(1, config.pipeline);
            find_import->bindNoCopy(2, write.stage);
            find_import->bindNoCopy(3, write.timestamp);
            find_import->bindNoCopy(4, write.message);
            if (find_import->executeStep()) return;  // imported before
            write.appended = append_row(write.stage, Status::Completed, std::nullopt, write.message,
                                        write.timestamp);
            return;
        }
        case Write::Kind::PipelineClear: {
            const Appended appended = append_pipeline_clear(utc_now());
            StatementUse use(*mark_pipeline_cleared);
            mark_pipeline_cleared->bindNoCopy(1, config.pipeline);
            mark_pipeline_cleared->bind(2, appended.id);
            mark_pipeline_cleared->exec();
            write.appended = appended;
            return;
        }
    }
}

std::string SqliteBackend::Impl::describe_write(const Write& write) const {
    switch (write.kind) {
        case Write::Kind::Stage:
            return "recording stage '" + write.stage + "' as " +
                   std::string(to_string(write.status));
        case Write::Kind::Import:
            return "importing stage '" + write.stage + "'";
        case Write::Kind::PipelineClear:
            return "clearing pipeline '" + config.pipeline + "'";
        case Write::Kind::ClearDownstream:
            return "clearing stage '" + write.stage + "' and its downstream stages";
    }
    return "writing";
}

// The exception in flight, translated into an Error about `write`.
std::exception_ptr SqliteBackend::Impl::translated_error(const Write& write) const {
    try {
        fail(describe_write(write));
    } catch (...) {
        return std::current_exception();
    }
}

void SqliteBackend::write_batch(const std::vector<Write*>& writes) {
    Impl& s = *impl_;
    if (writes.empty()) return;
    if (s.config.read_only) {
        for (Write* write : writes) {
            try {
                s.require_writable(s.describe_write(*write));
            } catch (...) {
                write->error = std::current_exception();
            }
        }
        return;
    }
    if (s.key_verdict == KeyVerdict::KeyMissing) {
        for (Write* write : writes) {
            try {
                throw_key_required(s.description, s.describe_write(*write));
            } catch (...) {
                write->error = std::current_exception();
            }
        }
        return;
    }
    // Savepoints only when there is another write to protect.
    const bool isolate = writes.size() > 1;
    bool open = false;          // BEGIN ran, COMMIT has not succeeded yet
    bool write_failed = false;  // a write was rolled back to its savepoint
    try {
        run_once(*s.begin_immediate);
        open = true;
        s.begin_chain();
        s.record_run_if_needed();
        for (Write* write : writes) {
            if (!isolate) {
                s.apply(*write);
                continue;
            }
            run_once(*s.savepoint);
            const SqliteChainWriter::Tail tail = s.chain_writer->save();
            try {
                s.apply(*write);
                run_once(*s.release_savepoint);
            } catch (...) {
                write->error = s.translated_error(*write);
                write->appended.reset();
                write_failed = true;
                s.chain_writer->restore(tail);
                run_once(*s.rollback_to_savepoint);
                run_once(*s.release_savepoint);
            }
        }
        run_once(*s.commit);
        open = false;
        // After a failed write the tail is read again by the next transaction: should the
        // failure have come from a tail gone stale, it would not repeat.
        if (write_failed) {
            s.chain_writer->forget();
        } else {
            s.chain_writer->committed();
        }
        s.run_recorded = true;
    } catch (...) {
        s.chain_writer->forget();
        if (open) {
            // As SQLiteCpp's Transaction did: roll back what this connection still holds (a
            // failed COMMIT may have ended the transaction already; that error is ignored).
            try {
                run_once(*s.rollback);
            } catch (...) {
            }
        }
        // The transaction failed as a whole (BEGIN, the run row, a rollback, COMMIT), and
        // was rolled back in this connection. But when the disk failed while committing (a
        // failed fsync), the commit record may be in the -wal file already, and a later
        // connection would recover it: discard it first.
        const bool discarded = s.discard_failed_commit();
        for (Write* write : writes) {
            write->error = discarded ? s.translated_error(*write) : s.unknown_outcome_error(*write);
            write->appended.reset();
        }
    }
}

// After an I/O error during a commit: makes one more (empty-handed) commit. SQLite writes
// it where the failed one began in the -wal file, which breaks the failed commit's
// checksum chain, so no later reader can recover it. Returns false when the database may
// still hold the failed commit (the disk keeps failing).
bool SqliteBackend::Impl::discard_failed_commit() noexcept {
    try {
        throw;
    } catch (const SQLite::Exception& e) {
        // Only a failed sync can leave a complete commit record behind: a failed write
        // (SQLITE_FULL, SQLITE_IOERR_WRITE) stops before the commit frame is written.
        if (e.getErrorCode() != SQLITE_IOERR) return true;
    } catch (...) {
        return true;  // not an I/O failure: nothing reached the -wal file
    }
    try {
        SQLite::Transaction transaction(*db, SQLite::TransactionBehavior::IMMEDIATE);
        // Rewrites page 1 with what it holds: a frame in the -wal file, changing nothing.
        db->exec("PRAGMA user_version = " + std::to_string(latest_schema_version()));
        transaction.commit();
        return true;
    } catch (...) {
        return false;
    }
}

// The exception in flight, about `write`, when the write may have reached the disk.
std::exception_ptr SqliteBackend::Impl::unknown_outcome_error(const Write& write) const {
    std::string detail;
    try {
        throw;
    } catch (const std::exception& e) {
        detail = e.what();
    } catch (...) {
        detail = "unknown error";
    }
    return std::make_exception_ptr(
        Error(ErrorCode::Io, describe(path) + ": " + describe_write(write) +
                                 " failed: the disk failed while committing (" + detail +
                                 "), and the write may have reached it. Reopen the database to see "
                                 "whether it did, once the disk works again"));
}

void SqliteBackend::close_run(bool failed) {
    Impl& s = *impl_;
    if (!s.run_recorded) return;
    try {
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement close(*s.db, sql_close_run);
        close.bind(1, s.run.run_id);
        close.bind(2, utc_now());
        close.bind(3, failed ? "failed" : "finished");
        close.exec();
        transaction.commit();
        s.run_recorded = false;
    } catch (...) {
        s.fail("closing run " + s.run.run_id);
    }
}

std::optional<Checkpoint> SqliteBackend::current(const std::string& stage) {
    Impl& s = *impl_;
    try {
        StatementUse use(*s.current);
        s.current->bindNoCopy(1, s.config.pipeline);
        s.current->bindNoCopy(2, stage);
        if (!s.current->executeStep()) return std::nullopt;
        LivenessCache liveness;
        Checkpoint checkpoint = read_checkpoint(*s.current, s.description, liveness, true,
                                                s.key_verdict != KeyVerdict::Plain, s.data_key());
        s.current->reset();
        StalenessCheck(s).mark(checkpoint);
        return checkpoint;
    } catch (...) {
        s.fail("reading stage '" + stage + "'");
    }
}

std::vector<Checkpoint> SqliteBackend::current_all() {
    Impl& s = *impl_;
    try {
        SQLite::Statement query(*s.db, std::string("SELECT ") + checkpoint_columns +
                                           " FROM current_state v WHERE pipeline = ?1 "
                                           "ORDER BY stage");
        query.bind(1, s.config.pipeline);
        std::vector<Checkpoint> result;
        LivenessCache liveness;
        while (query.executeStep()) {
            result.push_back(read_checkpoint(query, s.description, liveness, true,
                                             s.key_verdict != KeyVerdict::Plain, s.data_key()));
        }
        query.reset();
        StalenessCheck staleness(s);  // shared by every stage
        for (Checkpoint& checkpoint : result) staleness.mark(checkpoint);
        return result;
    } catch (...) {
        s.fail("reading the current state");
    }
}

void SqliteBackend::for_each_history(const HistoryFilter& filter,
                                     const std::function<void(const Checkpoint&)>& visit) {
    Impl& s = *impl_;
    bool in_visit = false;
    try {
        const std::string select =
            std::string("SELECT ") + checkpoint_columns + ", open_attempt FROM history v WHERE ";
        const std::string pipeline = filter.all_pipelines ? "?1 IS NOT NULL"
                                     // Without a stage, scan in id order ("+" keeps SQLite off
                                     // the stage index, which would need a sort of the whole
                                     // history).
                                     : filter.stage ? "pipeline = ?1"
                                                    : "+pipeline = ?1";
        std::vector<std::string> params;  // bound from ?2 on, in order
        std::string stage_parameter;
        if (filter.stage) {
            params.push_back(*filter.stage);
            stage_parameter = "?" + std::to_string(params.size() + 1);
        }
        std::string conditions;  // the filters but the stage, each " AND ..."
        if (filter.run_id) {
            params.push_back(*filter.run_id);
            conditions += " AND run_id = ?" + std::to_string(params.size() + 1);
        }
        if (filter.since) {
            params.push_back(*filter.since);
            conditions += " AND timestamp >= ?" + std::to_string(params.size() + 1);
        }
        if (filter.until) {
            params.push_back(*filter.until);
            conditions += " AND timestamp < ?" + std::to_string(params.size() + 1);
        }
        // Started and Incomplete are told apart after reading (process liveness).
        const bool attempt_status = filter.status && (*filter.status == Status::Started ||
                                                      *filter.status == Status::Incomplete);
        if (filter.status && attempt_status) {
            conditions += " AND status IN ('started', 'incomplete')";
        } else if (filter.status) {
            params.emplace_back(to_string(*filter.status));
            conditions += " AND status = ?" + std::to_string(params.size() + 1);
        }
        if (filter.before_id) {
            params.push_back(std::to_string(*filter.before_id));
            conditions += " AND id < CAST(?" + std::to_string(params.size() + 1) + " AS INTEGER)";
        }
        // A stage's rows and the pipeline-wide clears: two walks of the stage index, merged
        // in id order as they stream (one walk with "stage = ? OR stage IS NULL" would sort
        // every row of the stage first, whatever the limit).
        std::string sql = filter.stage ? select + pipeline + " AND stage = " + stage_parameter +
                                             conditions + " UNION ALL " + select + pipeline +
                                             " AND stage IS NULL" + conditions
                                       : select + pipeline + conditions;
        sql += filter.newest_first ? " ORDER BY id DESC" : " ORDER BY id";
        SQLite::Statement query(*s.db, sql);
        query.bind(1, s.config.pipeline);
        for (std::size_t i = 0; i < params.size(); ++i)
            query.bindNoCopy(static_cast<int>(i + 2), params[i]);
        LivenessCache liveness;
        std::int64_t produced = 0;
        while ((!filter.limit || produced < *filter.limit) && query.executeStep()) {
            const bool open_attempt = query.getColumn(checkpoint_column_count).getInt() != 0;
            const Checkpoint checkpoint =
                read_checkpoint(query, s.description, liveness, open_attempt,
                                s.key_verdict != KeyVerdict::Plain, s.data_key());
            if (filter.status && checkpoint.status != *filter.status) continue;
            in_visit = true;
            visit(checkpoint);
            in_visit = false;
            ++produced;
        }
    } catch (...) {
        if (in_visit) throw;  // the caller's own exception, unchanged
        s.fail("reading the history");
    }
}

std::vector<Run> SqliteBackend::runs() {
    Impl& s = *impl_;
    try {
        SQLite::Statement query(*s.db, sql_runs);
        query.bind(1, s.config.pipeline);
        std::vector<Run> result;
        LivenessCache liveness;
        while (query.executeStep()) {
            Run run;
            run.run_id = query.getColumn(0).getString();
            run.pipeline = query.getColumn(1).getString();
            run.host = query.getColumn(2).getString();
            run.pid = query.getColumn(3).getInt64();
            run.user = query.getColumn(4).getString();
            run.started_at = query.getColumn(5).getString();
            run.ended_at = optional_text(query.getColumn(6));
            run.stages_completed = query.getColumn(8).getInt64();
            run.stages_failed = query.getColumn(9).getInt64();
            run.outcome =
                reported_outcome({parse_outcome(query.getColumn(7).getString(), s.description),
                                  run.host,
                                  run.pid,
                                  {}},
                                 liveness);
            result.push_back(std::move(run));
        }
        return result;
    } catch (...) {
        s.fail("reading the runs");
    }
}

std::vector<std::string> SqliteBackend::pipelines() {
    Impl& s = *impl_;
    try {
        SQLite::Statement query(*s.db, "SELECT pipeline FROM pipelines ORDER BY pipeline");
        std::vector<std::string> result;
        while (query.executeStep()) result.push_back(query.getColumn(0).getString());
        return result;
    } catch (...) {
        s.fail("reading the pipelines");
    }
}

ChainState SqliteBackend::chain_state() {
    Impl& s = *impl_;
    try {
        return read_sqlite_chain_state(*s.db);
    } catch (...) {
        s.fail("reading the history chain");
    }
}

std::vector<std::string> SqliteBackend::verify_chain(const std::optional<ChainHead>& expect) {
    Impl& s = *impl_;
    if (s.key_verdict == KeyVerdict::KeyMissing)
        throw_key_required(s.description, "verifying the history chain");
    try {
        SQLite::Transaction snapshot(*s.db, SQLite::TransactionBehavior::DEFERRED);
        const ChainState state = read_sqlite_chain_state(*s.db);
        return detail::verify_chain(
            state,
            [&](const std::function<void(const ChainRow&)>& visit) {
                for_each_sqlite_chain_row(*s.db, state.start_id, visit);
            },
            s.chain_key(), expect, 1000);
    } catch (...) {
        s.fail("verifying the history chain");
    }
}

const SecretKey* SqliteBackend::chain_key() const noexcept {
    return impl_->chain_key();
}

bool SqliteBackend::key_missing() const noexcept {
    return impl_->key_verdict == KeyVerdict::KeyMissing;
}

std::vector<std::string> SqliteBackend::verify() {
    Impl& s = *impl_;
    try {
        s.require_key("verifying the outputs");
        return verify_database(*s.db, s.outputs, s.data_key());
    } catch (...) {
        s.fail("verifying");
    }
}

}  // namespace checkpoint::detail
