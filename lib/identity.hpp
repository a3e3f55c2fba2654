// Who is writing: the process identity recorded with each run, and run ids.
#pragma once

#include <cstdint>
#include <string>

namespace checkpoint::detail {

struct ProcessIdentity {
    std::string host;
    std::int64_t pid = 0;
    std::string user;
};

// The identity of the calling process (host name, pid, user name of the effective uid).
ProcessIdentity current_process();

// A new run id: a UUID version 7 (48-bit millisecond timestamp, then random bits) in the
// canonical 36-character text form, so that ids sort by creation time.
std::string new_run_id();

// False only when `host` is this machine and no process `pid` exists; true otherwise
// (alive, owned by another user, or on another host where it cannot be checked).
bool process_may_be_alive(const std::string& host, std::int64_t pid);

}  // namespace checkpoint::detail
