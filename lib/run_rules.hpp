// How runs and unfinished stages read: the rules, once for every backend (no SQL here).
//  - A run the database calls running whose process is gone (on this host: no such pid)
//    reads as Died.
//  - A Started row never followed by Completed or Failed of its stage in its run (an open
//    attempt) reads as Incomplete once its run has ended, died, or reads as Died.
//  - A run failed when one of its stages failed and was not completed after (close_run).
#pragma once

#include <checkpoint/records.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace checkpoint::detail {

// Caches process liveness for one read call.
class LivenessCache {
public:
    // False only when `host` is this machine and no process `pid` exists.
    bool may_be_alive(const std::string& host, std::int64_t pid);

private:
    std::map<std::pair<std::string, std::int64_t>, bool> alive_;
};

// The facts of a run as stored.
struct RunFacts {
    RunOutcome outcome = RunOutcome::Running;  // as stored
    std::string host;
    std::int64_t pid = 0;
};

// The outcome a run reads as.
RunOutcome reported_outcome(const RunFacts& run, LivenessCache& liveness);

// The status a row reads as: `stored` is Started, Completed, Failed or Cleared (a backend
// may already have turned an open Started row of an ended run into Incomplete);
// `open_attempt`: for a Started row, that its run never completed or failed the stage after.
Status reported_status(Status stored, bool open_attempt, const RunFacts& run,
                       LivenessCache& liveness);

}  // namespace checkpoint::detail
