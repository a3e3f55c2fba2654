// The rules of leases that are not SQL (backend-neutral): what a Lease does, when it is
// renewed, how claim_stage waits. The claim, renewal, release and fencing themselves are
// the backends' (Backend::claim_lease and friends, Write::lease_token), each inside one
// transaction.
#pragma once

#include <checkpoint/lease.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace checkpoint::detail {

// The smallest and largest LeaseOptions::ttl.
inline constexpr std::chrono::milliseconds min_lease_ttl{10};
inline constexpr std::chrono::milliseconds max_lease_ttl{24 * 60 * 60 * 1000};

// Throws Error(InvalidArgument) naming the field unless `options` is usable.
void check_lease_options(const LeaseOptions& options);

// What a lease needs from the manager that holds it (CheckpointManager::Impl).
class LeaseHost {
public:
    virtual ~LeaseHost() = default;
    // Backend::renew_lease under the manager's lock. Throws Error.
    virtual bool renew_lease(const std::string& stage, std::int64_t token,
                             std::chrono::milliseconds ttl) = 0;
    // Backend::release_lease under the manager's lock. Throws Error.
    virtual void release_lease(const std::string& stage, std::int64_t token) = 0;
    // The manager no longer fences the stage's writes with this lease.
    virtual void forget_lease(const std::string& stage, std::int64_t token) noexcept = 0;
    // Logs a warning (the heartbeat's failures, a release that failed in a destructor).
    virtual void warn(const std::string& message) noexcept = 0;
};

// The waiting policy of claim_stage: the pause before try number `attempt` (1, 2, ...):
// 5 ms doubling up to the cap (250 ms, and at most ttl / 4), with jitter so that waiting
// workers do not poll in step; never past `remaining`.
std::chrono::milliseconds claim_backoff(int attempt, std::chrono::milliseconds ttl,
                                        std::chrono::milliseconds remaining);

// The state shared by a Lease and the manager that holds it. Thread-safe.
class LeaseState {
public:
    LeaseState(LeaseHost& host, std::string stage, std::int64_t token, LeaseOptions options);
    ~LeaseState();  // stops the heartbeat
    LeaseState(const LeaseState&) = delete;
    LeaseState& operator=(const LeaseState&) = delete;

    const std::string& stage() const noexcept { return stage_; }
    std::int64_t token() const noexcept { return token_; }

    // Starts the heartbeat (when the options ask for it): renew every ttl / 3 until
    // released; a renewal that finds the claim lost marks it lost and stops.
    void start_heartbeat();
    void renew();
    void release();
    // Release from a destructor: logs instead of throwing.
    void release_noexcept() noexcept;
    bool lost() const noexcept;
    void mark_lost() noexcept;
    // The manager is going away: stop the heartbeat, forget the host (later calls do
    // nothing; the claim lapses after its ttl unless released before).
    void detach() noexcept;

private:
    void stop_heartbeat() noexcept;
    void heartbeat_loop();

    const std::string stage_;
    const std::int64_t token_;
    const LeaseOptions options_;

    std::mutex call_mutex_;  // held while host_ is used; guards host_
    LeaseHost* host_;
    mutable std::mutex mutex_;  // guards released_, lost_, stop_
    std::condition_variable wake_;
    bool released_ = false;
    bool lost_ = false;
    bool stop_ = false;
    std::thread heartbeat_;
};

}  // namespace checkpoint::detail
