// PostgresBackend's reads, and the facts that staleness (staleness.hpp) is decided from.
// Each read is a pqxx::nontransaction: one round trip per statement, no BEGIN / COMMIT.
#include "crypto/field_cipher.hpp"
#include "postgres/postgres_backend_impl.hpp"

#include "stored_values.hpp"

#include <checkpoint/error.hpp>

#include <limits>

namespace checkpoint::detail {

namespace {

// The rows of one history page (see pg_sql::history_page).
constexpr std::int64_t history_page_rows = 1000;

std::optional<StoredOutput> stored_output(const pqxx::row& row, int first) {
    if (row[first].is_null()) return std::nullopt;
    StoredOutput output;
    output.size = row[first].as<std::int64_t>();
    output.sha256 = row[first + 1].as<std::string>();
    output.in_database = row[first + 2].as<bool>();
    return output;
}

std::string text_of(const pqxx::field& field) {
    return field.is_null() ? std::string() : field.as<std::string>();
}

}  // namespace

// A row of the history or current_state view (pg_sql's column list).
Checkpoint PostgresBackend::Impl::read_checkpoint(const pqxx::row& row, LivenessCache& liveness,
                                                  bool open_attempt) const {
    Checkpoint checkpoint;
    checkpoint.id = row[0].as<std::int64_t>();
    checkpoint.pipeline = row[1].as<std::string>();
    checkpoint.stage = text_of(row[2]);  // NULL (pipeline-wide clear) -> ""
    const Status stored = parse_status(row[3].as<std::string>(), description);
    checkpoint.version = row[4].as<std::int64_t>();
    checkpoint.timestamp = row[5].as<std::string>();
    checkpoint.run_id = row[6].as<std::string>();
    if (!row[7].is_null())
        checkpoint.duration = std::chrono::milliseconds(row[7].as<std::int64_t>());
    checkpoint.message = text_of(row[8]);
    std::string metadata = row[12].is_null() ? std::string() : row[12].as<std::string>();
    const DatabaseKey* key = data_key();
    // Only a database that records a key holds ciphertexts: in a plaintext one, a message
    // that happens to look sealed is the user's text, and such metadata is damage.
    const bool encrypted = key_verdict != KeyVerdict::Plain;
    const std::string where = description + ": history row " + std::to_string(checkpoint.id);
    if (encrypted && is_sealed_text(checkpoint.message)) {
        checkpoint.message =
            key ? open_text_field(
                      *key, {checkpoint.pipeline, checkpoint.stage, checkpoint.version, "message"},
                      checkpoint.message, where)
                : "(encrypted)";
    }
    // Encrypted metadata is a JSON string (jsonb): "ckpt-enc1:...".
    if (encrypted && metadata.size() > 2 && metadata.front() == '"' &&
        is_sealed_text(std::string_view(metadata).substr(1))) {
        metadata =
            key ? open_text_field(
                      *key, {checkpoint.pipeline, checkpoint.stage, checkpoint.version, "metadata"},
                      std::string_view(metadata).substr(1, metadata.size() - 2), where)
                : std::string();
    }
    if (!metadata.empty())
        checkpoint.metadata = parse_json_object(metadata, "metadata", description);
    checkpoint.fingerprint = text_of(row[13]);
    checkpoint.output = stored_output(row, 14);
    if (!row[17].is_null())
        checkpoint.inputs = parse_inputs(row[17].as<std::string>(), description);
    if (!row[19].is_null()) checkpoint.lease_token = row[19].as<std::int64_t>();
    const RunFacts run{parse_outcome(row[11].as<std::string>(), description),
                       row[9].as<std::string>(), row[10].as<std::int64_t>(), text_of(row[18])};
    checkpoint.status = reported_status(stored, open_attempt, run, liveness);
    return checkpoint;
}

std::optional<PostgresBackend::Impl::CompletedHead> PostgresBackend::Impl::completed_head_of(
    pqxx::transaction_base& tx, const std::string& stage, bool lock) {
    const pqxx::result result =
        PgParams()
            .text(config.pipeline)
            .text(stage)
            .exec(tx, lock ? pg_sql::lock_completed_head.name : pg_sql::completed_head.name);
    if (result.empty()) return std::nullopt;
    return CompletedHead{result[0][0].as<std::int64_t>(), result[0][1].as<std::int64_t>(),
                         result[0][2].as<bool>()};
}

RowFacts PostgresBackend::Impl::row_facts(std::int64_t id) {
    const pqxx::result result = PgParams().integer(id).exec(*facts_tx, pg_sql::row_facts.name);
    RowFacts row;
    row.id = id;
    if (result.empty()) return row;  // pruned: nothing left to check
    row.output = stored_output(result[0], 0);
    row.input_count = result[0][3].as<std::int64_t>();
    row.fingerprint = text_of(result[0][4]);
    return row;
}

std::vector<InputFacts> PostgresBackend::Impl::input_facts(std::int64_t id) {
    const pqxx::result result =
        PgParams().text(config.pipeline).integer(id).exec(*facts_tx, pg_sql::input_facts.name);
    std::vector<InputFacts> inputs;
    for (const auto& row : result) {
        InputFacts input;
        input.stage = row[0].as<std::string>();
        input.used_id = row[1].as<std::int64_t>();
        input.used_version = row[2].as<std::int64_t>();
        if (!row[3].is_null()) {
            input.head = InputFacts::Head{row[3].as<std::int64_t>(),
                                          parse_status(row[4].as<std::string>(), description),
                                          row[5].as<std::int64_t>()};
        }
        input.cleared_id = row[6].is_null() ? 0 : row[6].as<std::int64_t>();
        inputs.push_back(std::move(input));
    }
    return inputs;
}

std::optional<std::uint64_t> PostgresBackend::Impl::output_file_size(const std::string&) {
    return std::nullopt;  // never asked: every output is in the database
}

std::string PostgresBackend::Impl::output_file_name(const std::string& sha256) {
    return sha256;
}

HeadState PostgresBackend::head_state(const std::string& stage, bool with_fingerprint) {
    Impl& s = *impl_;
    return s.retrying("looking up stage '" + stage + "'", [&]() -> HeadState {
        pqxx::nontransaction tx(s.connection());
        HeadState state;
        const auto head = s.completed_head_of(tx, stage, false);
        if (!head) return state;
        state.completed = true;
        if (!head->checks && !with_fingerprint) return state;  // the common case: one lookup
        Impl::FactsScope facts(s, tx);
        const RowFacts row = s.row_facts(head->id);
        state.fingerprint = row.fingerprint;
        if (head->checks) state.stale_reason = StalenessCheck(s).reason(row);
        return state;
    });
}

std::optional<OutputLocation> PostgresBackend::output_of(const std::string& stage,
                                                         std::optional<std::int64_t> version) {
    Impl& s = *impl_;
    s.require_key("loading the output of stage '" + stage + "'");
    return s.retrying(
        "loading the output of stage '" + stage + "'", [&]() -> std::optional<OutputLocation> {
            pqxx::nontransaction tx(s.connection());
            OutputLocation location;
            std::int64_t id = 0;
            std::int64_t row_version = version.value_or(0);
            if (!version) {
                const auto head = s.completed_head_of(tx, stage, false);
                if (!head) return std::nullopt;
                Impl::FactsScope facts(s, tx);
                const RowFacts row = s.row_facts(head->id);
                if (!row.output) return std::nullopt;
                location.output = *row.output;
                id = head->id;
                row_version = head->version;
            } else {
                const pqxx::result result = PgParams()
                                                .text(s.config.pipeline)
                                                .text(stage)
                                                .integer(*version)
                                                .exec(tx, pg_sql::completed_version.name);
                if (result.empty()) return std::nullopt;
                id = result[0][0].as<std::int64_t>();
                const auto output = stored_output(result[0], 1);
                if (!output) return std::nullopt;
                location.output = *output;
            }
            const pqxx::result chunks = PgParams().integer(id).exec(tx, pg_sql::output_chunks.name);
            if (chunks.empty()) {
                throw Error(ErrorCode::OutputDamaged,
                            s.description + ": the output of stage '" + stage + "' (row " +
                                std::to_string(id) +
                                ") is missing from the database (table output_chunks). The stage "
                                "must run again: clear it or save it anew");
            }
            location.data.reserve(static_cast<std::size_t>(location.output.size));
            for (const auto& chunk : chunks) {
                const pqxx::binarystring bytes(chunk[0]);
                location.data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            }
            location.data = open_stored_output(s.data_key(), s.config.pipeline, stage, row_version,
                                               std::move(location.data),
                                               s.description + ": the output of stage '" + stage +
                                                   "' (row " + std::to_string(id) + ")");
            return location;
        });
}

std::string PostgresBackend::read_output_file(const StoredOutput& output) const {
    throw Error(ErrorCode::Internal, impl_->description + ": output " + output.sha256 +
                                         " is marked as a file, but this backend keeps every "
                                         "output in the database");
}

std::optional<Checkpoint> PostgresBackend::current(const std::string& stage) {
    Impl& s = *impl_;
    return s.retrying("reading stage '" + stage + "'", [&]() -> std::optional<Checkpoint> {
        pqxx::nontransaction tx(s.connection());
        const pqxx::result result =
            PgParams().text(s.config.pipeline).text(stage).exec(tx, pg_sql::current.name);
        if (result.empty()) return std::nullopt;
        LivenessCache liveness;
        Checkpoint checkpoint = s.read_checkpoint(result[0], liveness, true);
        Impl::FactsScope facts(s, tx);
        StalenessCheck(s).mark(checkpoint);
        return checkpoint;
    });
}

std::vector<Checkpoint> PostgresBackend::current_all() {
    Impl& s = *impl_;
    return s.retrying("reading the current state", [&]() -> std::vector<Checkpoint> {
        pqxx::nontransaction tx(s.connection());
        const pqxx::result result =
            PgParams().text(s.config.pipeline).exec(tx, pg_sql::current_all.name);
        std::vector<Checkpoint> checkpoints;
        LivenessCache liveness;
        for (const auto& row : result)
            checkpoints.push_back(s.read_checkpoint(row, liveness, true));
        Impl::FactsScope facts(s, tx);
        StalenessCheck staleness(s);  // shared by every stage
        for (Checkpoint& checkpoint : checkpoints) staleness.mark(checkpoint);
        return checkpoints;
    });
}

// Pages of history_page_rows rows in id order (keyset pagination: constant memory, and
// no transaction held open while `visit` runs).
void PostgresBackend::for_each_history(const HistoryFilter& filter,
                                       const std::function<void(const Checkpoint&)>& visit) {
    Impl& s = *impl_;
    bool in_visit = false;
    try {
        const bool attempt_status = filter.status && (*filter.status == Status::Started ||
                                                      *filter.status == Status::Incomplete);
        std::optional<std::string> status;
        if (attempt_status) {
            status = "started";
        } else if (filter.status) {
            status = std::string(to_string(*filter.status));
        }
        LivenessCache liveness;
        std::int64_t produced = 0;
        // The page's bound: ids above it (oldest first) or below it (newest first).
        std::int64_t cursor = filter.newest_first ? std::numeric_limits<std::int64_t>::max() : 0;
        for (;;) {
            // A page is read again after a reconnect (nothing of it was visited yet).
            const pqxx::result page = s.retrying("reading the history", [&] {
                pqxx::nontransaction tx(s.connection());
                PgParams params;
                if (filter.all_pipelines) {
                    params.null();
                } else {
                    params.text(s.config.pipeline);
                }
                params.integer(cursor)
                    .integer(history_page_rows)
                    .optional_text(filter.stage)
                    .optional_text(filter.run_id)
                    .optional_text(status)
                    .optional_text(filter.since)
                    .optional_text(filter.until)
                    .optional_integer(filter.before_id);
                return params.exec(tx, filter.newest_first ? pg_sql::history_page_desc.name
                                                           : pg_sql::history_page.name);
            });
            for (const auto& row : page) {
                if (filter.limit && produced >= *filter.limit) return;
                cursor = row[0].as<std::int64_t>();
                const bool open_attempt = row[20].as<bool>();
                const Checkpoint checkpoint = s.read_checkpoint(row, liveness, open_attempt);
                if (filter.status && checkpoint.status != *filter.status) continue;
                in_visit = true;
                visit(checkpoint);
                in_visit = false;
                ++produced;
            }
            if (page.size() < static_cast<std::size_t>(history_page_rows)) return;
        }
    } catch (...) {
        if (in_visit) throw;  // the caller's own exception, unchanged
        s.fail("reading the history");
    }
}

std::vector<std::string> PostgresBackend::pipelines() {
    Impl& s = *impl_;
    return s.retrying("reading the pipelines", [&]() -> std::vector<std::string> {
        pqxx::nontransaction tx(s.connection());
        std::vector<std::string> names;
        for (const auto& row : tx.exec_prepared(pg_sql::pipelines.name))
            names.push_back(row[0].as<std::string>());
        return names;
    });
}

std::vector<Run> PostgresBackend::runs() {
    Impl& s = *impl_;
    return s.retrying("reading the runs", [&]() -> std::vector<Run> {
        pqxx::nontransaction tx(s.connection());
        const pqxx::result result = PgParams().text(s.config.pipeline).exec(tx, pg_sql::runs.name);
        std::vector<Run> runs;
        LivenessCache liveness;
        for (const auto& row : result) {
            Run run;
            run.run_id = row[0].as<std::string>();
            run.pipeline = row[1].as<std::string>();
            run.host = row[2].as<std::string>();
            run.pid = row[3].as<std::int64_t>();
            run.user = row[4].as<std::string>();
            run.started_at = row[5].as<std::string>();
            if (!row[6].is_null()) run.ended_at = row[6].as<std::string>();
            run.stages_completed = row[8].as<std::int64_t>();
            run.stages_failed = row[9].as<std::int64_t>();
            run.outcome = reported_outcome({parse_outcome(row[7].as<std::string>(), s.description),
                                            run.host, run.pid, text_of(row[10])},
                                           liveness);
            runs.push_back(std::move(run));
        }
        return runs;
    });
}

}  // namespace checkpoint::detail
