// Leases above the backends: the Lease handle, its heartbeat, claim_stage's back-off, the
// options' validation (see lease_state.hpp).
#include "lease_state.hpp"

#include <checkpoint/error.hpp>

#include <algorithm>
#include <random>
#include <utility>

namespace checkpoint::detail {

void check_lease_options(const LeaseOptions& options) {
    if (options.ttl < min_lease_ttl || options.ttl > max_lease_ttl) {
        throw Error(ErrorCode::InvalidArgument,
                    "LeaseOptions::ttl must be from " + std::to_string(min_lease_ttl.count()) +
                        " ms to " + std::to_string(max_lease_ttl.count()) + " ms (24 hours); got " +
                        std::to_string(options.ttl.count()) + " ms. Nothing was claimed");
    }
    if (options.wait.count() < 0) {
        throw Error(ErrorCode::InvalidArgument,
                    "LeaseOptions::wait must not be negative (0: try once; "
                    "milliseconds::max(): wait for ever); got " +
                        std::to_string(options.wait.count()) + " ms. Nothing was claimed");
    }
}

std::chrono::milliseconds claim_backoff(int attempt, std::chrono::milliseconds ttl,
                                        std::chrono::milliseconds remaining) {
    const std::chrono::milliseconds cap =
        std::max(std::chrono::milliseconds(1), std::min(std::chrono::milliseconds(250), ttl / 4));
    std::chrono::milliseconds pause(5);
    for (int i = 1; i < attempt && pause < cap; ++i) pause *= 2;
    pause = std::min(pause, cap);
    thread_local std::minstd_rand rng(std::random_device{}());
    // Jitter: between half and all of the pause.
    const auto half = pause.count() / 2;
    pause = std::chrono::milliseconds(
        half + std::uniform_int_distribution<std::int64_t>(0, pause.count() - half)(rng));
    return std::max(std::chrono::milliseconds(1), std::min(pause, remaining));
}

LeaseState::LeaseState(LeaseHost& host, std::string stage, std::int64_t token, LeaseOptions options)
    : stage_(std::move(stage)), token_(token), options_(options), host_(&host) {}

LeaseState::~LeaseState() {
    stop_heartbeat();
}

void LeaseState::start_heartbeat() {
    if (!options_.heartbeat) return;
    heartbeat_ = std::thread([this] { heartbeat_loop(); });
}

void LeaseState::heartbeat_loop() {
    const auto interval = std::max(std::chrono::milliseconds(1), options_.ttl / 3);
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
        lock.unlock();
        bool lost = false;
        try {
            std::lock_guard call(call_mutex_);
            if (host_ == nullptr) return;
            lost = !host_->renew_lease(stage_, token_, options_.ttl);
            if (lost) {
                host_->warn("the lease (token " + std::to_string(token_) + ") on stage '" + stage_ +
                            "' was found lost when renewing it: it lapsed or another worker "
                            "took the stage over; this worker's next write of the stage will "
                            "throw LeaseLost");
            }
        } catch (const std::exception& e) {
            // The database failed: keep the claim and try again at the next beat (the claim
            // lapses if the failures last longer than the ttl).
            std::lock_guard call(call_mutex_);
            if (host_ != nullptr)
                host_->warn("renewing the lease on stage '" + stage_ + "' failed: " + e.what());
        }
        lock.lock();
        if (lost) {
            lost_ = true;
            return;
        }
    }
}

void LeaseState::stop_heartbeat() noexcept {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (heartbeat_.joinable() && heartbeat_.get_id() != std::this_thread::get_id())
        heartbeat_.join();
}

void LeaseState::renew() {
    {
        std::lock_guard lock(mutex_);
        if (released_ || lost_) {
            throw Error(ErrorCode::LeaseLost,
                        "renewing the lease (token " + std::to_string(token_) + ") on stage '" +
                            stage_ + "' refused: the lease was " +
                            (released_ ? "released" : "lost (it lapsed or was taken over)") +
                            ". Claim the stage again if it still needs to run");
        }
    }
    std::lock_guard call(call_mutex_);
    if (host_ == nullptr) {
        throw Error(ErrorCode::LeaseLost, "renewing the lease on stage '" + stage_ +
                                              "' refused: its CheckpointManager was destroyed");
    }
    if (!host_->renew_lease(stage_, token_, options_.ttl)) {
        mark_lost();
        throw Error(ErrorCode::LeaseLost,
                    "renewing the lease (token " + std::to_string(token_) + ") on stage '" +
                        stage_ +
                        "' refused: it lapsed or another worker took the stage over; nothing was "
                        "written. Stop working on the stage, and claim it again if it still "
                        "needs to run");
    }
}

void LeaseState::release() {
    {
        std::lock_guard lock(mutex_);
        if (released_) return;
        released_ = true;
    }
    stop_heartbeat();
    std::lock_guard call(call_mutex_);
    if (host_ == nullptr) return;
    host_->forget_lease(stage_, token_);
    if (lost()) return;  // nothing of ours to release
    host_->release_lease(stage_, token_);
}

void LeaseState::release_noexcept() noexcept {
    try {
        release();
    } catch (const std::exception& e) {
        std::lock_guard call(call_mutex_);
        if (host_ != nullptr) {
            host_->warn("releasing the lease on stage '" + stage_ + "' failed (" + e.what() +
                        "); it lapses after its ttl");
        }
    } catch (...) {
    }
}

bool LeaseState::lost() const noexcept {
    std::lock_guard lock(mutex_);
    return lost_;
}

void LeaseState::mark_lost() noexcept {
    std::lock_guard lock(mutex_);
    lost_ = true;
}

void LeaseState::detach() noexcept {
    stop_heartbeat();
    std::lock_guard call(call_mutex_);
    host_ = nullptr;
}

}  // namespace checkpoint::detail

namespace checkpoint {

Lease::Lease(std::shared_ptr<detail::LeaseState> state) noexcept : state_(std::move(state)) {}

Lease::~Lease() {
    if (state_) state_->release_noexcept();
}

Lease::Lease(Lease&& other) noexcept = default;

Lease& Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        if (state_) state_->release_noexcept();
        state_ = std::move(other.state_);
    }
    return *this;
}

const std::string& Lease::stage() const noexcept {
    return state_->stage();
}

std::int64_t Lease::token() const noexcept {
    return state_->token();
}

void Lease::renew() {
    state_->renew();
}

void Lease::release() {
    state_->release();
}

bool Lease::lost() const noexcept {
    return state_->lost();
}

}  // namespace checkpoint
