// checkpoint_bench — saves that store an output, and loading it back, against the same bytes
// written to and read from a file.
#include "scenario.hpp"

#include <cstring>

namespace bench {

namespace {

void run_outputs(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("outputs: saves with a " + size_label(z.small_output_bytes) + " and a " +
         size_label(z.large_output_bytes) + " output, against writing the bytes durably");
    // Default options: the small output fits the database (1 MiB limit), the large does not.
    CheckpointManager ours(ctx.fresh("outputs-ours"), options(Durability::Full));
    const fs::path files = ctx.fresh("outputs-files");
    long saves = 0;
    // Each save stores other bytes (its number in the first 8), as a real stage would.
    auto payload = [](long bytes) {
        std::string data(static_cast<std::size_t>(bytes), '\0');
        std::uint64_t state = 7;
        for (char& c : data)
            c = static_cast<char>((state = state * 6364136223846793005ULL + 1) >> 56);
        return data;
    };
    std::string small = payload(z.small_output_bytes);
    std::string large = payload(z.large_output_bytes);
    auto stamp = [&saves](std::string& data) { std::memcpy(data.data(), &saves, sizeof saves); };
    auto compare = [&](std::string& data, const char* key, const std::string& label, double goal) {
        const auto samples =
            bench::interleave(z.output_repetitions,
                              {[&] {
                                   stamp(data);
                                   checkpoint::SaveOptions save;
                                   save.output = data;
                                   const auto started = Clock::now();
                                   ours.save_checkpoint("output_" + label, save);
                                   const double seconds = bench::seconds_since(started);
                                   ++saves;
                                   return seconds;
                               },
                               [&] {
                                   stamp(data);
                                   const auto started = Clock::now();
                                   bench::write_file_durably(files, "output_" + label, data);
                                   const double seconds = bench::seconds_since(started);
                                   ++saves;
                                   return seconds;
                               }},
                              [&] { ctx.settle(); });
        Row& row = ctx.row(key);
        row.operation = "save with a " + label + " output (" +
                        (data.size() <= (1u << 20) ? "in the database" : "as a file") +
                        ") vs writing it to a file durably";
        fill_time_ratio(row, samples[0], samples[1], "saves/s", goal);
    };
    compare(small, "output_small", size_label(z.small_output_bytes), 1.5);
    compare(large, "output_large", size_label(z.large_output_bytes), 1.2);
    const std::string label = size_label(z.large_output_bytes);
    const auto loads = bench::interleave(
        z.output_repetitions,
        {[&] {
             const auto started = Clock::now();
             const std::optional<std::string> loaded = ours.load_output("output_" + label);
             const double seconds = bench::seconds_since(started);
             if (!loaded || loaded->size() != large.size())
                 throw Failure("load_output returned the wrong size");
             return seconds;
         },
         [&] {
             const auto started = Clock::now();
             const std::string loaded = bench::read_file(files / ("output_" + label));
             const double seconds = bench::seconds_since(started);
             if (loaded.size() != large.size()) throw Failure("read_file returned the wrong size");
             return seconds;
         }});
    Row& row = ctx.row("load_large");
    row.operation = "load_output of " + label + " (SHA-256 checked) vs reading the file";
    fill_time_ratio(row, loads[0], loads[1], "loads/s", 1.3);
}

const bool registered = register_scenario(
    {"outputs",
     90,
     {{"output_small", "save with a 1 MiB output vs writing it to a file durably"},
      {"output_large", "save with a 100 MiB output vs writing it to a file durably"},
      {"load_large", "load_output of 100 MiB vs reading the file"}},
     run_outputs});

}  // namespace

}  // namespace bench
