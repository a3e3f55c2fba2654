// example_pipeline — the original Python design's three stages, made resumable by checkpoint.
//
//   data_ingestion      produces raw.csv: 1000 noisy samples of y = 2.5 x + 1, a few of
//                       them corrupted (unparseable or wildly off)
//   data_preprocessing  drops bad rows and outliers (further than --outlier-mads median
//                       absolute deviations from the median), standardizes x: clean.csv
//   model_training      fits a least-squares line to clean.csv: the model
//
// Each stage's output is stored with its checkpoint (SaveOptions::output) and the next
// stage loads it back with load_output(): a resumed run skips the completed stages and
// continues from their stored outputs. Each save also names its input stage and carries a
// fingerprint of its code version and configuration, so a changed --outlier-mads reruns
// data_preprocessing and, because its output changed, model_training — and nothing else.
// Try it:
//
//   example_pipeline --crash-after data_preprocessing   # dies like a kill -9 (exit 3)
//   example_pipeline                                    # runs model_training only
//   example_pipeline --outlier-mads 3                   # reruns the two stale stages
//   sqlite3 checkpoints/checkpoints.db 'SELECT * FROM history'
#include <checkpoint/checkpoint_manager.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Point {
    double x;
    double y;
};

// The lines of a stage's stored output.
std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Parses "x,y" into two finite numbers; false for anything else.
bool parse_point(const std::string& row, Point& point) {
    std::istringstream in(row);
    char comma = 0;
    return in >> point.x >> comma >> point.y && comma == ',' && (in >> std::ws).eof() &&
           std::isfinite(point.x) && std::isfinite(point.y);
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// What a stage produced: its output (stored with the checkpoint) and metadata about it.
struct Result {
    std::string output;
    nlohmann::json metadata = nlohmann::json::object();
};

// ---- The stages: each takes its input stage's output (or nothing) ----

Result data_ingestion(const std::string&) {
    std::uint64_t state = 42;  // a fixed-seed generator: every run produces the same data
    auto uniform = [&state] {  // in [0, 1)
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(state >> 11) / 9007199254740992.0;
    };
    std::ostringstream csv;
    csv << "x,y\n";
    int corrupted = 0;
    for (int i = 0; i < 1000; ++i) {
        const double x = 10 * uniform();
        const double noise = uniform() + uniform() + uniform() - 1.5;  // roughly normal
        if (i % 97 == 13) {
            csv << x << ",n/a\n";  // a sensor that failed
            ++corrupted;
        } else if (i % 89 == 7) {
            csv << x << "," << 1000 * (uniform() + 1) << "\n";  // a glitch
            ++corrupted;
        } else {
            csv << x << "," << 2.5 * x + 1 + noise << "\n";
        }
    }
    std::cout << "data_ingestion: produced 1000 samples of y = 2.5 x + 1 + noise (" << corrupted
              << " corrupted)" << std::endl;
    return {csv.str(), {{"samples", 1000}, {"corrupted", corrupted}}};
}

Result data_preprocessing(const std::string& raw, double outlier_mads) {
    const std::vector<std::string> rows = lines_of(raw);  // rows[0]: "x,y"
    std::vector<Point> points;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        Point point;
        if (parse_point(rows[i], point)) points.push_back(point);
    }
    const std::size_t parsed = points.size();
    // Outliers: y further than `outlier_mads` median absolute deviations from the median.
    std::vector<double> ys;
    for (const Point& p : points) ys.push_back(p.y);
    const double center = median(ys);
    for (double& y : ys) y = std::abs(y - center);
    const double mad = median(ys);
    points.erase(
        std::remove_if(points.begin(), points.end(),
                       [&](const Point& p) { return std::abs(p.y - center) > outlier_mads * mad; }),
        points.end());
    if (points.size() < 2) throw std::runtime_error("too few clean rows in the raw data");
    // Standardize x (mean 0, standard deviation 1); keep the scale to undo it later.
    double mean = 0, variance = 0;
    for (const Point& p : points) mean += p.x / points.size();
    for (const Point& p : points) variance += (p.x - mean) * (p.x - mean) / points.size();
    const double sd = std::sqrt(variance);
    std::ostringstream csv;
    csv.precision(10);
    csv << "# x = z * " << sd << " + " << mean << "\n";
    for (const Point& p : points) csv << (p.x - mean) / sd << "," << p.y << "\n";
    const std::size_t outliers = parsed - points.size();
    std::cout << "data_preprocessing: kept " << points.size() << " of " << rows.size() - 1
              << " rows (" << rows.size() - 1 - parsed << " unparseable, " << outliers
              << " outliers beyond " << outlier_mads << " MADs), standardized x" << std::endl;
    return {csv.str(),
            {{"kept", points.size()}, {"outliers", outliers}, {"outlier_mads", outlier_mads}}};
}

Result model_training(const std::string& clean) {
    const std::vector<std::string> rows = lines_of(clean);
    double sd = 0, mean = 0;
    if (rows.empty() || std::sscanf(rows[0].c_str(), "# x = z * %lf + %lf", &sd, &mean) != 2 ||
        sd <= 0)
        throw std::runtime_error("the clean data has no valid header; run with --reset");
    // Least squares for y = a z + b; z is centered, so a = Σzy / Σz² and b = mean(y).
    double szz = 0, szy = 0, sy = 0;
    const std::size_t n = rows.size() - 1;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        Point p;
        if (!parse_point(rows[i], p))
            throw std::runtime_error("bad row in the clean data: " + rows[i]);
        szz += p.x * p.x;
        szy += p.x * p.y;
        sy += p.y;
    }
    const double slope = szy / szz / sd;  // back to the units of x
    const double intercept = sy / n - slope * mean;
    std::ostringstream model;
    model << "slope " << slope << "\nintercept " << intercept << "\nrows " << n << "\n";
    std::cout << "model_training: fitted y = " << slope << " x + " << intercept << " on " << n
              << " rows" << std::endl;
    return {model.str(), {{"slope", slope}, {"intercept", intercept}, {"rows", n}}};
}

// ---- Command line ----

const char* const usage =
    "usage: example_pipeline [--dir DIR] [--crash-after STAGE] [--outlier-mads N] [--reset]\n"
    "                        [--help]\n"
    "  --dir DIR            where checkpoints.db lives (default: checkpoints)\n"
    "  --crash-after STAGE  exit abruptly (code 3, like a kill) once STAGE has run and\n"
    "                       its checkpoint is saved; STAGE is data_ingestion,\n"
    "                       data_preprocessing or model_training\n"
    "  --outlier-mads N     data_preprocessing drops rows further than N median absolute\n"
    "                       deviations from the median (default: 5); changing it reruns\n"
    "                       data_preprocessing and model_training\n"
    "  --reset              clear every checkpoint first, so all stages run again\n";

struct Args {
    fs::path dir = "checkpoints";
    std::string crash_after;
    double outlier_mads = 5;
    bool reset = false;
};

[[noreturn]] void bad_usage(const std::string& message) {
    std::cerr << "example_pipeline: " << message << "\n" << usage;
    std::exit(2);
}

Args parse_args(int argc, char** argv, const std::vector<std::string>& stages) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad_usage(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h") {
            std::cout << usage;
            std::exit(0);
        } else if (arg == "--dir") {
            args.dir = value();
            if (args.dir.empty()) bad_usage("--dir needs a non-empty directory");
        } else if (arg == "--crash-after") {
            args.crash_after = value();
            if (std::find(stages.begin(), stages.end(), args.crash_after) == stages.end())
                bad_usage("--crash-after: unknown stage '" + args.crash_after + "'");
        } else if (arg == "--outlier-mads") {
            const std::string text = value();
            std::size_t used = 0;
            try {
                args.outlier_mads = std::stod(text, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != text.size() || !(args.outlier_mads > 0) ||
                !std::isfinite(args.outlier_mads))
                bad_usage("--outlier-mads: '" + text + "' is not a positive number");
        } else if (arg == "--reset") {
            args.reset = true;
        } else {
            bad_usage("unknown argument '" + arg + "'");
        }
    }
    return args;
}

// A stage of this pipeline: what it consumes, what its result depends on, how it runs.
struct Stage {
    std::string name;
    std::string input;        // the stage whose output it consumes ("" for none)
    std::string fingerprint;  // its code version and configuration
    std::function<Result(const std::string& input)> run;
};

// Why `stage` must run (it is not completed and up to date with this fingerprint).
std::string why_run(const checkpoint::CheckpointManager& manager, const Stage& stage) {
    const auto latest = manager.latest(stage.name);
    if (!latest) return "never ran";
    if (latest->status != checkpoint::Status::Completed)
        return std::string("it is ") + std::string(checkpoint::to_string(latest->status));
    if (latest->stale) return latest->stale_reason;
    return "its configuration changed";
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> names = {"data_ingestion", "data_preprocessing",
                                            "model_training"};
    const Args args = parse_args(argc, argv, names);
    std::ostringstream mads;
    mads << args.outlier_mads;
    // The fingerprint: a version of the stage's code, plus the configuration it reads.
    const std::vector<Stage> stages = {
        {names[0], "", checkpoint::Fingerprint().add("data_ingestion v2").add("seed=42").str(),
         data_ingestion},
        {names[1], names[0],
         checkpoint::Fingerprint()
             .add("data_preprocessing v2")
             .add("outlier_mads=" + mads.str())
             .str(),
         [&args](const std::string& raw) { return data_preprocessing(raw, args.outlier_mads); }},
        {names[2], names[1], checkpoint::Fingerprint().add("model_training v2").str(),
         model_training},
    };
    try {
        // The library logs through spdlog; this example prints its own lines, so it keeps
        // only the library's warnings and errors.
        checkpoint::Options options;
        options.logger = spdlog::stderr_color_mt("pipeline");
        options.logger->set_level(spdlog::level::warn);
        checkpoint::CheckpointManager manager(args.dir, options);  // <dir>/checkpoints.db
        if (args.reset) {
            manager.clear_checkpoints();
            std::cout << "reset: cleared every checkpoint" << std::endl;
        }
        for (const Stage& stage : stages) {
            if (manager.has_checkpoint(stage.name, stage.fingerprint)) {
                std::cout << "skipping " << stage.name << " (completed, up to date)" << std::endl;
                continue;
            }
            std::cout << "running " << stage.name << ": " << why_run(manager, stage) << std::endl;
            manager.begin_stage(stage.name);
            checkpoint::SaveOptions save;
            try {
                // The input comes from the library: the output saved with the upstream
                // stage's checkpoint, by this run or by an earlier one.
                const std::string input =
                    stage.input.empty() ? std::string() : manager.load_output(stage.input).value();
                Result result = stage.run(input);
                save.output = std::move(result.output);
                save.metadata = std::move(result.metadata);
            } catch (const std::exception& e) {
                manager.fail_stage(stage.name, e.what());
                throw;
            }
            save.fingerprint = stage.fingerprint;
            if (!stage.input.empty()) save.inputs = {stage.input};
            manager.save_checkpoint(stage.name, save);
            if (stage.name == args.crash_after) {
                std::cout << "crashing after " << stage.name << " (simulated kill)" << std::endl;
                std::_Exit(3);  // no destructors: the run is left open, as after a kill -9
            }
        }
        const auto model = manager.latest(names[2]);
        std::cout << "pipeline complete: model_training version " << model->version << ", "
                  << lines_of(manager.load_output(names[2]).value()).at(0) << std::endl;
    } catch (const std::exception& e) {  // checkpoint::Error, or a stage failed (recorded)
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
