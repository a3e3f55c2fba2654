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

int run_rekey(const Settings& settings) {
    const Location location = locate(settings);
    if (settings.key_file.empty()) {
        std::cerr << "checkpointctl: rekey needs the database's current key (--key-file) and the "
                     "new one (--new-key-file)\n";
        return exit_usage;
    }
    const checkpoint::RekeyResult result =
        checkpoint::rekey(location.directory, location.options, settings.new_key_file);
    std::cerr << "checkpointctl: "
              << (result.already_done ? "the database had the new key already (an earlier rekey "
                                        "was interrupted after its commit); its leftovers are "
                                        "deleted"
                                      : "re-encrypted everything under the new key")
              << ". Keep the new key file; the old one no longer opens it. The history chain's "
                 "new head (seal it again):\n";
    std::cout << result.history_head << "\n";
    return exit_ok;
}

}  // namespace checkpointctl
