// Copies between databases, SQLite's side: export_history reads every run and row as
// stored; SqliteImport writes a copied history into an empty database in one transaction.
#include "crypto/field_cipher.hpp"
#include "sqlite/chain.hpp"
#include "sqlite/output_files.hpp"
#include "sqlite/sqlite_backend_impl.hpp"

#include <checkpoint/error.hpp>

#include <SQLiteCpp/Transaction.h>

namespace checkpoint::detail {

namespace {

constexpr const char* sql_export_runs =
    "SELECT run_id, pipeline, host, pid, user, started_at, ended_at, outcome FROM runs "
    "ORDER BY started_at, run_id";

constexpr const char* sql_export_rows =
    "SELECT id, pipeline, stage, status, version, timestamp, run_id, duration_ms, message, "
    "metadata, fingerprint, output_size, output_sha256, output_in_database, input_count, "
    "lease_token FROM checkpoints ORDER BY id";

constexpr const char* sql_export_inputs =
    "SELECT input_stage, input_version, input_id FROM checkpoint_inputs "
    "WHERE checkpoint_id = ?1 ORDER BY position";

constexpr const char* sql_output_data = "SELECT data FROM output_data WHERE checkpoint_id = ?1";

constexpr const char* sql_is_empty =
    "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM checkpoints)";

constexpr const char* sql_import_run =
    "INSERT INTO runs (run_id, pipeline, host, pid, user, started_at, ended_at, outcome) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

constexpr const char* sql_import_row =
    "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id, "
    "duration_ms, message, metadata, fingerprint, output_size, output_sha256, "
    "output_in_database, input_count, lease_token) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

constexpr const char* sql_import_input =
    "INSERT INTO checkpoint_inputs (checkpoint_id, position, input_stage, input_id, "
    "input_version) VALUES (?1, ?2, ?3, ?4, ?5)";

constexpr const char* sql_import_output_data =
    "INSERT INTO output_data (checkpoint_id, data) VALUES (?1, ?2)";

// The current state, derived from the copied history (as the writes maintain it).
constexpr const char* sql_derive_heads =
    "INSERT INTO stage_heads (pipeline, stage, status, version, head_id, checks) "
    "SELECT c.pipeline, c.stage, c.status, c.version, c.id, "
    "(c.status = 'completed' AND (c.output_in_database IS 0 OR c.input_count > 0)) "
    "FROM checkpoints c WHERE c.id IN "
    "(SELECT max(id) FROM checkpoints WHERE stage IS NOT NULL GROUP BY pipeline, stage)";

constexpr const char* sql_derive_pipelines =
    "INSERT INTO pipelines (pipeline, cleared_id) "
    "SELECT p.pipeline, coalesce((SELECT max(id) FROM checkpoints c "
    "  WHERE c.pipeline = p.pipeline AND c.stage IS NULL), 0) "
    "FROM (SELECT pipeline FROM runs UNION SELECT pipeline FROM checkpoints) p";

// Each leased stage's token counter continues after the copied tokens (no holder: a claim
// is a live process's, never copied), so tokens keep growing across the copy.
constexpr const char* sql_derive_leases =
    "INSERT INTO stage_leases (pipeline, stage, token) "
    "SELECT pipeline, stage, max(lease_token) FROM checkpoints "
    "WHERE stage IS NOT NULL AND lease_token IS NOT NULL GROUP BY pipeline, stage";

template <typename T>
void bind_optional(SQLite::Statement& statement, int index, const std::optional<T>& value) {
    if (value) statement.bind(index, *value);
}

class SqliteImport final : public HistoryImport {
public:
    explicit SqliteImport(const BackendConfig& config, SQLite::Database& db,
                          std::filesystem::path outputs, const SecretKey* chain_key,
                          const DatabaseKey* data_key)
        : config_(config),
          chain_key_(chain_key),
          data_key_(data_key),
          db_(db),
          outputs_(std::move(outputs)),
          transaction_(db, SQLite::TransactionBehavior::IMMEDIATE),
          run_(db, sql_import_run),
          row_(db, sql_import_row),
          input_(db, sql_import_input),
          data_(db, sql_import_output_data) {
        if (db.execAndGet(sql_is_empty).getInt64() != 0) {
            throw Error(ErrorCode::InvalidArgument,
                        "the target already holds runs or history rows: a copy goes into an "
                        "empty database only. Nothing was written; choose a new target");
        }
    }

    void add_run(const RawRun& run) override {
        StatementUse use(run_);
        run_.bind(1, run.run_id);
        run_.bind(2, run.pipeline);
        run_.bind(3, run.host);
        run_.bind(4, run.pid);
        run_.bind(5, run.user);
        run_.bind(6, run.started_at);
        bind_optional(run_, 7, run.ended_at);
        run_.bind(8, run.outcome);
        run_.exec();
    }

    void add_row(const RawRow& row, const std::string* output) override {
        const bool in_database =
            !row.output || static_cast<std::size_t>(row.output->size) <= config_.max_inline_output;
        if (row.output && output && !in_database)
            write_output_file(outputs_, row.output->sha256, *output, config_.file_mode, data_key_);
        const std::string stage = row.stage.value_or("");
        const auto seal = [&](const std::optional<std::string>& text, const char* field) {
            if (!text || !data_key_) return text;
            return std::optional<std::string>(
                seal_text_field(*data_key_, {row.pipeline, stage, row.version, field}, *text));
        };
        const std::optional<std::string> message = seal(row.message, "message");
        const std::optional<std::string> metadata = seal(row.metadata, "metadata");
        {
            StatementUse use(row_);
            row_.bind(1, row.id);
            row_.bind(2, row.pipeline);
            bind_optional(row_, 3, row.stage);
            row_.bind(4, row.status);
            row_.bind(5, row.version);
            row_.bind(6, row.timestamp);
            row_.bind(7, row.run_id);
            bind_optional(row_, 8, row.duration_ms);
            bind_optional(row_, 9, message);
            bind_optional(row_, 10, metadata);
            bind_optional(row_, 11, row.fingerprint);
            if (row.output) {
                row_.bind(12, row.output->size);
                row_.bind(13, row.output->sha256);
                row_.bind(14, in_database ? 1 : 0);
            }
            row_.bind(15, static_cast<std::int64_t>(row.inputs.size()));
            bind_optional(row_, 16, row.lease_token);
            row_.exec();
        }
        if (data_key_) {
            SQLite::Statement key(db_, "UPDATE checkpoints SET key_id = ?2 WHERE id = ?1");
            key.bind(1, row.id);
            key.bind(2, data_key_->key_id);
            key.exec();
        }
        for (std::size_t i = 0; i < row.inputs.size(); ++i) {
            StatementUse use(input_);
            input_.bind(1, row.id);
            input_.bind(2, static_cast<std::int64_t>(i));
            input_.bind(3, row.inputs[i].stage);
            input_.bind(4, row.inputs[i].id);
            input_.bind(5, row.inputs[i].version);
            input_.exec();
        }
        if (row.output && output && in_database) {
            StatementUse use(data_);
            data_.bind(1, row.id);
            std::string sealed;
            if (data_key_) {
                sealed =
                    seal_field(*data_key_, {row.pipeline, stage, row.version, "output"}, *output);
                data_.bindNoCopy(2, sealed.data(), static_cast<int>(sealed.size()));
            } else {
                data_.bindNoCopy(2, output->data(), static_cast<int>(output->size()));
            }
            data_.exec();
        }
    }

    void commit() override {
        db_.exec(sql_derive_heads);
        db_.exec(sql_derive_pipelines);
        db_.exec(sql_derive_leases);
        extend_sqlite_chain(db_, chain_key_);  // the copy's rows get this database's chain
        transaction_.commit();
    }

private:
    const BackendConfig& config_;
    const SecretKey* chain_key_;
    const DatabaseKey* data_key_;  // encrypts what the copy writes, when the target has a key
    SQLite::Database& db_;
    std::filesystem::path outputs_;
    SQLite::Transaction transaction_;
    SQLite::Statement run_, row_, input_, data_;
};

// Translates failures of the import's calls into Error naming the target database.
class TranslatingImport final : public HistoryImport {
public:
    TranslatingImport(SqliteBackend::Impl& backend, std::unique_ptr<HistoryImport> inner)
        : backend_(backend), inner_(std::move(inner)) {}
    void add_run(const RawRun& run) override {
        try {
            inner_->add_run(run);
        } catch (...) {
            backend_.fail("copying run " + run.run_id);
        }
    }
    void add_row(const RawRow& row, const std::string* output) override {
        try {
            inner_->add_row(row, output);
        } catch (...) {
            backend_.fail("copying history row " + std::to_string(row.id));
        }
    }
    void commit() override {
        try {
            inner_->commit();
        } catch (...) {
            backend_.fail("committing the copy");
        }
    }

private:
    SqliteBackend::Impl& backend_;
    std::unique_ptr<HistoryImport> inner_;
};

}  // namespace

void SqliteBackend::export_history(
    const std::function<void(const RawRun&)>& run,
    const std::function<void(const RawRow&, const std::optional<std::string>&)>& row) {
    Impl& s = *impl_;
    s.require_key("copying the history");
    bool in_visit = false;
    try {
        // One read transaction: the runs and rows of one moment.
        SQLite::Transaction snapshot(*s.db, SQLite::TransactionBehavior::DEFERRED);
        SQLite::Statement runs(*s.db, sql_export_runs);
        while (runs.executeStep()) {
            RawRun raw;
            raw.run_id = runs.getColumn(0).getString();
            raw.pipeline = runs.getColumn(1).getString();
            raw.host = runs.getColumn(2).getString();
            raw.pid = runs.getColumn(3).getInt64();
            raw.user = runs.getColumn(4).getString();
            raw.started_at = runs.getColumn(5).getString();
            if (!runs.getColumn(6).isNull()) raw.ended_at = runs.getColumn(6).getString();
            raw.outcome = runs.getColumn(7).getString();
            in_visit = true;
            run(raw);
            in_visit = false;
        }
        SQLite::Statement rows(*s.db, sql_export_rows);
        SQLite::Statement inputs(*s.db, sql_export_inputs);
        SQLite::Statement data(*s.db, sql_output_data);
        while (rows.executeStep()) {
            RawRow raw;
            raw.id = rows.getColumn(0).getInt64();
            raw.pipeline = rows.getColumn(1).getString();
            if (!rows.getColumn(2).isNull()) raw.stage = rows.getColumn(2).getString();
            raw.status = rows.getColumn(3).getString();
            raw.version = rows.getColumn(4).getInt64();
            raw.timestamp = rows.getColumn(5).getString();
            raw.run_id = rows.getColumn(6).getString();
            if (!rows.getColumn(7).isNull()) raw.duration_ms = rows.getColumn(7).getInt64();
            if (!rows.getColumn(8).isNull()) raw.message = rows.getColumn(8).getString();
            if (!rows.getColumn(9).isNull()) raw.metadata = rows.getColumn(9).getString();
            if (!rows.getColumn(10).isNull()) raw.fingerprint = rows.getColumn(10).getString();
            raw.output = stored_output(rows, 11);
            if (!rows.getColumn(15).isNull()) raw.lease_token = rows.getColumn(15).getInt64();
            // The copy carries plaintext (the target encrypts it again, if it has a key).
            const std::string stage = raw.stage.value_or("");
            const std::string where = s.description + ": history row " + std::to_string(raw.id);
            if (const DatabaseKey* key = s.data_key()) {
                if (raw.message && is_sealed_text(*raw.message))
                    raw.message = open_text_field(
                        *key, {raw.pipeline, stage, raw.version, "message"}, *raw.message, where);
                if (raw.metadata && is_sealed_text(*raw.metadata))
                    raw.metadata = open_text_field(
                        *key, {raw.pipeline, stage, raw.version, "metadata"}, *raw.metadata, where);
            }
            if (rows.getColumn(14).getInt64() > 0) {
                StatementUse use(inputs);
                inputs.bind(1, raw.id);
                while (inputs.executeStep()) {
                    raw.inputs.push_back({inputs.getColumn(0).getString(),
                                          inputs.getColumn(1).getInt64(),
                                          inputs.getColumn(2).getInt64()});
                }
            }
            std::optional<std::string> bytes;
            if (raw.output && raw.output->in_database) {
                StatementUse use(data);
                data.bind(1, raw.id);
                if (!data.executeStep()) {
                    throw Error(ErrorCode::OutputDamaged,
                                s.description + ": the output of history row " +
                                    std::to_string(raw.id) +
                                    " is missing from table output_data. Run `checkpointctl "
                                    "verify` on it");
                }
                const SQLite::Column blob = data.getColumn(0);
                bytes.emplace(static_cast<const char*>(blob.getBlob()),
                              static_cast<std::size_t>(blob.getBytes()));
                if (s.data_key())
                    bytes = open_field(*s.data_key(), {raw.pipeline, stage, raw.version, "output"},
                                       *bytes, where);
            } else if (raw.output) {
                bytes = detail::read_output_file(s.outputs, raw.output->sha256,
                                                 static_cast<std::uint64_t>(raw.output->size),
                                                 s.data_key());
            }
            in_visit = true;
            row(raw, bytes);
            in_visit = false;
        }
        snapshot.commit();
    } catch (...) {
        if (in_visit) throw;  // the caller's own exception, unchanged
        s.fail("exporting the history");
    }
}

std::unique_ptr<HistoryImport> SqliteBackend::begin_import() {
    Impl& s = *impl_;
    s.require_writable("copying a history into the database");
    if (s.key_verdict == KeyVerdict::KeyMissing)
        throw_key_required(s.description, "copying a history into the database");
    try {
        return std::make_unique<TranslatingImport>(
            s, std::make_unique<SqliteImport>(s.config, *s.db, s.outputs, s.chain_key(),
                                              s.data_key()));
    } catch (...) {
        s.fail("starting the copy");
    }
}

}  // namespace checkpoint::detail
