#include "dashboard_json.hpp"

#include "record_fields.hpp"

namespace checkpointctl::dashboard {

namespace {

Json records_json(const std::vector<checkpoint::Checkpoint>& rows) {
    auto array = Json::array();
    for (const auto& row : rows)
        array.push_back(record_json(checkpoint_columns, checkpoint_record(row)));
    return array;
}

Json counts_json(const std::map<std::string, std::int64_t>& counts) {
    auto object = Json::object();
    for (const auto& [name, count] : counts) object[name] = count;
    return object;
}

Json optional_json(const std::optional<std::string>& text) {
    return text ? Json(*text) : Json(nullptr);
}

}  // namespace

Json record_json(const std::vector<std::string>& columns, const std::vector<Field>& fields) {
    auto object = Json::object();
    for (std::size_t i = 0; i < columns.size(); ++i) {
        const Field& field = i < fields.size() ? fields[i] : Field{};
        Json& value = object[columns[i]];
        if (const auto* text = std::get_if<std::string>(&field)) {
            value = *text;
        } else if (const auto* number = std::get_if<std::int64_t>(&field)) {
            value = *number;
        } else if (const auto* structured = std::get_if<JsonValue>(&field)) {
            value = Json::parse(structured->json);
        }  // else null
    }
    return object;
}

const std::vector<std::string> stage_extra_columns = {"last_duration_ms", "fingerprint", "metadata",
                                                      "message", "inputs"};

Json stage_json(const StageView& view) {
    auto object = record_json(status_columns, status_record(view.state));
    const auto row = record_json(checkpoint_columns, checkpoint_record(view.state));
    object["last_duration_ms"] =
        view.last_duration_ms ? Json(*view.last_duration_ms) : Json(nullptr);
    for (const char* column : {"fingerprint", "metadata", "message", "inputs"})
        object[column] = row.at(column);
    return object;
}

Json pipeline_summary_json(const PipelineSummary& summary) {
    return {
        {"pipeline", summary.pipeline},
        {"stages", summary.stage_count},
        {"stages_by_status", counts_json(summary.stages_by_status)},
        {"runs_by_outcome", counts_json(summary.runs_by_outcome)},
        {"last_run", summary.last_run ? record_json(run_columns, run_record(*summary.last_run))
                                      : Json(nullptr)},
        {"last_completed_at", optional_json(summary.last_completed_at)},
    };
}

Json pipelines_json(const std::vector<PipelineSummary>& summaries) {
    auto array = Json::array();
    for (const auto& summary : summaries) array.push_back(pipeline_summary_json(summary));
    return {{"now", now_timestamp()}, {"pipelines", std::move(array)}};
}

Json stages_json(const std::string& pipeline, const std::vector<StageView>& views) {
    auto array = Json::array();
    for (const auto& view : views) array.push_back(stage_json(view));
    return {{"pipeline", pipeline}, {"now", now_timestamp()}, {"stages", std::move(array)}};
}

Json runs_json(const std::string& pipeline, const std::vector<checkpoint::Run>& runs) {
    auto array = Json::array();
    for (const auto& run : runs) array.push_back(record_json(run_columns, run_record(run)));
    return {{"pipeline", pipeline}, {"now", now_timestamp()}, {"runs", std::move(array)}};
}

Json history_json(const std::string& pipeline, const HistoryPage& page) {
    return {{"pipeline", pipeline},
            {"rows", records_json(page.rows)},
            {"next_before", page.next_before ? Json(*page.next_before) : Json(nullptr)}};
}

Json run_json(const std::string& pipeline, const Timeline& timeline) {
    auto bars = Json::array();
    for (const auto& bar : timeline.bars) {
        bars.push_back({
            {"stage", bar.stage},
            {"status", bar.status},
            {"start_ms", bar.start_ms},
            {"end_ms", bar.end_ms},
            {"start", bar.start},
            {"end", bar.end},
            {"duration_ms", bar.duration_ms ? Json(*bar.duration_ms) : Json(nullptr)},
            {"attempts", bar.attempts},
            {"message", bar.message.empty() ? Json(nullptr) : Json(bar.message)},
        });
    }
    return {
        {"pipeline", pipeline},
        {"now", now_timestamp()},
        {"run", record_json(run_columns, run_record(timeline.run))},
        {"timeline", {{"length_ms", timeline.length_ms}, {"bars", std::move(bars)}}},
        {"rows", timeline.rows},
        {"failures", records_json(timeline.failures)},
        {"recent", records_json(timeline.recent)},
    };
}

Json error_json(const std::string& code, const std::string& message) {
    return {{"error", message}, {"code", code}};
}

std::string json_text(const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string script_safe_json_text(const Json& value) {
    const std::string text = json_text(value);
    std::string safe;
    safe.reserve(text.size() + text.size() / 16);
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '<') {
            safe += "\\u003c";
        } else if (c == '>') {
            safe += "\\u003e";
        } else if (c == '&') {
            safe += "\\u0026";
        } else if (c == '\xE2' && i + 2 < text.size() && text[i + 1] == '\x80' &&
                   (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
            safe += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            safe += c;
        }
    }
    return safe;
}

}  // namespace checkpointctl::dashboard
