#include "logging.hpp"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace checkpoint::detail {

std::shared_ptr<spdlog::logger> default_logger() {
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    if (auto existing = spdlog::get("checkpoint")) return existing;
    auto logger = std::make_shared<spdlog::logger>(
        "checkpoint", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_level(spdlog::level::info);
    try {
        spdlog::register_logger(logger);
    } catch (const spdlog::spdlog_ex&) {
        // Registered meanwhile by the application: use theirs.
        if (auto existing = spdlog::get("checkpoint")) return existing;
    }
    return logger;
}

}  // namespace checkpoint::detail
