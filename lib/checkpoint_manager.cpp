#include <checkpoint/checkpoint_manager.hpp>

#include "backend.hpp"
#include "batch_window.hpp"
#include "clock.hpp"
#include "crypto/key_check.hpp"
#include "crypto/secret_key.hpp"
#include "history_chain.hpp"
#include "identity.hpp"
#include "lease_state.hpp"
#include "logging.hpp"
#include "migrations.hpp"
#include "names.hpp"
#include "sha256.hpp"
#include "staleness.hpp"
#include "validation.hpp"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace checkpoint {

using detail::validate_name;

int schema_version() noexcept {
    return detail::latest_schema_version();
}
using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

struct CheckpointManager::Impl final : detail::LeaseHost {
    // A write waiting in the group-commit queue.
    struct Queued {
        detail::Write& write;
        bool done = false;
    };

    Impl(std::filesystem::path directory, Options opts)
        : options(std::move(opts)),
          logger(options.logger ? options.logger : detail::default_logger()),
          run_id(detail::new_run_id()),
          store(open_store(directory, options, run_id)) {}

    // Validates the options (the API boundary: nothing is opened before they pass), then
    // opens the backend.
    static std::unique_ptr<detail::Backend> open_store(const std::filesystem::path& directory,
                                                       const Options& options,
                                                       const std::string& run_id) {
        detail::check_options(directory, options);
        detail::BackendConfig config{directory,
                                     options.database_file,
                                     options.pipeline,
                                     options.durability,
                                     options.busy_timeout,
                                     options.read_only,
                                     options.file_mode,
                                     options.max_inline_output,
                                     options.reconnect_timeout,
                                     options.logger,
                                     nullptr};
        if (!options.key_file.empty()) config.key = detail::load_key_file(options.key_file);
        return detail::open_backend(config, detail::RunIdentity{run_id, detail::current_process()});
    }

    // Group commit. A writer queues its write; the first writer that finds no leader
    // becomes the leader and commits everything queued so far in one transaction (one
    // fsync), while the others wait. When the recent batches held more writes than are
    // queued, the leader first waits a moment for the others (detail::BatchWindow: never for
    // a lone writer). Each call still returns only once its own write is committed, or
    // throws its own error: durability per call is unchanged.
    void submit(detail::Write& write) {
        Queued mine{write};
        std::unique_lock lock(queue_mutex);
        queue.push_back(&mine);
        if (leader_waiting && queue.size() >= window.expected()) arrived.notify_one();
        while (!mine.done) {
            if (leader_active) {
                committed.wait(lock);
                continue;
            }
            leader_active = true;
            const auto wait = window.wait_for(queue.size());
            if (wait > detail::BatchWindow::Duration::zero()) {
                leader_waiting = true;
                if (!arrived.wait_until(lock, SteadyClock::now() + wait,
                                        [&] { return queue.size() >= window.expected(); }))
                    window.missed(queue.size());
                leader_waiting = false;
            }
            std::vector<Queued*> batch;
            batch.swap(queue);
            lock.unlock();
            const auto started = SteadyClock::now();
            commit_batch(batch);
            const auto took = SteadyClock::now() - started;
            lock.lock();
            window.record(batch.size(), took);
            for (Queued* queued : batch) queued->done = true;
            leader_active = false;
            committed.notify_all();
        }
        lock.unlock();
        if (write.error) {
            try {
                std::rethrow_exception(write.error);
            } catch (const Error& e) {
                if (e.code() == ErrorCode::LeaseLost && write.lease_token) {
                    if (const auto lease = lease_of(write.stage)) lease->mark_lost();
                }
                logger->debug("{}", e.what());
                throw;
            }
        }
    }

    // ---- Leases ----

    // The lease this manager holds on `stage`, or nullptr.
    std::shared_ptr<detail::LeaseState> lease_of(const std::string& stage) {
        std::lock_guard lock(leases_mutex);
        const auto found = held.find(stage);
        return found == held.end() ? nullptr : found->second;
    }

    // Fences `write` when this manager holds a lease on its stage: the backend checks the
    // token inside the write's transaction. A lease known to be lost fails at once.
    void fence(detail::Write& write) {
        if (write.status == Status::Cleared) return;  // clears are not fenced
        const auto lease = lease_of(write.stage);
        if (!lease) return;
        if (lease->lost()) {
            const Error error = detail::lease_lost_error(
                store->description(),
                "recording stage '" + write.stage + "' as " + std::string(to_string(write.status)),
                write.stage, lease->token());
            logger->debug("{}", error.what());
            throw error;
        }
        write.lease_token = lease->token();
    }

    bool renew_lease(const std::string& stage, std::int64_t token,
                     std::chrono::milliseconds ttl) override {
        std::lock_guard lock(mutex);
        return store->renew_lease(stage, token, ttl);
    }

    void release_lease(const std::string& stage, std::int64_t token) override {
        {
            std::lock_guard lock(mutex);
            store->release_lease(stage, token);
        }
        logger->debug("released the lease (token {}) on stage '{}'", token, stage);
    }

    void forget_lease(const std::string& stage, std::int64_t token) noexcept override {
        std::lock_guard lock(leases_mutex);
        const auto found = held.find(stage);
        if (found != held.end() && found->second->token() == token) held.erase(found);
    }

    void warn(const std::string& message) noexcept override {
        try {
            logger->warn("{}", message);
        } catch (...) {
        }
    }

    // Releases every lease still held (the manager is going away). Never throws.
    void release_all_leases() noexcept {
        std::vector<std::shared_ptr<detail::LeaseState>> leases;
        {
            std::lock_guard lock(leases_mutex);
            for (auto& entry : held) leases.push_back(entry.second);
        }
        for (const auto& lease : leases) {
            lease->release_noexcept();
            lease->detach();
        }
    }

    void commit_batch(const std::vector<Queued*>& batch) noexcept {
        std::vector<detail::Write*> writes;
        try {
            writes.reserve(batch.size());
            for (Queued* queued : batch) writes.push_back(&queued->write);
            std::lock_guard connection(mutex);
            store->write_batch(writes);
            note_failed_stages(writes);
        } catch (...) {  // out of memory: fail every write that has no result yet
            for (Queued* queued : batch)
                if (!queued->write.appended && !queued->write.error)
                    queued->write.error = std::current_exception();
        }
    }

    // After a commit: a run failed when one of its stages failed and was not completed
    // after (close_run). Called with `mutex` held.
    void note_failed_stages(const std::vector<detail::Write*>& writes) {
        for (const detail::Write* write : writes) {
            if (write->error || !write->appended) continue;
            if (write->kind == detail::Write::Kind::Stage && write->status == Status::Failed) {
                failed_stages.insert(write->stage);
            } else if (write->kind == detail::Write::Kind::Import ||
                       (write->kind == detail::Write::Kind::Stage &&
                        write->status == Status::Completed)) {
                failed_stages.erase(write->stage);
            }
        }
    }

    // Milliseconds since begin_stage(stage) in this run, or nothing.
    std::optional<std::int64_t> elapsed_since_begin(const std::string& stage) {
        std::lock_guard lock(begun_mutex);
        const auto found = begun.find(stage);
        if (found == begun.end()) return std::nullopt;
        const auto elapsed = std::chrono::steady_clock::now() - found->second;
        return std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    }

    void set_begun(const std::string& stage, bool begun_now) {
        std::lock_guard lock(begun_mutex);
        if (begun_now) {
            begun[stage] = std::chrono::steady_clock::now();
        } else {
            begun.erase(stage);
        }
    }

    // has_checkpoint(stage[, *fingerprint]).
    bool up_to_date(std::string_view stage, const std::string_view* fingerprint) {
        validate_name(stage, "stage name");
        const std::string name(stage);
        detail::HeadState state;
        {
            std::lock_guard lock(mutex);
            state = store->head_state(name, fingerprint != nullptr);
        }
        if (!state.completed) {
            logger->debug("has_checkpoint('{}') = false", name);
            return false;
        }
        if (!state.stale_reason.empty()) {
            logger->debug("stage '{}' is stale: {}", name, state.stale_reason);
            return false;
        }
        if (fingerprint && state.fingerprint != *fingerprint) {
            logger->debug("stage '{}' has another fingerprint ('{}', not '{}'): it must run again",
                          name, state.fingerprint, *fingerprint);
            return false;
        }
        logger->debug("has_checkpoint('{}') = true", name);
        return true;
    }

    std::optional<std::string> load_output(std::string_view stage,
                                           std::optional<std::int64_t> version) {
        validate_name(stage, "stage name");
        const std::string name(stage);
        std::optional<detail::OutputLocation> location;
        {
            std::lock_guard lock(mutex);
            location = store->output_of(name, version);
        }
        if (!location) return std::nullopt;
        try {
            const StoredOutput& output = location->output;
            // The file is read without holding the connection.
            if (!output.in_database) return store->read_output_file(output);
            if (detail::to_hex(detail::sha256(location->data)) != output.sha256) {
                throw Error(ErrorCode::OutputDamaged,
                            store->description() + ": the output of stage '" + name +
                                "' stored in the database no longer matches its SHA-256 "
                                "(altered). The stage must run again: clear it or save it "
                                "anew");
            }
            return std::move(location->data);
        } catch (const Error& e) {
            logger->debug("{}", e.what());
            throw;
        }
    }

    // Records one row for `stage`; returns what was appended. Throws Error.
    detail::Appended write_stage(const std::string& stage, Status status,
                                 std::optional<std::int64_t> duration_ms = std::nullopt,
                                 std::string message = {}) {
        detail::Write write;
        write.kind = detail::Write::Kind::Stage;
        write.stage = stage;
        write.status = status;
        write.duration_ms = duration_ms;
        write.message = std::move(message);
        fence(write);
        submit(write);
        return *write.appended;
    }

    Options options;
    std::shared_ptr<spdlog::logger> logger;
    std::string run_id;
    mutable std::mutex mutex;  // guards the store (its one connection) and failed_stages
    std::unique_ptr<detail::Backend> store;
    std::set<std::string> failed_stages;  // failed in this run, not completed since

    std::mutex queue_mutex;  // guards the group-commit queue
    std::condition_variable committed;
    std::condition_variable arrived;  // a waiting leader's batch is full (see submit)
    std::vector<Queued*> queue;
    bool leader_active = false;
    bool leader_waiting = false;
    detail::BatchWindow window;

    std::mutex begun_mutex;
    std::unordered_map<std::string, SteadyTime> begun;  // stages begun in this run

    std::mutex leases_mutex;                                                    // guards held
    std::unordered_map<std::string, std::shared_ptr<detail::LeaseState>> held;  // by stage
};

CheckpointManager::CheckpointManager() : CheckpointManager("checkpoints") {}

CheckpointManager::CheckpointManager(std::filesystem::path checkpoint_dir, Options options) {
    const auto logger = options.logger ? options.logger : detail::default_logger();
    try {
        impl_ = std::make_unique<Impl>(std::move(checkpoint_dir), std::move(options));
    } catch (const Error& e) {
        logger->debug("{}", e.what());
        throw;
    }
    if (const auto from = impl_->store->migrated_from()) {
        if (*from == 0) {
            impl_->logger->info("created {} (schema version {})", impl_->store->location(),
                                impl_->store->schema_version());
        } else {
            impl_->logger->info("migrated {} from schema version {} to {}",
                                impl_->store->location(), *from, impl_->store->schema_version());
        }
    }
    impl_->logger->debug("opened {} (pipeline '{}', run {})", impl_->store->location(),
                         impl_->options.pipeline, impl_->run_id);
}

CheckpointManager::~CheckpointManager() {
    if (!impl_) return;
    impl_->release_all_leases();
    try {
        std::lock_guard lock(impl_->mutex);
        impl_->store->close_run(!impl_->failed_stages.empty());
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
    const auto appended =
        impl_->write_stage(name, Status::Completed, impl_->elapsed_since_begin(name));
    impl_->set_begun(name, false);
    impl_->logger->debug("saved stage '{}' version {} in {}", name, appended.version,
                         impl_->store->location());
}

void CheckpointManager::save_checkpoint(std::string_view stage, const SaveOptions& options) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    detail::Write write;
    write.kind = detail::Write::Kind::Stage;
    write.stage = name;
    write.status = Status::Completed;
    write.metadata = detail::check_save_options(name, options);
    write.fingerprint = options.fingerprint;
    write.inputs = options.inputs;
    if (options.output && !options.inputs.empty()) {
        // Checked again in the transaction; checked here first so that a save refused for
        // its inputs leaves no output file behind.
        std::lock_guard lock(impl_->mutex);
        for (const std::string& input : options.inputs) {
            const detail::HeadState state = impl_->store->head_state(input, false);
            detail::require_usable_input(name, input, state.completed, state.stale_reason);
        }
    }
    if (options.output) {
        write.output = &*options.output;
        // Before the transaction, without the connection (the backend's part outside it).
        try {
            impl_->store->prepare_output(write);  // may hash it (while writing a file)
            if (write.output_sha256.empty())
                write.output_sha256 = detail::to_hex(detail::sha256(*options.output));
        } catch (const Error& e) {
            impl_->logger->debug("saving stage '{}': {}", name, e.what());
            throw;
        }
    }
    write.duration_ms = impl_->elapsed_since_begin(name);
    impl_->fence(write);
    impl_->submit(write);
    impl_->set_begun(name, false);
    if (options.output) {
        impl_->logger->debug("saved stage '{}' version {} with a {}-byte output ({}) in {}", name,
                             write.appended->version, options.output->size(),
                             write.output_in_database ? "in the database" : "in a file",
                             impl_->store->location());
    } else {
        impl_->logger->debug("saved stage '{}' version {} in {}", name, write.appended->version,
                             impl_->store->location());
    }
}

void CheckpointManager::begin_stage(std::string_view stage) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    impl_->write_stage(name, Status::Started);
    impl_->set_begun(name, true);
    impl_->logger->debug("started stage '{}'", name);
}

void CheckpointManager::fail_stage(std::string_view stage, std::string_view message) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    std::string text = detail::sanitize_message(message);
    impl_->write_stage(name, Status::Failed, impl_->elapsed_since_begin(name), text);
    impl_->set_begun(name, false);
    if (impl_->options.key_file.empty()) {
        impl_->logger->warn("stage '{}' failed: {}", name, text);
    } else {
        // With a key the message is encrypted in the database: the log does not repeat it.
        impl_->logger->warn("stage '{}' failed (its message is encrypted, not logged)", name);
    }
}

bool CheckpointManager::run_stage(std::string_view stage, const std::function<void()>& fn) {
    if (has_checkpoint(stage)) {
        impl_->logger->debug("skipped stage '{}': already completed", stage);
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

std::optional<Lease> CheckpointManager::claim_stage(std::string_view stage,
                                                    const LeaseOptions& options) {
    validate_name(stage, "stage name");
    detail::check_lease_options(options);
    const std::string name(stage);
    if (impl_->lease_of(name)) {
        throw Error(ErrorCode::InvalidArgument,
                    "claiming stage '" + name + "' in " + impl_->store->location() +
                        ": this manager holds a lease on it already; release that one first. "
                        "Nothing was claimed");
    }
    const bool forever = options.wait == std::chrono::milliseconds::max();
    const auto started = std::chrono::steady_clock::now();
    for (int attempt = 1;; ++attempt) {
        if (has_checkpoint(stage)) return std::nullopt;
        detail::LeaseClaim claim;
        try {
            std::lock_guard lock(impl_->mutex);
            claim = impl_->store->claim_lease(name, options.ttl);
        } catch (const Error& e) {
            impl_->logger->debug("{}", e.what());
            throw;
        }
        if (claim.token) {
            auto state = std::make_shared<detail::LeaseState>(*impl_, name, *claim.token, options);
            {
                std::lock_guard lock(impl_->leases_mutex);
                impl_->held[name] = state;
            }
            Lease lease(state);
            // Completed by another holder between the check above and the claim: nobody
            // can complete it while this claim holds, so this check is the last word.
            if (has_checkpoint(stage)) return std::nullopt;  // ~Lease releases it
            state->start_heartbeat();
            impl_->logger->debug("claimed stage '{}' (lease token {}, ttl {} ms) in {}", name,
                                 *claim.token, options.ttl.count(), impl_->store->location());
            return lease;
        }
        const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        const std::chrono::milliseconds remaining =
            forever ? std::chrono::milliseconds::max() : options.wait - waited;
        if (remaining.count() <= 0) {
            const StageLease& holder = claim.holder;
            const Error error(
                ErrorCode::Busy,
                "claiming stage '" + name + "' in " + impl_->store->location() +
                    ": another worker holds it (host " + holder.host + ", pid " +
                    std::to_string(holder.pid) + ", run " + holder.run_id + ", lease token " +
                    std::to_string(holder.token) + ", until " + holder.expires_at +
                    " unless renewed) and LeaseOptions::wait (" +
                    std::to_string(options.wait.count()) +
                    " ms) ran out. Nothing was claimed; try again later, or wait longer");
            impl_->logger->debug("{}", error.what());
            throw error;
        }
        if (attempt == 1) {
            impl_->logger->debug("stage '{}' is claimed by run {} (host {}, pid {}): waiting", name,
                                 claim.holder.run_id, claim.holder.host, claim.holder.pid);
        }
        std::this_thread::sleep_for(detail::claim_backoff(attempt, options.ttl, remaining));
    }
}

bool CheckpointManager::run_stage(std::string_view stage, const std::function<void()>& fn,
                                  const LeaseOptions& lease_options) {
    std::optional<Lease> lease = claim_stage(stage, lease_options);
    if (!lease) {
        impl_->logger->debug("skipped stage '{}': already completed", stage);
        return false;
    }
    begin_stage(stage);
    try {
        fn();
    } catch (const std::exception& e) {
        try {
            fail_stage(stage, e.what());
        } catch (const Error&) {  // logged; the caller gets fn's exception
        }
        throw;
    } catch (...) {
        try {
            fail_stage(stage, "unknown exception (not derived from std::exception)");
        } catch (const Error&) {
        }
        throw;
    }
    save_checkpoint(stage);
    lease.reset();  // releases the claim (a failure is logged: the claim then lapses)
    return true;
}

std::vector<StageLease> CheckpointManager::leases() const {
    try {
        std::lock_guard lock(impl_->mutex);
        return impl_->store->leases();
    } catch (const Error& e) {
        impl_->logger->debug("{}", e.what());
        throw;
    }
}

void CheckpointManager::clear_checkpoints() {
    detail::Write write;
    write.kind = detail::Write::Kind::PipelineClear;
    impl_->submit(write);
    impl_->logger->debug("cleared every stage of pipeline '{}' (history row {}) in {}",
                         impl_->options.pipeline, write.appended->id, impl_->store->location());
}

void CheckpointManager::clear_checkpoint(std::string_view stage) {
    validate_name(stage, "stage name");
    const std::string name(stage);
    impl_->write_stage(name, Status::Cleared);
    impl_->logger->debug("cleared stage '{}' in {}", name, impl_->store->location());
}

std::vector<std::string> CheckpointManager::clear_checkpoint(std::string_view stage,
                                                             ClearScope scope) {
    if (scope == ClearScope::StageOnly) {
        clear_checkpoint(stage);
        return {std::string(stage)};
    }
    validate_name(stage, "stage name");
    detail::Write write;
    write.kind = detail::Write::Kind::ClearDownstream;
    write.stage = std::string(stage);
    impl_->submit(write);
    impl_->logger->debug("cleared stage '{}' and {} downstream stage(s) in {}", write.stage,
                         write.cleared.size() - 1, impl_->store->location());
    return write.cleared;
}

PruneResult CheckpointManager::prune(const PruneOptions& options) {
    detail::check_prune_options(options);
    PruneResult result;
    try {
        std::lock_guard lock(impl_->mutex);
        result = impl_->store->prune(options);
    } catch (const Error& e) {
        impl_->logger->debug("{}", e.what());
        throw;
    }
    impl_->logger->debug(
        "pruned pipeline '{}': {} history rows, {} runs, {} output files, {} bytes, in {}",
        impl_->options.pipeline, result.rows_deleted, result.runs_deleted, result.files_deleted,
        result.bytes_freed, impl_->store->location());
    return result;
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
    detail::Write write;
    write.kind = detail::Write::Kind::Import;
    write.stage = std::string(stage);
    write.timestamp = std::string(timestamp);
    write.message = detail::sanitize_message(source);
    impl_->submit(write);
    if (write.appended) {
        impl_->logger->debug("imported stage '{}' (completed {}) as version {} from {}",
                             write.stage, write.timestamp, write.appended->version, write.message);
    } else {
        impl_->logger->debug("stage '{}' from {} was imported before", write.stage, write.message);
    }
    return write.appended.has_value();
}

bool CheckpointManager::has_checkpoint(std::string_view stage) const {
    return impl_->up_to_date(stage, nullptr);
}

bool CheckpointManager::has_checkpoint(std::string_view stage, std::string_view fingerprint) const {
    return impl_->up_to_date(stage, &fingerprint);
}

std::optional<std::string> CheckpointManager::load_output(std::string_view stage) const {
    return impl_->load_output(stage, std::nullopt);
}

std::optional<std::string> CheckpointManager::load_output(std::string_view stage,
                                                          std::int64_t version) const {
    return impl_->load_output(stage, version);
}

std::optional<Checkpoint> CheckpointManager::latest(std::string_view stage) const {
    validate_name(stage, "stage name");
    std::lock_guard lock(impl_->mutex);
    return impl_->store->current(std::string(stage));
}

std::vector<Checkpoint> CheckpointManager::stages() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->store->current_all();
}

std::vector<Checkpoint> CheckpointManager::history(const HistoryFilter& filter) const {
    std::vector<Checkpoint> rows;
    for_each_history(filter, [&rows](const Checkpoint& row) { rows.push_back(row); });
    return rows;
}

void CheckpointManager::for_each_history(
    const HistoryFilter& filter, const std::function<void(const Checkpoint&)>& visit) const {
    const HistoryFilter checked = detail::check_filter(filter);
    std::lock_guard lock(impl_->mutex);
    impl_->store->for_each_history(checked, visit);
}

std::vector<Run> CheckpointManager::runs() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->store->runs();
}

std::vector<std::string> CheckpointManager::pipelines() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->store->pipelines();
}

std::vector<std::string> CheckpointManager::verify() const {
    return verify_history({});
}

std::vector<std::string> CheckpointManager::verify(std::string_view expected_head) const {
    return verify_history(detail::parse_chain_head(expected_head));
}

std::vector<std::string> CheckpointManager::verify_history(
    const std::optional<detail::ChainHead>& expected_head) const {
    std::lock_guard lock(impl_->mutex);
    try {
        std::vector<std::string> problems = impl_->store->verify();
        for (std::string& problem : impl_->store->verify_chain(expected_head))
            problems.push_back(std::move(problem));
        return problems;
    } catch (const Error& e) {
        impl_->logger->debug("{}", e.what());
        throw;
    }
}

std::string CheckpointManager::history_head() const {
    std::lock_guard lock(impl_->mutex);
    if (impl_->store->key_missing()) {
        detail::throw_key_required(impl_->store->description(), "sealing the history");
    }
    const detail::ChainState state = impl_->store->chain_state();
    return detail::format_chain_head({state.head_id, state.head_hash});
}

void CheckpointManager::backup(const std::filesystem::path& destination) const {
    if (destination.empty())
        throw Error(ErrorCode::InvalidArgument, "backup: the destination directory is empty");
    std::lock_guard lock(impl_->mutex);
    impl_->store->backup(destination);
    impl_->logger->debug("backed up {} into {}", impl_->store->location(), destination.string());
}

const std::string& CheckpointManager::run_id() const noexcept {
    return impl_->run_id;
}

const std::string& CheckpointManager::pipeline() const noexcept {
    return impl_->options.pipeline;
}

std::filesystem::path CheckpointManager::outputs_directory() const {
    return impl_->store->outputs_directory();
}

const std::filesystem::path& CheckpointManager::database_path() const noexcept {
    return impl_->store->path();
}

int CheckpointManager::schema_version() const noexcept {
    return impl_->store->schema_version();
}

const std::string& CheckpointManager::location() const noexcept {
    return impl_->store->location();
}

}  // namespace checkpoint
