#include "output_crossover.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <random>

namespace bench {

namespace {

std::string size_text(std::size_t bytes) {
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " B";
}

// Incompressible bytes, different for each call (a file is named by its SHA-256, so equal
// outputs would share one file).
std::string payload(std::size_t bytes, std::mt19937_64& random) {
    std::string data(bytes, '\0');
    for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(random());
    return data;
}

}  // namespace

std::vector<CrossoverPoint> measure_output_crossover(const std::filesystem::path& root,
                                                     const std::vector<std::size_t>& sizes,
                                                     int repetitions,
                                                     const std::function<void()>& settle) {
    std::vector<CrossoverPoint> points;
    std::mt19937_64 random(16);
    for (const std::size_t bytes : sizes) {
        checkpoint::Options in_database;  // the defaults, but for where outputs go
        in_database.max_inline_output = bytes;
        checkpoint::Options in_file;
        in_file.max_inline_output = 0;
        const std::string label = std::to_string(bytes);
        checkpoint::CheckpointManager inline_manager(root / ("crossover-inline-" + label),
                                                     in_database);
        checkpoint::CheckpointManager file_manager(root / ("crossover-file-" + label), in_file);
        std::vector<std::string> data;
        for (int i = 0; i < repetitions; ++i) data.push_back(payload(bytes, random));
        int inline_round = 0;
        int file_round = 0;
        const auto save_and_load = [&](checkpoint::CheckpointManager& manager, int& round) {
            const std::string& output = data[static_cast<std::size_t>(round)];
            const std::string stage = "s" + std::to_string(round++);
            const auto started = Clock::now();
            checkpoint::SaveOptions save;
            save.output = output;
            manager.save_checkpoint(stage, save);
            const std::optional<std::string> loaded = manager.load_output(stage);
            const double seconds = seconds_since(started);
            if (!loaded || *loaded != output) throw Failure("load_output returned other bytes");
            return seconds;
        };
        const auto samples =
            interleave(repetitions,
                       {[&] { return save_and_load(inline_manager, inline_round); },
                        [&] { return save_and_load(file_manager, file_round); }},
                       settle);
        CrossoverPoint point;
        point.bytes = bytes;
        point.inline_seconds = median(samples[0]);
        point.file_seconds = median(samples[1]);
        point.ratio = paired_ratio(samples[1], samples[0]);
        points.push_back(point);
    }
    return points;
}

std::size_t crossover_bytes(const std::vector<CrossoverPoint>& points) {
    std::size_t from = 0;
    for (auto it = points.rbegin(); it != points.rend() && it->ratio < 1.0; ++it) from = it->bytes;
    return from;
}

std::vector<Row> crossover_rows(const std::vector<CrossoverPoint>& points) {
    std::vector<Row> rows;
    for (const CrossoverPoint& point : points) {
        Row row;
        row.operation = "save + load of a " + size_text(point.bytes) + " output: file vs inline";
        row.ours = format_duration(point.file_seconds);
        row.baseline = format_duration(point.inline_seconds);
        row.ratio = format_ratio(point.ratio);
        rows.push_back(row);
    }
    return rows;
}

}  // namespace bench
