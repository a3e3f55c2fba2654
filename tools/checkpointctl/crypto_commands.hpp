// checkpointctl keygen and seal (README, "Security"); verify --expect-head is in main.cpp's
// verify, --key-file in every subcommand's location options.
#pragma once

#include "command_line.hpp"

namespace checkpointctl {

// keygen FILE: writes a new key file (0600), refusing to replace one.
int run_keygen(const Settings& settings);

// seal: prints the history chain's head, "<row id> <64 hex digits>".
int run_seal(const Settings& settings);

// rekey --key-file OLD --new-key-file NEW: re-encrypts the database; prints the new head.
int run_rekey(const Settings& settings);

}  // namespace checkpointctl
