#include "record_fields.hpp"

#include <nlohmann/json.hpp>

namespace checkpointctl {

namespace {

// The user's metadata as compact JSON text, as stored (keys sorted): an object in JSON
// output, that text in CSV and tables; absent when there is none (an empty object).
Field metadata_field(const nlohmann::json& metadata) {
    if (metadata.is_null() || metadata.empty()) return {};
    std::string text = metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return JsonValue{text, std::move(text)};
}

// The upstream versions a save used: [{"stage":…,"version":…,"id":…},…] in JSON output,
// "stage@version;stage@version" in CSV and tables; absent when none.
Field inputs_field(const std::vector<checkpoint::InputVersion>& inputs) {
    if (inputs.empty()) return {};
    JsonValue value;
    value.json = "[";
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const auto& input = inputs[i];
        if (i > 0) {
            value.json += ',';
            value.text += ';';
        }
        value.json += "{\"stage\":";
        append_json_string(value.json, input.stage);
        value.json += ",\"version\":" + std::to_string(input.version) +
                      ",\"id\":" + std::to_string(input.id) + "}";
        value.text += input.stage + "@" + std::to_string(input.version);
    }
    value.json += "]";
    return value;
}

}  // namespace

Field text_or_null(const std::string& text) {
    return text.empty() ? Field{} : Field{text};
}

const std::vector<std::string> checkpoint_columns = {
    "id",        "pipeline",    "stage",         "status",          "version",
    "timestamp", "run_id",      "duration_ms",   "message",         "fingerprint",
    "metadata",  "output_size", "output_sha256", "output_location", "inputs"};

std::vector<Field> checkpoint_record(const checkpoint::Checkpoint& row) {
    const bool pipeline_clear = row.stage.empty() && row.status == checkpoint::Status::Cleared;
    const auto& output = row.output;
    return {
        row.id,
        row.pipeline,
        pipeline_clear ? Field{} : Field{row.stage},
        std::string(to_string(row.status)),
        row.version,
        row.timestamp,
        row.run_id,
        row.duration ? Field{static_cast<std::int64_t>(row.duration->count())} : Field{},
        text_or_null(row.message),
        // issue 4's columns, after the original ones
        text_or_null(row.fingerprint),
        metadata_field(row.metadata),
        output ? Field{output->size} : Field{},
        output ? Field{output->sha256} : Field{},
        output ? Field{std::string(output->in_database ? "database" : "file")} : Field{},
        inputs_field(row.inputs),
    };
}

const std::vector<std::string> status_columns = {"stage",       "status", "version",
                                                 "last_change", "run_id", "reason"};

std::string reported_status(const checkpoint::Checkpoint& state) {
    return state.stale ? std::string("stale") : std::string(to_string(state.status));
}

std::vector<Field> status_record(const checkpoint::Checkpoint& state) {
    return {state.stage,   reported_status(state),
            state.version, state.timestamp,
            state.run_id,  state.stale ? text_or_null(state.stale_reason) : Field{}};
}

std::vector<Field> lease_status_record(const checkpoint::StageLease& lease, std::int64_t version,
                                       const std::string& last_change) {
    return {lease.stage,
            std::string("running"),
            version,
            last_change,
            lease.run_id,
            "claimed by host " + lease.host + ", pid " + std::to_string(lease.pid) +
                " (lease token " + std::to_string(lease.token) + ") until " + lease.expires_at +
                " unless renewed"};
}

const std::vector<std::string> pipeline_columns = {"pipeline", "stages", "completed", "runs",
                                                   "last_activity"};

const std::vector<std::string> run_columns = {"run_id", "started_at", "ended_at", "host",   "pid",
                                              "user",   "completed",  "failed",   "outcome"};

std::vector<Field> run_record(const checkpoint::Run& run) {
    return {run.run_id,
            run.started_at,
            run.ended_at ? Field{*run.ended_at} : Field{},
            run.host,
            run.pid,
            run.user,
            run.stages_completed,
            run.stages_failed,
            std::string(to_string(run.outcome))};
}

}  // namespace checkpointctl
