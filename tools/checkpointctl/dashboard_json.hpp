// The dashboard's JSON API documents. Rows, stages and runs are the records of
// `checkpointctl history|status|runs --format json` (same columns, same values), so a
// consumer can switch between the two; a stage gains columns after the status ones.
#pragma once

#include "dashboard_model.hpp"
#include "record_writer.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace checkpointctl::dashboard {

// JSON objects keep their members in the order written (the columns' order).
using Json = nlohmann::ordered_json;

// One record as a JSON object, as RecordWriter writes it in JSON.
Json record_json(const std::vector<std::string>& columns, const std::vector<Field>& fields);

// The columns of a stage: status_columns, then these.
extern const std::vector<std::string> stage_extra_columns;
Json stage_json(const StageView& view);

Json pipeline_summary_json(const PipelineSummary& summary);
// {"now": T, "pipelines": [summary...]}
Json pipelines_json(const std::vector<PipelineSummary>& summaries);
// {"pipeline": P, "now": T, "stages": [stage...]}
Json stages_json(const std::string& pipeline, const std::vector<StageView>& views);
// {"pipeline": P, "now": T, "runs": [run...]} (oldest first, as `checkpointctl runs`)
Json runs_json(const std::string& pipeline, const std::vector<checkpoint::Run>& runs);
// {"pipeline": P, "rows": [row...], "next_before": ID or null} (newest first)
Json history_json(const std::string& pipeline, const HistoryPage& page);
// {"pipeline": P, "now": T, "run": run, "timeline": {...}, "failures": [row...],
//  "rows": N, "recent": [row...]}
Json run_json(const std::string& pipeline, const Timeline& timeline);
// {"error": MESSAGE, "code": CODE}
Json error_json(const std::string& code, const std::string& message);

// Compact JSON text; invalid UTF-8 (only in a hand-edited database) becomes U+FFFD.
std::string json_text(const Json& value);
// The same, safe inside an HTML <script> element: '<', '>', '&', U+2028 and U+2029 are
// written as \u escapes (they occur only inside strings, where that means the same).
std::string script_safe_json_text(const Json& value);

}  // namespace checkpointctl::dashboard
