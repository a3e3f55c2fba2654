// The library's default logger.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace checkpoint::detail {

// The spdlog logger named "checkpoint": the application's, if it registered one under
// that name, otherwise one created on first use (stderr, level info).
std::shared_ptr<spdlog::logger> default_logger();

}  // namespace checkpoint::detail
