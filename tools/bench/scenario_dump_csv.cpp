// checkpoint_bench — `checkpointctl dump --format csv` against the sqlite3 shell's CSV output
// (`sqlite3 -csv -header`) of the same table, 200,000 checkpoints.
#include "scenario.hpp"

#include <cstdlib>

#include <fcntl.h>
#include <unistd.h>

namespace bench {

namespace {

// The checkpoints table's columns that dump's 15 columns come from (output_location and
// inputs are derived from output_in_database and checkpoint_inputs; the shell prints the
// stored flag and count), in history order.
constexpr const char* sql_csv_columns =
    "SELECT id, pipeline, stage, status, version, timestamp, run_id, duration_ms, message, "
    "fingerprint, metadata, output_size, output_sha256, output_in_database, input_count "
    "FROM checkpoints ORDER BY id";

// `program` as a path: itself when it names a directory, else the first executable of that
// name in $PATH (the children are started with execv, which does not search).
std::string in_path(const std::string& program) {
    if (program.find('/') != std::string::npos) return program;
    const char* path = std::getenv("PATH");
    std::string directories = path ? path : "/usr/bin:/bin";
    for (std::size_t start = 0; start <= directories.size();) {
        std::size_t end = directories.find(':', start);
        if (end == std::string::npos) end = directories.size();
        const fs::path candidate = fs::path(directories.substr(start, end - start)) / program;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
        start = end + 1;
    }
    throw Failure(program +
                  " not found in $PATH: install it (apt-get install sqlite3), or give "
                  "--sqlite3 PATH");
}

void run_dump_csv(Context& ctx) {
    const Sizes& z = ctx.sizes;
    const std::string& tool = ctx.settings.checkpointctl;
    if (tool.empty() || ::access(tool.c_str(), X_OK) != 0)
        throw Failure("checkpointctl not found at '" + tool + "': give --checkpointctl PATH");
    const fs::path dir = ctx.filled_database("csv", z.csv_rows);
    const fs::path db = dir / "checkpoints.db";
    const std::int64_t rows = query_int(db, "SELECT count(*) FROM checkpoints");
    const std::string count = format_count(static_cast<double>(rows));
    note("dump-csv: checkpointctl dump --format csv against sqlite3 -csv, " + count + " rows");
    const std::vector<std::string> ours_argv = {tool,  "dump",  "--format",
                                                "csv", "--dir", dir.string()};
    const std::vector<std::string> shell_argv = {in_path(ctx.settings.sqlite3_shell),
                                                 "-csv",
                                                 "-header",
                                                 "-readonly",
                                                 db.string(),
                                                 sql_csv_columns};
    const Fd null_in = open_dev_null(O_RDONLY);
    const Fd null_out = open_dev_null(O_WRONLY);
    const double deadline = 600;

    // Untimed, once each, through a pipe: a header and every row must come out (no field
    // holds a line break here), and the caches are warm afterwards.
    auto checked = [&](const std::vector<std::string>& argv, const char* who) {
        std::int64_t lines = 0;
        const ChildOutcome outcome =
            run_child_with_deadline(argv, null_in.get(), -1, deadline, &lines);
        if (outcome.exit_code != 0)
            throw Failure(std::string(who) + " ended with " + describe(outcome));
        expect_count(std::string(who) + ": CSV lines (header + rows)", lines, rows + 1);
    };
    checked(ours_argv, "checkpointctl dump --format csv");
    checked(shell_argv, "sqlite3 -csv");

    auto timed = [&](const std::vector<std::string>& argv) {
        return [&, argv] {
            const ChildOutcome outcome =
                run_child_with_deadline(argv, null_in.get(), null_out.get(), deadline);
            if (outcome.exit_code != 0) throw Failure(argv[0] + " ended with " + describe(outcome));
            return outcome.wall_seconds;
        };
    };
    const auto samples = interleave(z.csv_repetitions, {timed(ours_argv), timed(shell_argv)});
    Row& row = ctx.row("dump_csv");
    row.operation = "checkpointctl dump --format csv, " + count +
                    " rows to /dev/null vs sqlite3 -csv of the same table";
    row.ours = format_duration(median(samples[0])) + " (" +
               format_rate(static_cast<double>(rows) / median(samples[0]), "rows/s") + ")";
    row.baseline = format_duration(median(samples[1])) + " (" +
                   format_rate(static_cast<double>(rows) / median(samples[1]), "rows/s") + ")";
    const double ratio = paired_ratio(samples[0], samples[1]);
    row.ratio = format_ratio(ratio);
    row.goal = at_most(1.0);
    row.met = ratio <= 1.0;
}

const bool registered = register_scenario(
    {"dump-csv",
     85,
     {{"dump_csv", "checkpointctl dump --format csv vs sqlite3 -csv of the same table"}},
     run_dump_csv});

}  // namespace

}  // namespace bench
