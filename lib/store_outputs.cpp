// The store's side of issue 4: saves that carry outputs and inputs, staleness, and
// loading outputs. All SQL here is about checkpoint_inputs, output_data and the output
// columns of checkpoints (migrations/sqlite/0002_outputs_fingerprints_inputs.sql).
#include "clock.hpp"
#include "output_files.hpp"
#include "store_impl.hpp"

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

std::string quoted(const std::string& stage) {
    return "'" + stage + "'";
}

}  // namespace

Store::Impl::RowOutputs Store::Impl::row_outputs_of(std::int64_t id) {
    StatementUse use(*row_outputs);
    row_outputs->bind(1, id);
    RowOutputs row;
    row.id = id;
    if (!row_outputs->executeStep()) return row;  // pruned: nothing left to check
    row.output = stored_output(*row_outputs, 0);
    row.input_count = row_outputs->getColumn(3).getInt64();
    row.fingerprint = row_outputs->getColumn(4).getString();
    return row;
}

std::optional<Store::Impl::CompletedHead> Store::Impl::completed_head_of(const std::string& stage) {
    StatementUse use(*completed_head);
    completed_head->bindNoCopy(1, config.pipeline);
    completed_head->bindNoCopy(2, stage);
    if (!completed_head->executeStep()) return std::nullopt;
    return CompletedHead{completed_head->getColumn(0).getInt64(),
                         completed_head->getColumn(1).getInt64(),
                         completed_head->getColumn(2).getInt() != 0};
}

std::string Store::Impl::stale_reason(const RowOutputs& row, StalenessCache& checked) {
    if (const auto found = checked.find(row.id); found != checked.end()) return found->second;
    std::string reason = uncached_stale_reason(row, checked);
    checked[row.id] = reason;
    return reason;
}

std::string Store::Impl::uncached_stale_reason(const RowOutputs& row, StalenessCache& checked) {
    if (row.output && !row.output->in_database) {
        const auto size = output_file_size(outputs, row.output->sha256);
        const std::string file = (outputs / row.output->sha256).string();
        if (!size) return "its output file " + file + " is missing";
        if (*size != static_cast<std::uint64_t>(row.output->size)) {
            return "its output file " + file + " holds " + std::to_string(*size) +
                   " bytes instead of " + std::to_string(row.output->size);
        }
    }
    if (row.input_count > 0) {
        struct Input {
            std::string stage;
            std::int64_t id;
        };
        std::vector<Input> unchanged;  // inputs still at the version used: check them in turn
        {
            StatementUse use(*input_states);
            input_states->bindNoCopy(1, config.pipeline);
            input_states->bind(2, row.id);
            while (input_states->executeStep()) {
                const std::string stage = input_states->getColumn(0).getString();
                const std::int64_t used_id = input_states->getColumn(1).getInt64();
                const std::int64_t used_version = input_states->getColumn(2).getInt64();
                if (input_states->getColumn(3).isNull()) {
                    return "its input " + quoted(stage) + " has no history any more";
                }
                const std::int64_t head_id = input_states->getColumn(3).getInt64();
                const std::string status = input_states->getColumn(4).getString();
                const std::int64_t version = input_states->getColumn(5).getInt64();
                const std::int64_t cleared_id = input_states->getColumn(6).getInt64();
                if (head_id < cleared_id) {
                    return "its input " + quoted(stage) + " was cleared (pipeline-wide clear)";
                }
                if (head_id != used_id) {
                    if (status == "completed") {
                        return "its input " + quoted(stage) + " was saved again (version " +
                               std::to_string(version) + "; this checkpoint used version " +
                               std::to_string(used_version) + ")";
                    }
                    return "its input " + quoted(stage) + " was " +
                           (status == "cleared" ? std::string("cleared")
                                                : "recorded as " + status) +
                           " after version " + std::to_string(used_version);
                }
                unchanged.push_back({stage, used_id});
            }
        }
        for (const Input& input : unchanged) {
            const std::string reason = stale_reason(row_outputs_of(input.id), checked);
            if (!reason.empty()) return "its input " + quoted(input.stage) + " is stale: " + reason;
        }
    }
    return {};
}

void Store::Impl::mark_stale(Checkpoint& checkpoint, StalenessCache& checked) {
    if (checkpoint.status != Status::Completed) return;
    if (!(checkpoint.output && !checkpoint.output->in_database) && checkpoint.inputs.empty())
        return;
    RowOutputs row;
    row.id = checkpoint.id;
    row.output = checkpoint.output;
    row.input_count = static_cast<std::int64_t>(checkpoint.inputs.size());
    checkpoint.stale_reason = stale_reason(row, checked);
    checkpoint.stale = !checkpoint.stale_reason.empty();
}

Store::HeadState Store::head_state(const std::string& stage, bool with_fingerprint) {
    Impl& s = *impl_;
    try {
        HeadState state;
        const auto head = s.completed_head_of(stage);
        if (!head) return state;
        state.completed = true;
        if (!head->checks && !with_fingerprint) return state;  // the common case: one lookup
        const Impl::RowOutputs row = s.row_outputs_of(head->id);
        state.fingerprint = row.fingerprint;
        if (head->checks) {
            Impl::StalenessCache checked;
            state.stale_reason = s.stale_reason(row, checked);
        }
        return state;
    } catch (...) {
        s.fail("looking up stage '" + stage + "'");
    }
}

std::optional<Store::OutputLocation> Store::output_of(const std::string& stage,
                                                      std::optional<std::int64_t> version) {
    Impl& s = *impl_;
    try {
        OutputLocation location;
        std::int64_t id = 0;
        if (!version) {
            const auto head = s.completed_head_of(stage);
            if (!head) return std::nullopt;
            const Impl::RowOutputs row = s.row_outputs_of(head->id);
            if (!row.output) return std::nullopt;
            location.output = *row.output;
            id = head->id;
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
                            describe(s.path) + ": the output of stage '" + stage + "' (row " +
                                std::to_string(id) +
                                ") is missing from the database (table output_data). The stage "
                                "must run again: clear it or save it anew");
            }
            const SQLite::Column blob = data.getColumn(0);
            location.data.assign(static_cast<const char*>(blob.getBlob()),
                                 static_cast<std::size_t>(blob.getBytes()));
        }
        return location;
    } catch (...) {
        s.fail("loading the output of stage '" + stage + "'");
    }
}

const std::filesystem::path& Store::outputs_directory() const noexcept {
    return impl_->outputs;
}

// Inside a write transaction: a Completed row, with what SaveOptions carried.
void Store::Impl::apply_completed(Write& write) {
    struct Used {
        std::int64_t id;
        std::int64_t version;
    };
    std::vector<Used> used;
    for (const std::string& input : write.inputs) {
        const auto head = completed_head_of(input);
        if (!head) {
            throw Error(ErrorCode::InvalidArgument,
                        "saving stage '" + write.stage + "': its input '" + input +
                            "' has no completed checkpoint; run and save it first. Nothing "
                            "was written");
        }
        StalenessCache checked;
        const std::string reason =
            head->checks ? stale_reason(row_outputs_of(head->id), checked) : std::string();
        if (!reason.empty()) {
            throw Error(ErrorCode::InvalidArgument, "saving stage '" + write.stage +
                                                        "': its input '" + input +
                                                        "' is not up to date (" + reason +
                                                        "); run it again first. Nothing was "
                                                        "written");
        }
        used.push_back({head->id, head->version});
    }
    if (write.output && !write.output_in_database) {
        // The caller wrote the file before taking the lock; a prune may have deleted it
        // since (it had no row yet). Under the lock, no prune can delete it any more.
        const auto size = output_file_size(outputs, write.output_sha256);
        if (size != write.output->size())
            write_output_file(outputs, write.output_sha256, *write.output, config.file_mode);
    }
    write.appended = append_row(write.stage, Status::Completed, write.duration_ms, write.message,
                                utc_now(), &write);
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
        insert_output_data->bindNoCopy(2, write.output->data(),
                                       static_cast<int>(write.output->size()));
        insert_output_data->exec();
    }
}

// Inside a write transaction: clears `stage` and every stage downstream of it.
void Store::Impl::apply_clear_downstream(Write& write) {
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
