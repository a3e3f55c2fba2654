// How runs and unfinished stages read: the rules, once for every backend (no SQL here).
//  - A run the database calls running whose process is gone (on this host: no such pid),
//    or whose heartbeat (a backend that records one: PostgreSQL) is older than run_silence,
//    reads as Died.
//  - A Started row never followed by Completed or Failed of its stage in its run (an open
//    attempt) reads as Incomplete once its run has ended, died, or reads as Died.
//  - A run failed when one of its stages failed and was not completed after (close_run).
#pragma once

#include <checkpoint/records.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace checkpoint::detail {

// How long a running run may stay silent (no heartbeat) before it reads as Died, and how
// often a backend that records heartbeats touches its run (well within the silence).
inline constexpr std::chrono::seconds run_silence{300};
inline constexpr std::chrono::seconds heartbeat_interval{60};

// Caches process liveness for one read call.
class LivenessCache {
public:
    LivenessCache();
    // False only when `host` is this machine and no process `pid` exists.
    bool may_be_alive(const std::string& host, std::int64_t pid);
    // True when a heartbeat stamped `heartbeat_at` (the stored timestamp form) is older
    // than run_silence.
    bool is_silent(const std::string& heartbeat_at) const { return heartbeat_at < silent_before_; }

private:
    std::map<std::pair<std::string, std::int64_t>, bool> alive_;
    std::string silent_before_;  // now - run_silence, in the stored form
};

// The facts of a run as stored.
struct RunFacts {
    RunOutcome outcome = RunOutcome::Running;  // as stored
    std::string host;
    std::int64_t pid = 0;
    std::string heartbeat_at;  // its last heartbeat; empty: the backend records none
};

// The outcome a run reads as.
RunOutcome reported_outcome(const RunFacts& run, LivenessCache& liveness);

// The status a row reads as: `stored` is Started, Completed, Failed or Cleared (a backend
// may already have turned an open Started row of an ended run into Incomplete);
// `open_attempt`: for a Started row, that its run never completed or failed the stage after.
Status reported_status(Status stored, bool open_attempt, const RunFacts& run,
                       LivenessCache& liveness);

}  // namespace checkpoint::detail
