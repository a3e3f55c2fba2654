// checkpoint_bench — the scenario table, the sizes and the helpers every scenario shares.
#include "scenario.hpp"

#include <algorithm>

namespace bench {

// Many short repetitions: machine noise then hits ours and the baselines alike.
const Sizes full_sizes{.repetitions = 15,
                       .durable_saves = 100,
                       .original_saves = 40,
                       .normal_saves = 1000,
                       .has_stages = 100'000,
                       .lookups = 10'000,
                       .single_thread_saves = 100,
                       .saves_per_thread = 40,
                       .saves_per_process = 100,
                       .process_repetitions = 7,
                       .spawn_repetitions = 60,
                       .original_clear_stages = 20'000,
                       .original_clear_repetitions = 3,
                       .clear_rows = 1'000'000,
                       .clear_repetitions = 15,
                       .dump_repetitions = 3,
                       .csv_rows = 200'000,
                       .csv_repetitions = 7,
                       .output_repetitions = 5,
                       .small_output_bytes = 1 << 20,
                       .large_output_bytes = 100 << 20};
const Sizes quick_sizes{.repetitions = 3,
                        .durable_saves = 20,
                        .original_saves = 5,
                        .normal_saves = 200,
                        .has_stages = 5'000,
                        .lookups = 2'000,
                        .single_thread_saves = 20,
                        .saves_per_thread = 5,
                        .saves_per_process = 10,
                        .process_repetitions = 1,
                        .spawn_repetitions = 5,
                        .original_clear_stages = 1'000,
                        .original_clear_repetitions = 1,
                        .clear_rows = 10'000,
                        .clear_repetitions = 3,
                        .dump_repetitions = 1,
                        .csv_rows = 5'000,
                        .csv_repetitions = 1,
                        .output_repetitions = 1,
                        .small_output_bytes = 64 << 10,
                        .large_output_bytes = 2 << 20};

namespace {

std::vector<Scenario>& table() {
    static std::vector<Scenario> all;
    return all;
}

}  // namespace

bool register_scenario(Scenario scenario) {
    auto& all = table();
    const auto at =
        std::upper_bound(all.begin(), all.end(), scenario.order,
                         [](int order, const Scenario& other) { return order < other.order; });
    all.insert(at, std::move(scenario));
    return true;
}

const std::vector<Scenario>& scenarios() {
    return table();
}

fs::path Context::fresh(const std::string& name) {
    const fs::path made = root / (std::to_string(++next_directory) + "-" + name);
    fs::create_directories(made);
    return made;
}

void Context::settle() const {
    if (!settings.quick) sync_filesystem(root);
}

fs::path Context::filled_database(const std::string& name, long count) {
    const auto found = filled.find(name);
    if (found != filled.end()) return found->second;
    note(name + ": filling " + format_count(static_cast<double>(count)) +
         " checkpoints through the library (save_checkpoint, Durability::Normal)");
    const fs::path dir = fresh(name);
    const auto started = Clock::now();
    Clock::time_point saved;
    {
        CheckpointManager filler(dir, options(Durability::Normal));
        StageName stage;
        for (long i = 0; i < count; ++i) filler.save_checkpoint(stage("stage_", i));
        saved = Clock::now();
    }
    const double fill_s = std::chrono::duration<double>(saved - started).count();
    note(name + ": filled in " + format_duration(fill_s) + " (" +
         format_rate(static_cast<double>(count) / fill_s, "saves/s") + "); closing the run took " +
         format_duration(seconds_since(saved)));
    settle();
    filled[name] = dir;
    return dir;
}

void note(const std::string& text) {
    static const auto started = Clock::now();
    std::fprintf(stderr, "[checkpoint_bench %6.1f s] %s\n", seconds_since(started), text.c_str());
}

checkpoint::Options options(Durability durability) {
    checkpoint::Options result;
    result.durability = durability;
    return result;
}

std::string stage_name(long i) {
    StageName name;
    return std::string(name("stage_", i));
}

fs::path make_database(const fs::path& directory) {
    CheckpointManager creator(directory, options(Durability::Full));
    return creator.database_path();
}

std::int64_t query_int(const fs::path& database, const std::string& sql) {
    RawDatabase raw(database, true, busy_timeout_ms);
    return raw.query_int(sql);
}

void expect_count(const std::string& what, std::int64_t got, std::int64_t expected) {
    if (got != expected) {
        throw Failure(what + ": expected " + std::to_string(expected) + ", found " +
                      std::to_string(got) + " — data lost or wrong");
    }
}

std::size_t count_files(const fs::path& directory) {
    std::size_t count = 0;
    for (const auto& entry : fs::directory_iterator(directory)) {
        (void)entry;
        ++count;
    }
    return count;
}

std::string per_op_and_rate(double seconds, const char* unit) {
    return format_duration(seconds) + " (" + format_rate(1 / seconds, unit) + ")";
}

std::string size_label(long bytes) {
    return bytes >= (1 << 20) ? std::to_string(bytes >> 20) + " MiB"
                              : std::to_string(bytes >> 10) + " KiB";
}

std::string at_most(double ratio) {
    return "≤ " + format_ratio(ratio);
}

void fill_time_ratio(Row& row, const Samples& ours, const Samples& baseline, const char* unit,
                     std::optional<double> goal_max) {
    row.ours = per_op_and_rate(median(ours), unit);
    row.baseline = per_op_and_rate(median(baseline), unit);
    const double ratio = paired_ratio(ours, baseline);
    row.ratio = format_ratio(ratio);
    if (goal_max) {
        row.met = ratio <= *goal_max;
        row.goal = at_most(*goal_max);
    }
}

void fill_speedup(Row& row, const Samples& ours, const Samples& baseline, const char* unit,
                  double min_speedup) {
    row.ours = unit ? per_op_and_rate(median(ours), unit) : format_duration(median(ours));
    row.baseline =
        unit ? per_op_and_rate(median(baseline), unit) : format_duration(median(baseline));
    const double speedup = paired_ratio(baseline, ours);
    row.ratio = format_ratio(speedup) + " faster";
    row.goal = "≥ " + format_count(min_speedup) + "× faster";
    row.met = speedup >= min_speedup;
}

}  // namespace bench
