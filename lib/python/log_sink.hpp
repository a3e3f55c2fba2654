// The library's log lines, forwarded to Python's `logging` (logger "checkpoint").
#pragma once

#include <memory>

#include <pybind11/pybind11.h>
#include <spdlog/logger.h>

namespace checkpoint::python {

// Looks up logging.getLogger("checkpoint") once (at import; needs the GIL).
void init_logging();

// The spdlog logger given to every CheckpointManager (Options::logger). Its one sink hands
// each line to the Python logger `checkpoint` with the matching level: debug, info
// (saves, clears), warning (failed stages), error (failures, with the database path). The
// sink takes the GIL itself, so the library may log with the GIL released, from any
// thread; while the interpreter is shutting down, lines of level warning and above go to
// stderr instead (as Python's logging.lastResort would print them).
std::shared_ptr<spdlog::logger> python_logger();

// Makes the spdlog logger's level follow the Python logger's effective level, so that a
// line Python would drop is not even formatted. Called (with the GIL) at every API call.
void sync_log_level();

}  // namespace checkpoint::python
