#include "run_rules.hpp"

#include "identity.hpp"

namespace checkpoint::detail {

bool LivenessCache::may_be_alive(const std::string& host, std::int64_t pid) {
    const auto key = std::make_pair(host, pid);
    auto found = alive_.find(key);
    if (found == alive_.end()) found = alive_.emplace(key, process_may_be_alive(host, pid)).first;
    return found->second;
}

RunOutcome reported_outcome(const RunFacts& run, LivenessCache& liveness) {
    if (run.outcome == RunOutcome::Running && !liveness.may_be_alive(run.host, run.pid))
        return RunOutcome::Died;
    return run.outcome;
}

Status reported_status(Status stored, bool open_attempt, const RunFacts& run,
                       LivenessCache& liveness) {
    if (stored != Status::Started || !open_attempt) return stored;
    return reported_outcome(run, liveness) == RunOutcome::Running ? Status::Started
                                                                  : Status::Incomplete;
}

}  // namespace checkpoint::detail
