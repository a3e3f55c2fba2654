// example_pipeline — the original Python design's three stages, made resumable by checkpoint.
//
//   data_ingestion      writes <dir>/data/raw.csv: 1000 noisy samples of y = 2.5 x + 1,
//                       a few of them corrupted (unparseable or wildly off)
//   data_preprocessing  reads raw.csv, drops bad rows and outliers, standardizes x,
//                       writes clean.csv
//   model_training      reads clean.csv, fits a least-squares line, writes model.txt
//
// Each stage writes its output file atomically *before* its checkpoint is saved, and reads
// the previous stage's file: a resumed run skips the completed stages and continues from
// their files. Try it:
//
//   example_pipeline --crash-after data_preprocessing   # dies like a kill -9 (exit 3)
//   example_pipeline                                    # runs model_training only
//   sqlite3 checkpoints/checkpoints.db 'SELECT * FROM history'
#include <checkpoint/checkpoint_manager.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

struct Point {
    double x;
    double y;
};

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Replaces `path` with `text` atomically: write a temporary file, fsync it, rename it over
// `path`, fsync the directory. After a crash, `path` is either absent or complete.
void write_atomically(const fs::path& path, const std::string& text) {
    const fs::path temp = path.string() + ".tmp";
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_errno("cannot create " + temp.string());
    for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            throw_errno("cannot write " + temp.string());
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        ::close(fd);
        throw_errno("cannot fsync " + temp.string());
    }
    if (::close(fd) != 0) throw_errno("cannot close " + temp.string());
    if (std::rename(temp.c_str(), path.c_str()) != 0) throw_errno("cannot rename " + temp.string());
    const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) throw_errno("cannot open " + path.parent_path().string());
    const int synced = ::fsync(dir);
    ::close(dir);
    if (synced != 0) throw_errno("cannot fsync " + path.parent_path().string());
}

// The lines of `path`. A missing file is an error: the stage that writes it was
// checkpointed, so its output should be there.
std::vector<std::string> read_lines(const fs::path& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot read " + path.string() +
                                 ": it is missing; run with --reset to start over");
    }
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    if (lines.empty()) throw std::runtime_error(path.string() + " is empty");
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

// ---- The stages ----

void data_ingestion(const fs::path& data) {
    std::uint64_t state = 42;  // a fixed-seed generator: every run writes the same file
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
    write_atomically(data / "raw.csv", csv.str());
    std::cout << "data_ingestion: wrote 1000 samples of y = 2.5 x + 1 + noise (" << corrupted
              << " corrupted) to " << (data / "raw.csv").string() << std::endl;
}

void data_preprocessing(const fs::path& data) {
    const std::vector<std::string> rows = read_lines(data / "raw.csv");  // rows[0]: "x,y"
    std::vector<Point> points;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        Point point;
        if (parse_point(rows[i], point)) points.push_back(point);
    }
    const std::size_t parsed = points.size();
    // Outliers: y further than 5 median absolute deviations from the median of y.
    std::vector<double> ys;
    for (const Point& p : points) ys.push_back(p.y);
    const double center = median(ys);
    for (double& y : ys) y = std::abs(y - center);
    const double mad = median(ys);
    points.erase(std::remove_if(points.begin(), points.end(),
                                [&](const Point& p) { return std::abs(p.y - center) > 5 * mad; }),
                 points.end());
    if (points.size() < 2) throw std::runtime_error("too few clean rows in raw.csv");
    // Standardize x (mean 0, standard deviation 1); keep the scale to undo it later.
    double mean = 0, variance = 0;
    for (const Point& p : points) mean += p.x / points.size();
    for (const Point& p : points) variance += (p.x - mean) * (p.x - mean) / points.size();
    const double sd = std::sqrt(variance);
    std::ostringstream csv;
    csv.precision(10);
    csv << "# x = z * " << sd << " + " << mean << "\n";
    for (const Point& p : points) csv << (p.x - mean) / sd << "," << p.y << "\n";
    write_atomically(data / "clean.csv", csv.str());
    std::cout << "data_preprocessing: kept " << points.size() << " of " << rows.size() - 1
              << " rows (" << rows.size() - 1 - parsed << " unparseable, " << parsed - points.size()
              << " outliers), standardized x into " << (data / "clean.csv").string() << std::endl;
}

void model_training(const fs::path& data) {
    const std::vector<std::string> rows = read_lines(data / "clean.csv");
    double sd = 0, mean = 0;
    if (std::sscanf(rows[0].c_str(), "# x = z * %lf + %lf", &sd, &mean) != 2 || sd <= 0)
        throw std::runtime_error("clean.csv has no valid header; run with --reset");
    // Least squares for y = a z + b; z is centered, so a = Σzy / Σz² and b = mean(y).
    double szz = 0, szy = 0, sy = 0;
    const std::size_t n = rows.size() - 1;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        Point p;
        if (!parse_point(rows[i], p)) throw std::runtime_error("bad row in clean.csv: " + rows[i]);
        szz += p.x * p.x;
        szy += p.x * p.y;
        sy += p.y;
    }
    const double slope = szy / szz / sd;  // back to the units of x
    const double intercept = sy / n - slope * mean;
    std::ostringstream model;
    model << "slope " << slope << "\nintercept " << intercept << "\nrows " << n << "\n";
    write_atomically(data / "model.txt", model.str());
    std::cout << "model_training: fitted y = " << slope << " x + " << intercept << " on " << n
              << " rows, wrote " << (data / "model.txt").string() << std::endl;
}

// ---- Command line ----

const char* const usage =
    "usage: example_pipeline [--dir DIR] [--crash-after STAGE] [--reset] [--help]\n"
    "  --dir DIR            where checkpoints.db and data/ live (default: checkpoints)\n"
    "  --crash-after STAGE  exit abruptly (code 3, like a kill) once STAGE has run and\n"
    "                       its checkpoint is saved; STAGE is data_ingestion,\n"
    "                       data_preprocessing or model_training\n"
    "  --reset              clear every checkpoint first, so all stages run again\n";

struct Args {
    fs::path dir = "checkpoints";
    std::string crash_after;
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
        } else if (arg == "--reset") {
            args.reset = true;
        } else {
            bad_usage("unknown argument '" + arg + "'");
        }
    }
    return args;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> names = {"data_ingestion", "data_preprocessing",
                                            "model_training"};
    const Args args = parse_args(argc, argv, names);
    const fs::path data = args.dir / "data";
    const std::vector<std::function<void()>> stages = {[&] { data_ingestion(data); },
                                                       [&] { data_preprocessing(data); },
                                                       [&] { model_training(data); }};
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
        fs::create_directories(data);
        for (std::size_t i = 0; i < names.size(); ++i) {
            // Runs the stage and saves its checkpoint, unless it is already completed.
            if (!manager.run_stage(names[i], stages[i])) {
                std::cout << "skipping " << names[i] << " (completed)" << std::endl;
            } else if (names[i] == args.crash_after) {
                std::cout << "crashing after " << names[i] << " (simulated kill)" << std::endl;
                std::_Exit(3);  // no destructors: the run is left open, as after a kill -9
            }
        }
        std::cout << "pipeline complete" << std::endl;
    } catch (const std::exception& e) {  // checkpoint::Error, or a stage failed (recorded)
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
