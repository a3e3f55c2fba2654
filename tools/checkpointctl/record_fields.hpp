// The records that checkpointctl's read commands print (and the dashboard's JSON API
// serves): their columns, in order, and the fields of one record. New columns are only
// ever appended.
#pragma once

#include "record_writer.hpp"

#include <checkpoint/lease.hpp>
#include <checkpoint/records.hpp>

#include <string>
#include <vector>

namespace checkpointctl {

// history and dump: one history row.
extern const std::vector<std::string> checkpoint_columns;
std::vector<Field> checkpoint_record(const checkpoint::Checkpoint& row);

// status: a stage's current state; "stale" (with the library's reason) for a completed
// stage that is not up to date.
extern const std::vector<std::string> status_columns;
std::vector<Field> status_record(const checkpoint::Checkpoint& state);
// A stage under a live lease: "running", the holder's run, and (as the reason) its host,
// pid, token and expiry.
std::vector<Field> lease_status_record(const checkpoint::StageLease& lease, std::int64_t version,
                                       const std::string& last_change);
// The status a stage reads as: to_string(status), or "stale".
std::string reported_status(const checkpoint::Checkpoint& state);

// runs: one run.
extern const std::vector<std::string> run_columns;
std::vector<Field> run_record(const checkpoint::Run& run);

// pipelines: one pipeline (its name, stages, completed stages, runs, last activity).
extern const std::vector<std::string> pipeline_columns;

// Absent (null) when empty.
Field text_or_null(const std::string& text);

}  // namespace checkpointctl
