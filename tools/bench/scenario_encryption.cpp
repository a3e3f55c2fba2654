// checkpoint_bench — encryption at rest (Options::key_file) against the same without a key.
#include "scenario.hpp"

#include <checkpoint/keys.hpp>

#include <cstring>

namespace bench {

namespace {

void run_encryption(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("encryption: " + size_label(z.large_output_bytes) +
         " outputs and Normal saves, with a key file against without");
    const fs::path key = ctx.fresh("encryption-key") / "bench.key";
    checkpoint::generate_key_file(key);
    checkpoint::Options keyed = options(Durability::Full);
    keyed.key_file = key;
    CheckpointManager plain(ctx.fresh("encryption-plain"), options(Durability::Full));
    CheckpointManager sealed(ctx.fresh("encryption-keyed"), keyed);
    std::string data(static_cast<std::size_t>(z.large_output_bytes), '\0');
    std::uint64_t state = 11;
    for (char& c : data) c = static_cast<char>((state = state * 6364136223846793005ULL + 1) >> 56);
    long saves = 0;
    auto save_with = [&](CheckpointManager& manager) {
        return [&] {
            std::memcpy(data.data(), &saves, sizeof saves);
            ++saves;
            checkpoint::SaveOptions save;
            save.output = data;
            const auto started = Clock::now();
            manager.save_checkpoint("large", save);
            return bench::seconds_since(started);
        };
    };
    const auto saved = bench::interleave(
        z.output_repetitions, {save_with(sealed), save_with(plain)}, [&] { ctx.settle(); });
    Row& save_row = ctx.row("output_large_key");
    save_row.operation = "save with a " + size_label(z.large_output_bytes) +
                         " output (a file): with a key (encrypted) vs without";
    fill_time_ratio(save_row, saved[0], saved[1], "saves/s");
    save_row.goal = "— (info)";
    auto load_with = [&](CheckpointManager& manager) {
        return [&] {
            const auto started = Clock::now();
            const std::optional<std::string> loaded = manager.load_output("large");
            const double seconds = bench::seconds_since(started);
            if (!loaded || loaded->size() != data.size())
                throw Failure("load_output returned the wrong size");
            return seconds;
        };
    };
    const auto loaded =
        bench::interleave(z.output_repetitions, {load_with(sealed), load_with(plain)});
    Row& load_row = ctx.row("load_large_key");
    load_row.operation = "load_output of " + size_label(z.large_output_bytes) +
                         " (SHA-256 checked): with a key (decrypted) vs without";
    fill_time_ratio(load_row, loaded[0], loaded[1], "loads/s");
    load_row.goal = "— (info)";
    // Normal saves with metadata and a message-free row: the keyed chain and two encrypted
    // fields against the unkeyed chain.
    checkpoint::Options keyed_normal = options(Durability::Normal);
    keyed_normal.key_file = key;
    CheckpointManager plain_normal(ctx.fresh("encryption-plain-normal"),
                                   options(Durability::Normal));
    CheckpointManager sealed_normal(ctx.fresh("encryption-keyed-normal"), keyed_normal);
    StageName name;
    long plain_saved = 0, sealed_saved = 0;
    const auto normal = bench::interleave(
        z.repetitions,
        {[&] {
             return per_operation(z.normal_saves, [&](long) {
                 checkpoint::SaveOptions save;
                 save.metadata = {{"rows", sealed_saved}};
                 sealed_normal.save_checkpoint(name("stage_", sealed_saved++), save);
             });
         },
         [&] {
             return per_operation(z.normal_saves, [&](long) {
                 checkpoint::SaveOptions save;
                 save.metadata = {{"rows", plain_saved}};
                 plain_normal.save_checkpoint(name("stage_", plain_saved++), save);
             });
         }},
        [&] { ctx.settle(); });
    Row& normal_row = ctx.row("save_normal_key");
    normal_row.operation = "save with metadata, Durability::Normal: with a key vs without";
    fill_time_ratio(normal_row, normal[0], normal[1], "saves/s");
    normal_row.goal = "— (info)";
}

const bool registered =
    register_scenario({"encryption",
                       100,
                       {{"output_large_key", "save with a 100 MiB output, with a key vs without"},
                        {"load_large_key", "load_output of 100 MiB, with a key vs without"},
                        {"save_normal_key", "save with Durability::Normal, with a key vs without"}},
                       run_encryption});

}  // namespace

}  // namespace bench
