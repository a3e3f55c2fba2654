// checkpoint — stage leases: N worker processes (on one host with SQLite, on many with
// PostgreSQL) run the same pipeline code, and each stage runs to completion once.
//
//     while (auto lease = manager.claim_stage("train")) {   // std::nullopt: already done
//         manager.begin_stage("train");                     // fenced by the lease
//         train();
//         manager.save_checkpoint("train");                 // fenced: throws LeaseLost if
//         break;                                            // another worker took it over
//     }                                                     // ~Lease releases the claim
//
// or simply manager.run_stage("train", train, checkpoint::LeaseOptions{}).
#pragma once

#include <checkpoint/export.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace checkpoint {

namespace detail {
class LeaseState;
}

// How a claim behaves (CheckpointManager::claim_stage, run_stage with a lease).
struct LeaseOptions {
    // A claim lapses this long after it was made or last renewed, by the database's clock
    // (see "Leases" in the README); another worker may then take the stage over. Choose it
    // well above the longest pause a worker may see (GC, swapping, a slow disk) but short
    // enough that a crashed worker's stage is not idle for long. Default 30 s; from 10 ms
    // to 24 hours.
    std::chrono::milliseconds ttl{30'000};
    // How long claim_stage waits while another live claim holds the stage, polling with a
    // bounded back-off (at most 250 ms, and at most ttl / 4, between tries). Default
    // milliseconds::max(): wait for ever (until the stage is completed, or the holder
    // releases it or lets it lapse). 0: try once. Must not be negative.
    std::chrono::milliseconds wait{std::chrono::milliseconds::max()};
    // Renew the claim in the background every ttl / 3 while the Lease lives (default
    // true). Without it, call Lease::renew() more often than ttl yourself.
    bool heartbeat = true;
};

// A stage's current claim as stored (CheckpointManager::leases()).
struct StageLease {
    std::string stage;
    std::int64_t token = 0;  // the claim's fencing token
    std::string run_id;      // the holder's run, host and process id
    std::string host;
    std::int64_t pid = 0;
    std::string claimed_at;  // stored timestamp form, "2026-11-27T06:37:48.123Z"
    std::string expires_at;  // when it lapses unless renewed (the database's clock)
    bool live = false;       // false: it has lapsed, and the next claim takes the stage over
};

// A claim on one stage, held by the CheckpointManager that made it (claim_stage). While
// it is held, that manager's begin_stage, save_checkpoint and fail_stage of the stage are
// fenced: inside the write's transaction the database checks that this claim is still
// the stage's current one and has not lapsed, and otherwise the write throws
// Error(ErrorCode::LeaseLost) and writes nothing.
//
// Move-only. Destroying it releases the claim (never throws; a failure is logged, and the
// claim then lapses after its ttl). A Lease must be destroyed (or released) before the
// manager that made it. Its calls are thread-safe. A moved-from Lease may only be
// destroyed or assigned to.
class CHECKPOINT_EXPORT Lease {
public:
    ~Lease();
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    // The stage claimed.
    const std::string& stage() const noexcept;
    // The fencing token: strictly increasing per stage, over every holder ever. The rows
    // written under this claim carry it (Checkpoint::lease_token).
    std::int64_t token() const noexcept;

    // Extends the claim to ttl from now (by the database's clock). Throws
    // Error(ErrorCode::LeaseLost) when the claim has lapsed or was taken over (nothing is
    // written then; the stage's next fenced write of this manager throws it too), or was
    // released; Error as for any write when the database fails (the claim is then kept).
    void renew();

    // Releases the claim now, so that another worker may claim the stage at once; stops
    // the heartbeat. Releasing a lost or released claim does nothing. Throws Error when
    // the database fails (the claim then lapses after its ttl).
    void release();

    // True when this claim is known to be lost: a renewal or a fenced write found it
    // lapsed or taken over.
    bool lost() const noexcept;

private:
    friend class CheckpointManager;
    explicit Lease(std::shared_ptr<detail::LeaseState> state) noexcept;

    std::shared_ptr<detail::LeaseState> state_;
};

}  // namespace checkpoint
