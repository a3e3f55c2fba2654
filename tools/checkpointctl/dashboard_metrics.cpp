#include "dashboard_metrics.hpp"

#include <cstdio>

namespace checkpointctl::dashboard {

namespace {

const char* const stage_statuses[] = {"completed",  "started", "failed",
                                      "incomplete", "cleared", "stale"};
const char* const run_outcomes[] = {"running", "finished", "failed", "died"};

std::string seconds_text(std::int64_t ms) {
    char text[48];
    std::snprintf(text, sizeof text, "%.3f", static_cast<double>(ms) / 1000.0);
    return text;
}

void family(std::string& out, const char* name, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += " gauge\n";
}

std::string label(const char* name, std::string_view value) {
    return std::string(name) + "=\"" + prometheus_label_value(value) + "\"";
}

}  // namespace

std::string prometheus_label_value(std::string_view text) {
    std::string escaped;
    escaped.reserve(text.size());
    for (const char c : text) {
        if (c == '\\') {
            escaped += "\\\\";
        } else if (c == '"') {
            escaped += "\\\"";
        } else if (c == '\n') {
            escaped += "\\n";
        } else {
            escaped += c;
        }
    }
    return escaped;
}

std::string metrics_text(const std::vector<PipelineSummary>& summaries) {
    std::string out;
    family(out, "checkpoint_stages", "Stages of the pipeline by current status.");
    for (const auto& summary : summaries) {
        for (const char* status : stage_statuses) {
            const auto found = summary.stages_by_status.find(status);
            out += "checkpoint_stages{" + label("pipeline", summary.pipeline) + "," +
                   label("status", status) + "} " +
                   std::to_string(found == summary.stages_by_status.end() ? 0 : found->second) +
                   "\n";
        }
    }
    family(out, "checkpoint_stage_last_duration_seconds",
           "How long the stage's last completed or failed attempt ran.");
    for (const auto& summary : summaries) {
        for (const auto& view : summary.stages) {
            if (!view.last_duration_ms) continue;
            out += "checkpoint_stage_last_duration_seconds{" + label("pipeline", summary.pipeline) +
                   "," + label("stage", view.state.stage) + "} " +
                   seconds_text(*view.last_duration_ms) + "\n";
        }
    }
    family(out, "checkpoint_runs", "Runs of the pipeline by outcome.");
    for (const auto& summary : summaries) {
        for (const char* outcome : run_outcomes) {
            const auto found = summary.runs_by_outcome.find(outcome);
            out += "checkpoint_runs{" + label("pipeline", summary.pipeline) + "," +
                   label("outcome", outcome) + "} " +
                   std::to_string(found == summary.runs_by_outcome.end() ? 0 : found->second) +
                   "\n";
        }
    }
    family(out, "checkpoint_last_completed_timestamp_seconds",
           "When the pipeline's last completed save was recorded (Unix time).");
    for (const auto& summary : summaries) {
        if (!summary.last_completed_at) continue;
        const auto ms = epoch_ms(*summary.last_completed_at);
        if (!ms) continue;
        out += "checkpoint_last_completed_timestamp_seconds{" +
               label("pipeline", summary.pipeline) + "} " + seconds_text(*ms) + "\n";
    }
    return out;
}

}  // namespace checkpointctl::dashboard
