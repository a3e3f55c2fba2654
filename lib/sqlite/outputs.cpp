// SqliteBackend's side of issue 4: saves that carry outputs and inputs, the facts that
// staleness (staleness.hpp) is decided from, and loading outputs. All SQL here is about
// checkpoint_inputs, output_data and the output columns of checkpoints
// (migrations/sqlite/0002_outputs_fingerprints_inputs.sql).
#include "clock.hpp"
#include "crypto/field_cipher.hpp"
#include "sqlite/head_cache.hpp"
#include "sqlite/output_files.hpp"
#include "sqlite/sqlite_backend_impl.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

namespace {

constexpr const char* sql_completed_version =
    "SELECT output_size, output_sha256, output_in_database FROM checkpoints "
    "WHERE pipeline = ?1 AND stage = ?2 AND status = 'completed' AND version = ?3";

constexpr const char* sql_output_data = "SELECT data FROM output_data WHERE checkpoint_id = ?1";

constexpr const char* sql_completed_row_id =
    "SELECT id FROM checkpoints WHERE pipeline = ?1 AND stage = ?2 AND status = 'completed' "
    "AND version = ?3";

// The stages downstream of ?2: whose current completed row (not cleared since) recorded
// ?2, or a stage downstream of it, as an input.
constexpr const char* sql_downstream =
    "WITH RECURSIVE down(stage) AS (SELECT ?2 UNION "
    "  SELECT h.stage FROM down d "
    "  JOIN checkpoint_inputs i ON i.input_stage = d.stage "
    "  JOIN checkpoints c ON c.id = i.checkpoint_id AND c.pipeline = ?1 "
    "  JOIN stage_heads h ON h.pipeline = ?1 AND h.stage = c.stage AND h.head_id = c.id "
    "  WHERE h.head_id > (SELECT cleared_id FROM pipelines WHERE pipeline = ?1)) "
    "SELECT stage FROM down WHERE stage <> ?2 ORDER BY stage";

}  // namespace

RowFacts SqliteBackend::Impl::row_facts(std::int64_t id) {
    StatementUse use(*row_outputs);
    row_outputs->bind(1, id);
    RowFacts row;
    row.id = id;
    if (!row_outputs->executeStep()) return row;  // pruned: nothing left to check
    row.output = stored_output(*row_outputs, 0);
    row.input_count = row_outputs->getColumn(3).getInt64();
    row.fingerprint = row_outputs->getColumn(4).getString();
    return row;
}

std::vector<InputFacts> SqliteBackend::Impl::input_facts(std::int64_t id) {
    StatementUse use(*input_states);
    input_states->bindNoCopy(1, config.pipeline);
    input_states->bind(2, id);
    std::vector<InputFacts> inputs;
    while (input_states->executeStep()) {
        InputFacts input;
        input.stage = input_states->getColumn(0).getString();
        input.used_id = input_states->getColumn(1).getInt64();
        input.used_version = input_states->getColumn(2).getInt64();
        if (!input_states->getColumn(3).isNull()) {
            input.head =
                InputFacts::Head{input_states->getColumn(3).getInt64(),
                                 parse_status(input_states->getColumn(4).getString(), description),
                                 input_states->getColumn(5).getInt64()};
        }
        input.cleared_id = input_states->getColumn(6).getInt64();
        inputs.push_back(std::move(input));
    }
    return inputs;
}

std::optional<std::uint64_t> SqliteBackend::Impl::output_file_size(const std::string& sha256) {
    return detail::output_file_size(outputs, sha256, data_key());
}

std::string SqliteBackend::Impl::output_file_name(const std::string& sha256) {
    return (outputs / detail::output_file_name(sha256, data_key())).string();
}

std::optional<SqliteBackend::Impl::CompletedHead> SqliteBackend::Impl::completed_head_of(
    const std::string& stage) {
    // From the cache while the database is unchanged (sqlite/head_cache.hpp).
    if (!head_cache) head_cache.emplace(*db);
    return head_cache->get(stage, [this](const std::string& name) { return read_head(name); });
}

std::optional<SqliteBackend::Impl::CompletedHead> SqliteBackend::Impl::read_head(
    const std::string& stage) {
    StatementUse use(*completed_head);
    completed_head->bindNoCopy(1, config.pipeline);
    completed_head->bindNoCopy(2, stage);
    if (!completed_head->executeStep()) return std::nullopt;
    return CompletedHead{completed_head->getColumn(0).getInt64(),
                         completed_head->getColumn(1).getInt64(),
                         completed_head->getColumn(2).getInt() != 0};
}

HeadState SqliteBackend::head_state(const std::string& stage, bool with_fingerprint) {
    Impl& s = *impl_;
    try {
        HeadState state;
        const auto head = s.completed_head_of(stage);
        if (!head) return state;
        state.completed = true;
        if (!head->checks && !with_fingerprint) return state;  // the common case: one lookup
        const RowFacts row = s.row_facts(head->id);
        state.fingerprint = row.fingerprint;
        if (head->checks) state.stale_reason = StalenessCheck(s).reason(row);
        return state;
    } catch (...) {
        s.fail("looking up stage '" + stage + "'");
    }
}

std::optional<OutputLocation> SqliteBackend::output_of(const std::string& stage,
                                                       std::optional<std::int64_t> version) {
    Impl& s = *impl_;
    s.require_key("loading the output of stage '" + stage + "'");
    try {
        OutputLocation location;
        std::int64_t id = 0;
        std::int64_t row_version = version.value_or(0);
        if (!version) {
            const auto head = s.completed_head_of(stage);
            if (!head) return std::nullopt;
            const RowFacts row = s.row_facts(head->id);
            if (!row.output) return std::nullopt;
            location.output = *row.output;
            id = head->id;
            row_version = head->version;
        } else {
            SQLite::Statement query(*s.db, sql_completed_row_id);
            query.bind(1, s.config.pipeline);
            query.bind(2, stage);
            query.bind(3, *version);
            if (!query.executeStep()) return std::nullopt;
            id = query.getColumn(0).getInt64();
            SQLite::Statement outputs(*s.db, sql_completed_version);
            outputs.bind(1, s.config.pipeline);
            outputs.bind(2, stage);
            outputs.bind(3, *version);
            outputs.executeStep();
            const auto output = stored_output(outputs, 0);
            if (!output) return std::nullopt;
            location.output = *output;
        }
        if (location.output.in_database) {
            SQLite::Statement data(*s.db, sql_output_data);
            data.bind(1, id);
            if (!data.executeStep()) {
                throw Error(ErrorCode::OutputDamaged,
                            s.description + ": the output of stage '" + stage + "' (row " +
                                std::to_string(id) +
                                ") is missing from the database (table output_data). The stage "
                                "must run again: clear it or save it anew");
            }
            const SQLite::Column blob = data.getColumn(0);
            location.data.assign(static_cast<const char*>(blob.getBlob()),
                                 static_cast<std::size_t>(blob.getBytes()));
            location.data = open_stored_output(s.data_key(), s.config.pipeline, stage, row_version,
                                               std::move(location.data),
                                               s.description + ": the output of stage '" + stage +
                                                   "' (row " + std::to_string(id) + ")");
        }
        return location;
    } catch (...) {
        s.fail("loading the output of stage '" + stage + "'");
    }
}

std::string SqliteBackend::read_output_file(const StoredOutput& output) const {
    return detail::read_output_file(impl_->outputs, output.sha256,
                                    static_cast<std::uint64_t>(output.size), impl_->data_key());
}

void SqliteBackend::prepare_output(Write& write) const {
    if (!write.output) return;
    impl_->require_key("saving stage '" + write.stage + "'");
    write.output_in_database = write.output->size() <= impl_->config.max_inline_output;
    // Written (and fsynced) before the row's transaction, so that the write lock is not held
    // meanwhile; the transaction checks that it is still there (apply_completed). The
    // SHA-256 is computed while the file is written (the caller hashes the other outputs).
    if (!write.output_in_database && !impl_->config.read_only)
        write.output_sha256 = write_new_output_file(impl_->outputs, *write.output,
                                                    impl_->config.file_mode, impl_->data_key());
}

// Inside a write transaction: a Completed row, with what SaveOptions carried.
void SqliteBackend::Impl::apply_completed(Write& write) {
    std::vector<InputUse> used;
    for (const std::string& input : write.inputs) {
        const auto head = completed_head_of(input);
        const std::string reason = head && head->checks
                                       ? StalenessCheck(*this).reason(row_facts(head->id))
                                       : std::string();
        require_usable_input(write.stage, input, head.has_value(), reason);
        used.push_back({head->id, head->version});
    }
    if (write.output && !write.output_in_database) {
        // The caller wrote the file before taking the lock; a prune may have deleted it
        // since (it had no row yet). Under the lock, no prune can delete it any more.
        const auto size = detail::output_file_size(outputs, write.output_sha256, data_key());
        if (size != write.output->size())
            write_output_file(outputs, write.output_sha256, *write.output, config.file_mode,
                              data_key());
    }
    write.appended = append_row(write.stage, Status::Completed, write.duration_ms, write.message,
                                utc_now(), &write, std::nullopt, used);
    for (std::size_t i = 0; i < write.inputs.size(); ++i) {
        StatementUse use(*insert_input);
        insert_input->bind(1, write.appended->id);
        insert_input->bind(2, static_cast<std::int64_t>(i));
        insert_input->bindNoCopy(3, write.inputs[i]);
        insert_input->bind(4, used[i].id);
        insert_input->bind(5, used[i].version);
        insert_input->exec();
    }
    if (write.output && write.output_in_database) {
        StatementUse use(*insert_output_data);
        insert_output_data->bind(1, write.appended->id);
        std::string sealed;
        if (const DatabaseKey* key = data_key()) {
            sealed =
                seal_field(*key, {config.pipeline, write.stage, write.appended->version, "output"},
                           *write.output);
            insert_output_data->bindNoCopy(2, sealed.data(), static_cast<int>(sealed.size()));
        } else {
            insert_output_data->bindNoCopy(2, write.output->data(),
                                           static_cast<int>(write.output->size()));
        }
        insert_output_data->exec();
    }
}

// Inside a write transaction: clears `stage` and every stage downstream of it.
void SqliteBackend::Impl::apply_clear_downstream(Write& write) {
    std::vector<std::string> downstream;
    {
        SQLite::Statement query(*db, sql_downstream);
        query.bind(1, config.pipeline);
        query.bind(2, write.stage);
        while (query.executeStep()) downstream.push_back(query.getColumn(0).getString());
    }
    write.appended = append_row(write.stage, Status::Cleared, std::nullopt, {}, utc_now());
    write.cleared.push_back(write.stage);
    for (const std::string& stage : downstream) {
        append_row(stage, Status::Cleared, std::nullopt, {}, utc_now());
        write.cleared.push_back(stage);
    }
}

}  // namespace checkpoint::detail
