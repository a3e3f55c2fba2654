#include <checkpoint/copy.hpp>

#include "backend.hpp"
#include "crypto/secret_key.hpp"
#include "identity.hpp"
#include "sha256.hpp"
#include "validation.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint {

CopyResult copy_history(const std::filesystem::path& from, const std::filesystem::path& to,
                        const Options& options) {
    detail::check_options(from, options);
    detail::check_options(to, options);
    detail::BackendConfig config{from,
                                 options.database_file,
                                 options.pipeline,
                                 options.durability,
                                 options.busy_timeout,
                                 true,
                                 options.file_mode,
                                 options.max_inline_output,
                                 options.reconnect_timeout,
                                 options.logger,
                                 nullptr};
    // The same key file for both: a plaintext source is read as it is, and a new target gets
    // the key (copying is how a plaintext history becomes a keyed one).
    if (!options.key_file.empty()) config.key = detail::load_key_file(options.key_file);
    // No run is ever recorded: neither backend is written through write_batch.
    const detail::RunIdentity run{detail::new_run_id(), detail::current_process()};
    const auto source = detail::open_backend(config, run);
    config.directory = to;
    config.read_only = false;
    const auto target = detail::open_backend(config, run);
    if (source->location() == target->location() ||
        (!source->path().empty() && std::filesystem::equivalent(source->path(), target->path()))) {
        throw Error(ErrorCode::InvalidArgument,
                    "copying " + source->description() + " onto itself: give another target");
    }
    CopyResult result;
    result.from_location = source->location();
    result.to_location = target->location();
    const auto import = target->begin_import();
    source->export_history(
        [&](const detail::RawRun& raw) {
            import->add_run(raw);
            ++result.runs;
        },
        [&](const detail::RawRow& raw, const std::optional<std::string>& output) {
            if (raw.output &&
                (!output || detail::to_hex(detail::sha256(*output)) != raw.output->sha256)) {
                throw Error(ErrorCode::OutputDamaged,
                            source->description() + ": the output of history row " +
                                std::to_string(raw.id) +
                                " does not match its SHA-256; nothing was copied. Run "
                                "`checkpointctl verify` on the source");
            }
            import->add_row(raw, output ? &*output : nullptr);
            ++result.rows;
            if (raw.output) {
                ++result.outputs;
                result.output_bytes += raw.output->size;
            }
        });
    import->commit();
    return result;
}

}  // namespace checkpoint
