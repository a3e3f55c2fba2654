#include <checkpoint/checkpoint_manager.hpp>

#include "clock.hpp"
#include "identity.hpp"
#include "logging.hpp"
#include "migrations.hpp"
#include "names.hpp"
#include "store.hpp"

#include <chrono>
#include <exception>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

namespace checkpoint {

using detail::validate_name;

int schema_version() noexcept {
    return detail::latest_schema_version();
}
using SteadyTime = std::chrono::steady_clock::time_point;

struct CheckpointManager::Impl {
    Impl(std::filesystem::path directory, Options opts)
        : options(std::move(opts)),
          logger(options.logger ? options.logger : detail::default_logger()),
          run_id(detail::new_run_id()),
          store(make_store(directory, options, run_id)) {}

    static detail::Store make_store(const std::filesystem::path& directory, const Options& options,
                                    const std::string& run_id) {
        validate_name(options.pipeline, "pipeline name");
        if (options.busy_timeout.count() < 0 || options.busy_timeout > std::chrono::hours(24)) {
            throw Error(
                ErrorCode::InvalidArgument,
                "invalid Options::busy_timeout: " + std::to_string(options.busy_timeout.count()) +
                    " ms; give 0 ms to 24 hours");
        }
        const std::filesystem::path file(options.database_file);
        if (options.database_file.empty() || file != file.filename() || file == "." ||
            file == "..") {
            throw Error(ErrorCode::InvalidArgument,
                        "invalid Options::database_file '" + options.database_file +
                            "': give a plain file name such as checkpoints.db, without '/'");
        }
        if (directory.empty()) {
            throw Error(ErrorCode::InvalidArgument,
                        "invalid checkpoint directory: the path is empty");
        }
        detail::StoreConfig config{directory,          options.database_file, options.pipeline,
                                   options.durability, options.busy_timeout,  options.read_only};
        return detail::Store(config, detail::RunIdentity{run_id, detail::current_process()});
    }

    // Runs a write under the lock; logs and rethrows its failure.
    template <typename Write>
    auto write(Write&& body) {
        try {
            std::lock_guard lock(mutex);
            return body();
        } catch (const Error& e) {
            logger->error("{}", e.what());
            throw;
        }
    }

    // Milliseconds since begin_stage(stage) in this run, forgetting the start; or nothing.
    std::optional<std::int64_t> take_duration(const std::string& stage) {
        const auto found = begun.find(stage);
        if (found == begun.end()) return std::nullopt;
        const auto elapsed = std::chrono::steady_clock::now() - found->second;
        begun.erase(found);
        return std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    }

    Options options;
    std::shared_ptr<spdlog::logger> logger;
    std::string run_id;
    mutable std::mutex mutex;  // guards everything below
    mutable detail::Store store;
    std::unordered_map<std::string, SteadyTime> begun;  // stages begun in this run
};

CheckpointManager::CheckpointManager() : CheckpointManager("checkpoints") {}

CheckpointManager::CheckpointManager(std::filesystem::path checkpoint_dir, Options options) {
    const auto logger = options.logger ? options.logger : detail::default_logger();
    try {
        impl_ = std::make_unique<Impl>(std::move(checkpoint_dir), std::move(options));
    } catch (const Error& e) {
        logger->error("{}", e.what());
        throw;
    }
    impl_->logger->debug("opened {} (pipeline '{}', run {})", impl_->store.path().string(),
                         impl_->options.pipeline, impl_->run_id);
}

CheckpointManager::~CheckpointManager() {
    if (!impl_) return;
    try {
        std::lock_guard lock(impl_->mutex);
        impl_->store.close_run();
    } catch (const std::exception& e) {
        impl_->logger->error("{}; the run will read as died", e.what());
    } catch (...) {
        impl_->logger->error("closing run {} failed; the run will read as died", impl_->run_id);
    }
}

CheckpointManager::CheckpointManager(CheckpointManager&&) noexcept = default;

CheckpointManager& CheckpointManager::operator=(CheckpointManager&& other) noexcept {
    if (this != &other) {
        CheckpointManager closing(std::move(*this));  // closes our current run
        impl_ = std::move(other.impl_);
    }
    return *this;
}

void CheckpointManager::save_checkpoint(std::string_view stage) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    const auto appended = impl_->write([&] {
        return impl_->store.append(name, Status::Completed, impl_->take_duration(name), {});
    });
    impl_->logger->info("saved stage '{}' version {} in {}", name, appended.version,
                        impl_->store.path().string());
}

void CheckpointManager::begin_stage(std::string_view stage) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    impl_->write([&] {
        impl_->store.append(name, Status::Started, std::nullopt, {});
        impl_->begun[name] = std::chrono::steady_clock::now();
    });
    impl_->logger->info("started stage '{}'", name);
}

void CheckpointManager::fail_stage(std::string_view stage, std::string_view message) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    const std::string text = detail::sanitize_message(message);
    impl_->write([&] {
        return impl_->store.append(name, Status::Failed, impl_->take_duration(name), text);
    });
    impl_->logger->warn("stage '{}' failed: {}", name, text);
}

bool CheckpointManager::run_stage(std::string_view stage, const std::function<void()>& fn) {
    if (has_checkpoint(stage)) {
        impl_->logger->info("skipped stage '{}': already completed", stage);
        return false;
    }
    begin_stage(stage);
    try {
        fn();
    } catch (const std::exception& e) {
        fail_stage(stage, e.what());
        throw;
    } catch (...) {
        fail_stage(stage, "unknown exception (not derived from std::exception)");
        throw;
    }
    save_checkpoint(stage);
    return true;
}

void CheckpointManager::clear_checkpoints() {
    const auto appended = impl_->write([&] { return impl_->store.clear_pipeline(); });
    impl_->logger->info("cleared every stage of pipeline '{}' (history row {}) in {}",
                        impl_->options.pipeline, appended.id, impl_->store.path().string());
}

void CheckpointManager::clear_checkpoint(std::string_view stage) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    impl_->write([&] { return impl_->store.append(name, Status::Cleared, std::nullopt, {}); });
    impl_->logger->info("cleared stage '{}' in {}", name, impl_->store.path().string());
}

bool CheckpointManager::import_checkpoint(std::string_view stage, std::string_view timestamp,
                                          std::string_view source) {
    validate_name(stage, "stage name");
    if (!detail::is_stored_timestamp(timestamp)) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid timestamp '" + detail::sanitize_message(timestamp) + "' for stage '" +
                        std::string(stage) +
                        "': use the stored form, e.g. 2026-11-27T06:37:48.123Z");
    }
    const std::string name(stage);
    const std::string when(timestamp);
    const std::string note = detail::sanitize_message(source);
    const auto appended =
        impl_->write([&] { return impl_->store.import_completed(name, when, note); });
    if (appended) {
        impl_->logger->info("imported stage '{}' (completed {}) as version {} from {}", name, when,
                            appended->version, note);
    } else {
        impl_->logger->debug("stage '{}' from {} was imported before", name, note);
    }
    return appended.has_value();
}

bool CheckpointManager::has_checkpoint(std::string_view stage) const {
    validate_name(stage, "stage name");
    const std::string name(stage);
    bool completed = false;
    {
        std::lock_guard lock(impl_->mutex);
        completed = impl_->store.has_completed(name);
    }
    impl_->logger->debug("has_checkpoint('{}') = {}", name, completed);
    return completed;
}

std::optional<Checkpoint> CheckpointManager::latest(std::string_view stage) const {
    validate_name(stage, "stage name");
    std::lock_guard lock(impl_->mutex);
    return impl_->store.current(std::string(stage));
}

std::vector<Checkpoint> CheckpointManager::stages() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->store.current_all();
}

std::vector<Checkpoint> CheckpointManager::history(const HistoryFilter& filter) const {
    std::vector<Checkpoint> rows;
    for_each_history(filter, [&rows](const Checkpoint& row) { rows.push_back(row); });
    return rows;
}

void CheckpointManager::for_each_history(
    const HistoryFilter& filter, const std::function<void(const Checkpoint&)>& visit) const {
    if (filter.stage) validate_name(*filter.stage, "stage name");
    std::lock_guard lock(impl_->mutex);
    impl_->store.for_each_history(filter, visit);
}

std::vector<Run> CheckpointManager::runs() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->store.runs();
}

std::vector<std::string> CheckpointManager::verify() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->store.verify();
}

const std::string& CheckpointManager::run_id() const noexcept {
    return impl_->run_id;
}

const std::string& CheckpointManager::pipeline() const noexcept {
    return impl_->options.pipeline;
}

const std::filesystem::path& CheckpointManager::database_path() const noexcept {
    return impl_->store.path();
}

}  // namespace checkpoint
