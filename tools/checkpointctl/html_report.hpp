// checkpointctl report --html FILE: one self-contained HTML file of a pipeline and a run.
#pragma once

#include "command_line.hpp"

namespace checkpointctl {

// Writes settings.html_file (atomically: a temporary file renamed over it) with the
// pipeline's status grid and runs, and the timeline, rows and failures of run settings.run
// (default: the pipeline's last run). Opens the database read-only. Throws checkpoint::Error
// as the read commands do; returns exit_error (with a message) for an unknown pipeline or
// run, or a file that cannot be written.
int run_report(const Settings& settings);

}  // namespace checkpointctl
