// checkpoint::rekey (keys.hpp): which key opens the database decides what is left to do.
#include <checkpoint/keys.hpp>

#include "backend.hpp"
#include "crypto/secret_key.hpp"
#include "history_chain.hpp"
#include "identity.hpp"
#include "validation.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint {

RekeyResult rekey(const std::filesystem::path& location, const Options& options,
                  const std::filesystem::path& new_key_file) {
    detail::check_options(location, options);
    if (options.key_file.empty()) {
        throw Error(ErrorCode::InvalidArgument,
                    "rekey: give the database's current key file (Options::key_file, "
                    "--key-file) and the new one (--new-key-file)");
    }
    const auto new_key = detail::load_key_file(new_key_file);
    detail::BackendConfig config{location,
                                 options.database_file,
                                 options.pipeline,
                                 options.durability,
                                 options.busy_timeout,
                                 false,
                                 options.file_mode,
                                 options.max_inline_output,
                                 options.reconnect_timeout,
                                 options.logger,
                                 detail::load_key_file(options.key_file)};
    // No run is recorded: rekey writes no history row.
    const detail::RunIdentity run{detail::new_run_id(), detail::current_process()};
    RekeyResult result;
    std::unique_ptr<detail::Backend> backend;
    try {
        backend = detail::open_backend(config, run);
    } catch (const Error& e) {
        if (e.code() != ErrorCode::WrongKey) throw;
        // Perhaps a rekey was killed after its commit: the new key opens it.
        config.key = new_key;
        backend = detail::open_backend(config, run);
        backend->finish_rekey();
        result.already_done = true;
    }
    if (!result.already_done) {
        // The preconditions of Backend::rekey, the same on every backend.
        if (!backend->chain_key()) {
            throw Error(ErrorCode::InvalidArgument,
                        backend->description() +
                            ": is not encrypted; rekey changes the key of an encrypted "
                            "database (to encrypt this one, copy it into a new database "
                            "with a key: checkpointctl copy --key-file)");
        }
        if (new_key->key_id == config.key->key_id) {
            throw Error(
                ErrorCode::InvalidArgument,
                backend->description() + ": the new key file holds the same key as the old one");
        }
        backend->rekey(new_key);
    }
    const detail::ChainState state = backend->chain_state();
    result.history_head = detail::format_chain_head({state.head_id, state.head_hash});
    return result;
}

}  // namespace checkpoint
