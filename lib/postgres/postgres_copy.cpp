// Copies between databases, PostgreSQL's side: export_history reads every run and row as
// stored (in pages, each output on its own); PgImport writes a copied history into an empty
// database in one transaction, outputs in chunks, and moves the id sequence past the
// copied ids.
#include "crypto/field_cipher.hpp"
#include "postgres/postgres_backend_impl.hpp"
#include "postgres/postgres_chain.hpp"
#include "stored_values.hpp"

#include <checkpoint/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace checkpoint::detail {

namespace {

constexpr std::int64_t export_page_rows = 1000;

constexpr const char* sql_export_runs =
    "SELECT run_id, pipeline, host, pid, \"user\", started_at, ended_at, outcome, heartbeat_at "
    "FROM runs ORDER BY started_at, run_id";

constexpr const char* sql_export_rows =
    "SELECT id, pipeline, stage, status, version, timestamp, run_id, duration_ms, message, "
    "metadata::text, fingerprint, output_size, output_sha256, output_in_database, "
    "(SELECT jsonb_agg(jsonb_build_object('stage', i.input_stage, 'version', i.input_version, "
    "  'id', i.input_id) ORDER BY i.position)::text FROM checkpoint_inputs i "
    "  WHERE i.checkpoint_id = c.id), lease_token "
    "FROM checkpoints c WHERE id > $1 ORDER BY id LIMIT $2";

constexpr const char* sql_is_empty =
    "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM checkpoints)";

constexpr const char* sql_import_run =
    "INSERT INTO runs (run_id, pipeline, host, pid, \"user\", started_at, ended_at, outcome, "
    "heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

constexpr const char* sql_import_row =
    "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id, "
    "duration_ms, message, metadata, fingerprint, output_size, output_sha256, "
    "output_in_database, input_count, lease_token) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16)";

constexpr const char* sql_derive_heads =
    "INSERT INTO stage_heads (pipeline, stage, status, version, head_id, checks) "
    "SELECT c.pipeline, c.stage, c.status, c.version, c.id, "
    "(c.status = 'completed' AND c.input_count > 0) "
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

constexpr const char* sql_move_sequence =
    "SELECT setval(pg_get_serial_sequence('checkpoints', 'id'), "
    "(SELECT coalesce(max(id), 0) + 1 FROM checkpoints), false)";

std::optional<std::string> optional_text(const pqxx::field& field) {
    if (field.is_null()) return std::nullopt;
    return field.as<std::string>();
}

class PgImport final : public HistoryImport {
public:
    PgImport(PostgresBackend::Impl& backend, pqxx::connection_base& connection)
        : backend_(backend), tx_(connection) {
        try {
            backend_.lock_chain(tx_);
            if (tx_.exec1(sql_is_empty)[0].as<std::int64_t>() != 0) {
                throw Error(ErrorCode::InvalidArgument,
                            backend_.description +
                                ": already holds runs or history rows: a copy goes into an "
                                "empty database only. Nothing was written; choose a new target");
            }
        } catch (const Error&) {
            throw;
        } catch (...) {
            std::rethrow_exception(backend_.translated("starting the copy"));
        }
    }

    void add_run(const RawRun& run) override {
        try {
            PgParams()
                .text(run.run_id)
                .text(run.pipeline)
                .text(run.host)
                .integer(run.pid)
                .text(run.user)
                .text(run.started_at)
                .optional_text(run.ended_at)
                .text(run.outcome)
                .text(run.heartbeat_at.empty() ? run.ended_at.value_or(run.started_at)
                                               : run.heartbeat_at)
                .exec_sql(tx_, sql_import_run);
        } catch (...) {
            std::rethrow_exception(backend_.translated("copying run " + run.run_id));
        }
    }

    void add_row(const RawRow& row, const std::string* output) override {
        try {
            // An encrypted target: what the copy carries (plaintext) is encrypted here.
            const DatabaseKey* key = backend_.data_key();
            const std::string stage = row.stage.value_or("");
            const auto seal = [&](const std::optional<std::string>& text, const char* field) {
                if (!text || !key) return text;
                return std::optional<std::string>(
                    seal_text_field(*key, {row.pipeline, stage, row.version, field}, *text));
            };
            const std::optional<std::string> metadata =
                key && row.metadata ? std::optional<std::string>(
                                          nlohmann::json(*seal(row.metadata, "metadata")).dump())
                                    : row.metadata;
            std::string sealed_output;
            if (key && output)
                sealed_output =
                    seal_field(*key, {row.pipeline, stage, row.version, "output"}, *output);
            if (key && output) output = &sealed_output;
            PgParams params;
            params.integer(row.id)
                .text(row.pipeline)
                .optional_text(row.stage)
                .text(row.status)
                .integer(row.version)
                .text(row.timestamp)
                .text(row.run_id)
                .optional_integer(row.duration_ms)
                .optional_text(seal(row.message, "message"))
                .optional_text(metadata)
                .optional_text(row.fingerprint);
            if (row.output) {
                params.integer(row.output->size).text(row.output->sha256).boolean(true);
            } else {
                params.null().null().null();
            }
            params.integer(static_cast<std::int64_t>(row.inputs.size()))
                .optional_integer(row.lease_token);
            params.exec_sql(tx_, sql_import_row);
            if (key) {
                tx_.exec_params0("UPDATE checkpoints SET key_id = $2 WHERE id = $1", row.id,
                                 key->key_id);
            }
            for (std::size_t i = 0; i < row.inputs.size(); ++i) {
                PgParams()
                    .integer(row.id)
                    .integer(static_cast<std::int64_t>(i))
                    .text(row.inputs[i].stage)
                    .integer(row.inputs[i].id)
                    .integer(row.inputs[i].version)
                    .exec(tx_, pg_sql::insert_input.name);
            }
            if (row.output && output) {
                std::size_t offset = 0;
                int chunk = 0;
                do {
                    const std::size_t size = std::min(output_chunk_bytes, output->size() - offset);
                    tx_.exec_prepared(pg_sql::insert_chunk.name, row.id, chunk,
                                      pqxx::binarystring(output->data() + offset, size));
                    offset += size;
                    ++chunk;
                } while (offset < output->size());
            }
        } catch (...) {
            std::rethrow_exception(
                backend_.translated("copying history row " + std::to_string(row.id)));
        }
    }

    void commit() override {
        try {
            tx_.exec0(sql_derive_heads);
            tx_.exec0(sql_derive_pipelines);
            tx_.exec0(sql_derive_leases);
            tx_.exec1(sql_move_sequence);
            extend_pg_chain(tx_, backend_.chain_key(), "");  // the copy's rows get this chain
            tx_.commit();
        } catch (...) {
            std::rethrow_exception(backend_.translated("committing the copy"));
        }
    }

private:
    PostgresBackend::Impl& backend_;
    pqxx::work tx_;
};

}  // namespace

void PostgresBackend::export_history(
    const std::function<void(const RawRun&)>& run,
    const std::function<void(const RawRow&, const std::optional<std::string>&)>& row) {
    Impl& s = *impl_;
    s.require_key("copying the history");
    bool in_visit = false;
    try {
        // One snapshot for the whole export (pages and outputs alike).
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(s.connection());
        for (const auto& r : tx.exec(sql_export_runs)) {
            RawRun raw;
            raw.run_id = r[0].as<std::string>();
            raw.pipeline = r[1].as<std::string>();
            raw.host = r[2].as<std::string>();
            raw.pid = r[3].as<std::int64_t>();
            raw.user = r[4].as<std::string>();
            raw.started_at = r[5].as<std::string>();
            raw.ended_at = optional_text(r[6]);
            raw.outcome = r[7].as<std::string>();
            raw.heartbeat_at = optional_text(r[8]).value_or("");
            in_visit = true;
            run(raw);
            in_visit = false;
        }
        std::int64_t after = 0;
        for (;;) {
            const pqxx::result page = tx.exec_params(sql_export_rows, after, export_page_rows);
            for (const auto& r : page) {
                RawRow raw;
                raw.id = r[0].as<std::int64_t>();
                raw.pipeline = r[1].as<std::string>();
                raw.stage = optional_text(r[2]);
                raw.status = r[3].as<std::string>();
                raw.version = r[4].as<std::int64_t>();
                raw.timestamp = r[5].as<std::string>();
                raw.run_id = r[6].as<std::string>();
                if (!r[7].is_null()) raw.duration_ms = r[7].as<std::int64_t>();
                raw.message = optional_text(r[8]);
                const DatabaseKey* key = s.data_key();
                const std::string stage = raw.stage.value_or("");
                const std::string where = s.description + ": history row " + std::to_string(raw.id);
                if (key && raw.message && is_sealed_text(*raw.message))
                    raw.message = open_text_field(
                        *key, {raw.pipeline, stage, raw.version, "message"}, *raw.message, where);
                // jsonb: re-serialized compactly, as the SQLite backend stores metadata. An
                // encrypted one is a JSON string.
                if (!r[9].is_null()) {
                    const nlohmann::json stored = nlohmann::json::parse(r[9].as<std::string>());
                    if (key && stored.is_string()) {
                        raw.metadata = parse_json_object(
                                           open_text_field(
                                               *key, {raw.pipeline, stage, raw.version, "metadata"},
                                               stored.get<std::string>(), where),
                                           "metadata", s.description)
                                           .dump();
                    } else {
                        raw.metadata =
                            parse_json_object(r[9].as<std::string>(), "metadata", s.description)
                                .dump();
                    }
                }
                raw.fingerprint = optional_text(r[10]);
                if (!r[11].is_null()) {
                    raw.output = StoredOutput{r[11].as<std::int64_t>(), r[12].as<std::string>(),
                                              r[13].as<bool>()};
                }
                if (!r[14].is_null())
                    raw.inputs = parse_inputs(r[14].as<std::string>(), s.description);
                if (!r[15].is_null()) raw.lease_token = r[15].as<std::int64_t>();
                std::optional<std::string> bytes;
                if (raw.output) {
                    bytes.emplace();
                    bytes->reserve(static_cast<std::size_t>(raw.output->size));
                    for (const auto& chunk :
                         PgParams().integer(raw.id).exec(tx, pg_sql::output_chunks.name)) {
                        const pqxx::binarystring data(chunk[0]);
                        bytes->append(reinterpret_cast<const char*>(data.data()), data.size());
                    }
                    if (key)
                        bytes = open_field(*key, {raw.pipeline, stage, raw.version, "output"},
                                           *bytes, where);
                }
                after = raw.id;
                in_visit = true;
                row(raw, bytes);
                in_visit = false;
            }
            if (page.size() < static_cast<std::size_t>(export_page_rows)) break;
        }
        tx.commit();
    } catch (...) {
        if (in_visit) throw;  // the caller's own exception, unchanged
        s.fail("exporting the history");
    }
}

std::unique_ptr<HistoryImport> PostgresBackend::begin_import() {
    Impl& s = *impl_;
    s.require_writable("copying a history into the database");
    if (s.key_verdict == KeyVerdict::KeyMissing)
        throw_key_required(s.description, "copying a history into the database");
    try {
        return std::make_unique<PgImport>(s, s.connection());
    } catch (const Error&) {
        throw;
    } catch (...) {
        s.fail("starting the copy");
    }
}

}  // namespace checkpoint::detail
