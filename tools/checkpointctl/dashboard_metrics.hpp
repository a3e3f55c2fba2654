// /metrics: the pipelines in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include "dashboard_model.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace checkpointctl::dashboard {

// A label value as the format requires: backslash, double quote and line feed escaped.
std::string prometheus_label_value(std::string_view text);

// Every metric of every pipeline:
//   checkpoint_stages{pipeline,status}                       stages by current status
//   checkpoint_stage_last_duration_seconds{pipeline,stage}   the last attempt's duration
//   checkpoint_runs{pipeline,outcome}                        runs by outcome
//   checkpoint_last_completed_timestamp_seconds{pipeline}    the last completed save
std::string metrics_text(const std::vector<PipelineSummary>& summaries);

}  // namespace checkpointctl::dashboard
