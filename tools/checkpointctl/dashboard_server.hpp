// checkpointctl serve: the read-only web dashboard (pages, JSON API, /metrics).
#pragma once

#include "command_line.hpp"

namespace checkpointctl {

// Opens the database read-only (throws checkpoint::Error as every read command does), listens
// on settings.listen and serves until SIGINT or SIGTERM. Prints the address it serves on
// (with the port chosen when it was 0) on stdout once it accepts connections. Returns
// exit_ok after a signal, exit_listen when it cannot listen there.
int run_serve(const Settings& settings);

}  // namespace checkpointctl
