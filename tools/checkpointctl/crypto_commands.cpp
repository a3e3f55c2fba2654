#include "crypto_commands.hpp"

#include "database.hpp"

#include <checkpoint/keys.hpp>

#include <iostream>

namespace checkpointctl {

int run_keygen(const Settings& settings) {
    checkpoint::generate_key_file(settings.keygen_file);
    std::cerr << "checkpointctl: wrote a new key to " << settings.keygen_file
              << " (mode 0600). Keep a copy somewhere safe: without it the database cannot be "
                 "written again\n";
    return exit_ok;
}

int run_seal(const Settings& settings) {
    const auto manager = open_database(settings, true);
    std::cout << manager.history_head() << "\n";
    return exit_ok;
}

}  // namespace checkpointctl
