// checkpointctl — audit and operate a checkpoint database without writing code.
//
// Exit codes: 0 success; 1 error; 2 usage; 3 verification found problems; 4 database (or
// --pipeline, or clear's --stage) not found; 5 not a checkpoint database, damaged or
// unsafe; 6 schema version mismatch; 7 busy; 8 database server unavailable; 9 serve cannot
// listen on the address; 10 the database needs its key (--key-file); 11 wrong key.
#include "command_line.hpp"
#include "crypto_commands.hpp"
#include "dashboard_server.hpp"
#include "database.hpp"
#include "html_report.hpp"
#include "legacy_import.hpp"
#include "record_fields.hpp"
#include "record_writer.hpp"
#include "text_width.hpp"
#include "usage.hpp"

#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/copy.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#ifndef CHECKPOINT_VERSION
#define CHECKPOINT_VERSION "unknown"
#endif

namespace {

using checkpoint::CheckpointManager;
using checkpointctl::Field;
using checkpointctl::Format;
using checkpointctl::JsonValue;
using checkpointctl::RecordWriter;
using namespace checkpointctl;  // Settings, the exit codes

Format resolve_format(const std::string& name, Format when_terminal, Format otherwise) {
    if (name.empty()) return isatty(STDOUT_FILENO) ? when_terminal : otherwise;
    if (name == "table") return Format::Table;
    if (name == "csv") return Format::Csv;
    if (name == "json") return Format::Json;
    return Format::Ndjson;
}

checkpoint::HistoryFilter history_filter(const Settings& settings) {
    checkpoint::HistoryFilter filter;
    if (!settings.stage.empty()) filter.stage = settings.stage;
    if (!settings.run.empty()) filter.run_id = settings.run;
    if (!settings.status.empty()) filter.status = checkpoint::status_from_string(settings.status);
    if (!settings.since.empty()) filter.since = settings.since;
    if (!settings.until.empty()) filter.until = settings.until;
    filter.limit = settings.limit;
    return filter;
}

// The columns a command prints (--columns, else every one; a table without --columns:
// `table_default`), and where each comes from in a full record.
class Projection {
public:
    Projection(const std::vector<std::string>& all, const Settings& settings, Format format,
               const std::vector<std::string>& table_default = {}) {
        const auto& wanted = !settings.columns.empty()                           ? settings.columns
                             : format == Format::Table && !table_default.empty() ? table_default
                                                                                 : all;
        for (const auto& name : wanted) {
            names_.push_back(name);
            from_.push_back(
                static_cast<std::size_t>(std::find(all.begin(), all.end(), name) - all.begin()));
        }
        identity_ = names_ == all;
    }
    const std::vector<std::string>& names() const { return names_; }
    std::vector<Field> operator()(std::vector<Field> record) const {
        if (identity_) return record;  // every column, in order: nothing to move
        std::vector<Field> projected;
        projected.reserve(from_.size());
        for (const std::size_t i : from_) projected.push_back(std::move(record.at(i)));
        return projected;
    }

private:
    std::vector<std::string> names_;
    std::vector<std::size_t> from_;
    bool identity_ = false;
};

// history's and dump's table without --columns: what fits a 120-column terminal.
const std::vector<std::string> history_table_columns = {"id",      "stage",     "status",
                                                        "version", "timestamp", "message"};
const std::vector<std::string> dump_table_columns = {"id",     "pipeline", "stage",
                                                     "status", "version",  "timestamp"};

// 'a', 'b', 'c' (at most 20 names, then "and N more"); names are shown escaped, as in a table.
template <typename Names>
std::string quoted_list(const Names& names) {
    std::string text;
    std::size_t shown = 0;
    for (const auto& name : names) {
        if (shown == 20) {
            text += " and " + std::to_string(names.size() - shown) + " more";
            break;
        }
        text += (text.empty() ? "'" : ", '") + escaped_text(name) + "'";
        ++shown;
    }
    return text;
}

// Refuses (NotFound, exit 4) a --pipeline that never wrote to the database: a typo there
// must not read as "no stage has run".
void require_pipeline(const CheckpointManager& manager, const Settings& settings) {
    const auto pipelines = manager.pipelines();
    if (std::find(pipelines.begin(), pipelines.end(), settings.pipeline) != pipelines.end()) return;
    throw checkpoint::Error(checkpoint::ErrorCode::NotFound,
                            "pipeline '" + escaped_text(settings.pipeline) + "' has no rows in " +
                                manager.location() +
                                (pipelines.empty() ? std::string(" (it holds no pipeline)")
                                                   : "; its pipelines: " + quoted_list(pipelines) +
                                                         " (see `checkpointctl pipelines`)"));
}

int run_status(const Settings& settings) {
    const auto manager = open_database(settings, true);
    require_pipeline(manager, settings);
    const Format format = resolve_format(settings.format, Format::Table, Format::Csv);
    const Projection project(status_columns, settings, format);
    RecordWriter out(std::cout, format, project.names());
    // A completed stage that is not up to date (has_checkpoint false) reads "stale", with
    // the library's reason. A stage under a live lease (claim_stage) reads "running", with
    // the holder's run and, as the reason, its host, pid, token and expiry.
    std::map<std::string, checkpoint::StageLease> claims;
    for (auto& lease : manager.leases())
        if (lease.live) claims.emplace(lease.stage, std::move(lease));
    const auto write = [&](const checkpoint::Checkpoint& state) {
        std::vector<Field> record = status_record(state);
        const auto claim = claims.find(state.stage);
        if (claim != claims.end()) {
            record = lease_status_record(claim->second, state.version, state.timestamp);
            claims.erase(claim);
        }
        out.write(project(std::move(record)));
    };
    if (settings.stages.empty()) {
        for (const auto& state : manager.stages()) write(state);
        // Claimed before their first row.
        for (const auto& [stage, lease] : claims)
            out.write(lease_status_record(lease, std::int64_t{0}, lease.claimed_at));
    } else {
        for (const auto& stage : settings.stages) {
            if (const auto state = manager.latest(stage)) {
                write(*state);
            } else if (const auto claim = claims.find(stage); claim != claims.end()) {
                out.write(project(
                    lease_status_record(claim->second, std::int64_t{0}, claim->second.claimed_at)));
            } else {
                out.write(project({stage, std::string("not run"), {}, {}, {}, {}}));
            }
        }
    }
    out.finish();
    return exit_ok;
}

int run_history(const Settings& settings, bool dump) {
    const auto manager = open_database(settings, true);
    // dump: every pipeline, or only the one --pipeline names.
    if (!dump || settings.pipeline_given) require_pipeline(manager, settings);
    checkpoint::HistoryFilter filter =
        dump ? checkpoint::HistoryFilter{} : history_filter(settings);
    filter.all_pipelines = dump && !settings.pipeline_given;
    const Format format = dump ? resolve_format(settings.format, Format::Ndjson, Format::Ndjson)
                               : resolve_format(settings.format, Format::Table, Format::Csv);
    const Projection project(checkpoint_columns, settings, format,
                             dump ? dump_table_columns : history_table_columns);
    RecordWriter out(std::cout, format, project.names());
    if (settings.last) {
        // The newest N rows (one page, newest first), printed oldest first.
        filter.newest_first = true;
        filter.limit = settings.last;
        const auto rows = manager.history(filter);
        for (auto row = rows.rbegin(); row != rows.rend(); ++row)
            out.write(project(checkpoint_record(*row)));
    } else {
        manager.for_each_history(filter, [&](const checkpoint::Checkpoint& row) {
            out.write(project(checkpoint_record(row)));
        });
    }
    out.finish();
    return exit_ok;
}

int run_runs(const Settings& settings) {
    const auto manager = open_database(settings, true);
    require_pipeline(manager, settings);
    const Format format = resolve_format(settings.format, Format::Table, Format::Csv);
    const Projection project(run_columns, settings, format);
    RecordWriter out(std::cout, format, project.names());
    for (const auto& run : manager.runs()) out.write(project(run_record(run)));
    out.finish();
    return exit_ok;
}

// One line per pipeline of the database: its stages, how many are completed now, and its
// last activity (the newest change of a stage, start or end of a run).
int run_pipelines(const Settings& settings) {
    const auto manager = open_database(settings, true);
    const Format format = resolve_format(settings.format, Format::Table, Format::Csv);
    const Projection project(pipeline_columns, settings, format);
    RecordWriter out(std::cout, format, project.names());
    for (const auto& pipeline : manager.pipelines()) {
        const auto reader = open_pipeline(settings, pipeline);
        std::int64_t stages = 0, completed = 0;
        std::string last;
        for (const auto& state : reader.stages()) {
            ++stages;
            if (state.status == checkpoint::Status::Completed && !state.stale) ++completed;
            last = std::max(last, state.timestamp);
        }
        std::int64_t runs = 0;
        for (const auto& run : reader.runs()) {
            ++runs;
            last = std::max({last, run.started_at, run.ended_at.value_or(std::string())});
        }
        out.write(project({pipeline, stages, completed, runs, text_or_null(last)}));
    }
    out.finish();
    return exit_ok;
}

int run_backup(const Settings& settings) {
    if (!settings.url.empty()) {
        std::cerr << "checkpointctl: backup copies SQLite databases; back up a PostgreSQL "
                     "database with pg_dump (or `checkpointctl copy --from URL --to DIR` for "
                     "an SQLite copy of its history)\n";
        return exit_usage;
    }
    const auto manager = open_database(settings, true);
    manager.backup(settings.backup_to);
    const std::filesystem::path copy =
        std::filesystem::path(settings.backup_to) / manager.database_path().filename();
    std::cout << "backed up " << manager.location() << " to " << copy.string()
              << " (check it with: checkpointctl verify --db " << copy.string() << ")\n";
    return exit_ok;
}

// Asks on the terminal whether to `what`; `action` names it in the refusal (default: what).
bool confirmed(const Settings& settings, const std::string& what, const std::string& action = {}) {
    if (settings.yes) return true;
    if (!isatty(STDIN_FILENO)) {
        std::cerr << "checkpointctl: refusing to " << (action.empty() ? what : action)
                  << " without confirmation: stdin is not a terminal; pass --yes\n";
        return false;
    }
    std::cerr << "This will " << what << ". Type 'yes' (or 'y') to continue: " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    const auto begin = answer.find_first_not_of(" \t\r");
    answer = begin == std::string::npos ? "" : answer.substr(begin);
    answer.erase(answer.find_last_not_of(" \t\r") + 1);
    for (char& c : answer) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return answer == "y" || answer == "yes";
}

// The stages downstream of `stages` now, as the library defines them: those whose current
// checkpoint (completed, not cleared since) names one of them, or one of those, as an
// input. Only for the confirmation prompt: the clear itself reports what it cleared.
std::set<std::string> downstream_of(const CheckpointManager& manager,
                                    const std::vector<std::string>& stages) {
    std::set<std::string> reached(stages.begin(), stages.end());
    const auto states = manager.stages();
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& state : states) {
            if (state.status != checkpoint::Status::Completed || reached.count(state.stage))
                continue;
            for (const auto& input : state.inputs) {
                if (reached.count(input.stage)) {
                    reached.insert(state.stage);
                    grew = true;
                    break;
                }
            }
        }
    }
    for (const auto& stage : stages) reached.erase(stage);
    return reached;
}

int run_clear(const Settings& settings) {
    auto manager = open_database(settings, false);
    const std::string where = "of pipeline '" + settings.pipeline + "' in " + manager.location();
    // A stage never recorded is most likely a typo: refused unless --force.
    if (!settings.force) {
        std::vector<std::string> unknown;
        for (const auto& stage : settings.clear_stages)
            if (!manager.latest(stage)) unknown.push_back(stage);
        if (!unknown.empty()) {
            std::set<std::string> known;
            for (const auto& state : manager.stages()) known.insert(state.stage);
            std::string message = "checkpointctl: nothing was cleared: stage(s) " +
                                  quoted_list(unknown) + " never recorded " + where;
            if (const auto match = closest_match(unknown.front(), {known.begin(), known.end()}))
                message += " (did you mean '" + escaped_text(*match) + "'?)";
            std::cerr << message << ". Pass --force to record a clear anyway\n";
            return exit_not_found;
        }
    }
    std::string what;
    if (settings.clear_stages.empty()) {
        std::vector<std::string> stages;
        for (const auto& state : manager.stages())
            if (state.status != checkpoint::Status::Cleared) stages.push_back(state.stage);
        what = "clear every stage " + where +
               (stages.empty() ? std::string(" (none is set now)")
                               : " (now " + quoted_list(stages) + ")");
    } else if (!settings.downstream) {
        what = "clear " + quoted_list(settings.clear_stages) + " " + where;
    } else {
        const std::set<std::string> named(settings.clear_stages.begin(),
                                          settings.clear_stages.end());
        what = "clear " + quoted_list(named) + " " + where + " and every stage downstream";
        if (!settings.yes) {
            const auto downstream = downstream_of(manager, settings.clear_stages);
            what += downstream.empty() ? " (none now)" : " (now " + quoted_list(downstream) + ")";
        }
    }
    if (!confirmed(settings, what)) {
        std::cerr << "checkpointctl: nothing was cleared\n";
        return exit_error;
    }
    if (settings.clear_stages.empty()) {
        manager.clear_checkpoints();
        std::cout << "cleared every stage of pipeline '" << settings.pipeline << "'\n";
    } else if (!settings.downstream) {
        for (const auto& stage : settings.clear_stages) {
            manager.clear_checkpoint(stage);
            std::cout << "cleared stage '" << stage << "'\n";
        }
    } else {
        // Each named stage with its downstream stages in one transaction; a stage already
        // cleared here (downstream of an earlier one) is not cleared twice.
        std::set<std::string> cleared;
        for (const auto& stage : settings.clear_stages) {
            if (cleared.count(stage)) continue;
            const auto stages =
                manager.clear_checkpoint(stage, checkpoint::ClearScope::WithDownstream);
            for (std::size_t i = 0; i < stages.size(); ++i) {
                cleared.insert(stages[i]);
                std::cout << "cleared stage '" << stages[i] << "'";
                if (i > 0) std::cout << " (downstream of '" << stage << "')";
                std::cout << "\n";
            }
        }
    }
    return exit_ok;
}

// "30d", "12h", "90m", "45s": the largest unit that divides the duration.
std::string duration_text(std::chrono::seconds duration) {
    const std::int64_t seconds = duration.count();
    if (seconds != 0 && seconds % 86'400 == 0) return std::to_string(seconds / 86'400) + "d";
    if (seconds != 0 && seconds % 3'600 == 0) return std::to_string(seconds / 3'600) + "h";
    if (seconds != 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
    return std::to_string(seconds) + "s";
}

int run_prune(const Settings& settings) {
    auto manager = open_database(settings, false);
    checkpoint::PruneOptions options;
    options.older_than = settings.older_than;
    options.keep_last = settings.keep_last;
    options.orphan_grace = settings.orphan_grace;
    const std::string orphans =
        manager.outputs_directory().empty()
            ? std::string("unreferenced output files (there are none on this backend)")
            : "output files in " + manager.outputs_directory().string() +
                  " that no history row references, once older than " +
                  duration_text(options.orphan_grace);
    std::string what;
    if (!options.older_than && !options.keep_last) {
        what = "delete the " + orphans + " (no history row is deleted)";
    } else {
        what = "delete the history rows of pipeline '" + settings.pipeline + "' in " +
               manager.location();
        if (options.older_than) what += " older than " + duration_text(*options.older_than);
        if (options.older_than && options.keep_last) what += " and";
        if (options.keep_last) {
            what += " before the last " + std::to_string(*options.keep_last) +
                    " completed version(s) of each stage";
        }
        what += ", the runs left without rows, the output files only they referenced, and the " +
                orphans;
    }
    if (!confirmed(settings, what, "prune " + manager.location())) {
        std::cerr << "checkpointctl: nothing was pruned\n";
        return exit_error;
    }
    const checkpoint::PruneResult result = manager.prune(options);
    std::cout << "pruned pipeline '" << settings.pipeline << "': deleted " << result.rows_deleted
              << " row(s), " << result.runs_deleted << " run(s), " << result.files_deleted
              << " output file(s); freed " << result.bytes_freed << " byte(s)\n";
    return exit_ok;
}

int run_verify(const Settings& settings) {
    const auto manager = open_database(settings, true);
    const auto problems =
        settings.expect_head.empty() ? manager.verify() : manager.verify(settings.expect_head);
    if (settings.format == "json") {
        // A JSON list of the problems (empty when the database is sound).
        std::string json = "[";
        for (std::size_t i = 0; i < problems.size(); ++i) {
            json += i == 0 ? "\n  " : ",\n  ";
            append_json_string(json, problems[i]);
        }
        std::cout << json << (problems.empty() ? "]\n" : "\n]\n");
        if (!problems.empty()) {
            std::cerr << "checkpointctl: " << manager.location() << ": " << problems.size()
                      << " problem(s) found\n";
        }
        return problems.empty() ? exit_ok : exit_verify_failed;
    }
    for (const auto& problem : problems) std::cout << problem << "\n";
    if (!problems.empty()) {
        std::cerr << "checkpointctl: " << manager.location() << ": " << problems.size()
                  << " problem(s) found\n";
        return exit_verify_failed;
    }
    std::cout << manager.location() << ": ok (schema version " << manager.schema_version() << ")\n";
    return exit_ok;
}

int run_migrate(const Settings& settings) {
    try {
        const auto manager = open_database(settings, true);
        std::cout << manager.location() << ": already at schema version "
                  << manager.schema_version() << "\n";
        return exit_ok;
    } catch (const checkpoint::Error& e) {
        if (e.code() != checkpoint::ErrorCode::SchemaTooOld) throw;
    }
    const auto manager = open_database(settings, false);  // opening for writing migrates
    std::cout << manager.location() << ": migrated to schema version " << manager.schema_version()
              << "\n";
    return exit_ok;
}

int run_copy(const Settings& settings) {
    checkpoint::Options options;
    options.logger = tool_logger(settings.verbose);
    options.busy_timeout = std::chrono::milliseconds(settings.busy_timeout_ms);
    const checkpoint::CopyResult copied =
        checkpoint::copy_history(settings.copy_from, settings.copy_to, options);
    std::cout << "copied " << copied.runs << " runs, " << copied.rows << " history rows and "
              << copied.outputs << " outputs (" << copied.output_bytes << " bytes) from "
              << copied.from_location << " to " << copied.to_location << "\n";
    return exit_ok;
}

int run_import_legacy(const Settings& settings) {
    const auto scan = checkpointctl::scan_legacy_directory(settings.legacy_dir);
    for (const auto& problem : scan.problems)
        std::cerr << "checkpointctl: skipped " << problem.file.string() << ": " << problem.reason
                  << "\n";
    // Importing may create the database: that is its purpose.
    const Location location = locate(settings);
    CheckpointManager manager(location.directory, location.options);
    int imported = 0, already = 0, failed = static_cast<int>(scan.problems.size());
    for (const auto& legacy : scan.checkpoints) {
        // The canonical path: the same directory spelled differently is the same source.
        const std::string source =
            "imported from legacy file " + std::filesystem::weakly_canonical(legacy.file).string();
        try {
            // A file without a Timestamp line is dated by its modification time, which a copy
            // or a touch changes: imported before from the same file is enough, whatever the
            // time.
            if (!legacy.timestamp_written) {
                checkpoint::HistoryFilter filter;
                filter.stage = legacy.stage;
                filter.status = checkpoint::Status::Completed;
                bool seen = false;
                manager.for_each_history(filter, [&](const checkpoint::Checkpoint& row) {
                    seen = seen || row.message == source;
                });
                if (seen) {
                    ++already;
                    continue;
                }
            }
            if (manager.import_checkpoint(legacy.stage, legacy.timestamp, source)) {
                ++imported;
                std::cout << "imported " << legacy.stage << " (completed " << legacy.timestamp
                          << (legacy.timestamp_written ? "" : ", the file's modification time")
                          << ")"
                          << (legacy.empty_file
                                  ? ": the file is empty, which the original design counted as "
                                    "completed"
                                  : "")
                          << "\n";
            } else {
                ++already;
            }
        } catch (const checkpoint::Error& e) {
            if (e.code() != checkpoint::ErrorCode::InvalidArgument) throw;
            ++failed;
            std::cerr << "checkpointctl: skipped " << legacy.file.string() << ": " << e.what()
                      << "\n";
        }
    }
    std::cout << imported << " imported, " << already << " already imported, " << failed
              << " skipped\n";
    // A rerun that imports nothing new (everything it could import was imported before)
    // succeeds even though it skips the files it could not read: they were reported above,
    // as on the first run, which failed for them.
    const bool rerun = imported == 0 && already > 0;
    return failed == 0 || rerun ? exit_ok : exit_error;
}

void add_location_options(CLI::App& command, Settings& settings) {
    auto* dir = command.add_option("--dir", settings.dir,
                                   "Checkpoint directory holding checkpoints.db (default: "
                                   "checkpoints)");
    auto* db = command.add_option("--db", settings.db, "The database file itself");
    auto* url = command.add_option(
        "--url", settings.url,
        "A PostgreSQL database: postgresql://USER[:PASSWORD]@HOST[:PORT][,HOST2...]/DB[?...] "
        "(default: $CHECKPOINT_URL when no --dir, --db or --url is given)");
    dir->excludes(db);
    url->excludes(dir);
    url->excludes(db);
    command.add_option("--pipeline", settings.pipeline, "Pipeline name (default: default)");
    command.add_flag("-v,--verbose", settings.verbose, "Log what the library does");
    command.add_option("--key-file", settings.key_file,
                       "The database's key file (README, \"Security\"; see keygen)");
    command
        .add_option("--busy-timeout", settings.busy_timeout_ms,
                    "How long to wait for a database locked by a writer, in ms (default: 30000)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{86'400'000}));
}

// --columns a,b,c: which of `columns` to print, in that order.
void add_columns_option(CLI::App& command, Settings& settings,
                        const std::vector<std::string>& columns,
                        const std::string& table_default = {}) {
    std::string names;
    for (const auto& name : columns) names += (names.empty() ? "" : ",") + name;
    command
        .add_option(
            "--columns", settings.columns,
            "Only these columns, in this order (comma-separated): " + names +
                (table_default.empty() ? std::string()
                                       : " (default: every one; a table: " + table_default + ")"))
        ->delimiter(',')
        ->check(CLI::Validator(
            [columns](std::string& name) -> std::string {
                if (std::find(columns.begin(), columns.end(), name) != columns.end()) return {};
                std::string message = "unknown column '" + name + "'";
                if (const auto match = closest_match(name, columns))
                    message += " (did you mean '" + *match + "'?)";
                return message;
            },
            "COLUMN"));
}

void add_format_option(CLI::App& command, Settings& settings, const std::string& default_text) {
    command.add_option("--format", settings.format, "Output format: " + default_text)
        ->check(CLI::IsMember({"table", "csv", "json", "ndjson"}));
}

}  // namespace

namespace checkpointctl {

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    if (text.size() < 2) return std::nullopt;
    std::int64_t unit = 0;
    switch (text.back()) {
        case 'd':
            unit = 86'400;
            break;
        case 'h':
            unit = 3'600;
            break;
        case 'm':
            unit = 60;
            break;
        case 's':
            unit = 1;
            break;
        default:
            return std::nullopt;
    }
    const std::string_view digits = text.substr(0, text.size() - 1);
    if (digits.size() > 12) return std::nullopt;  // also keeps the product in range
    std::int64_t count = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        count = count * 10 + (c - '0');
    }
    const std::chrono::seconds duration{count * unit};
    if (duration > max_duration) return std::nullopt;
    return duration;
}

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view host = text.substr(0, colon);
    const std::string_view digits = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
            return std::nullopt;
    } else if (host.find_first_of(":[]") != std::string_view::npos) {
        return std::nullopt;  // an IPv6 address needs its brackets
    }
    if (host.empty() || host.size() > 253 || digits.empty() || digits.size() > 5)
        return std::nullopt;
    if (host.find_first_of(" \t\r\n/@") != std::string_view::npos) return std::nullopt;
    int port = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        port = port * 10 + (c - '0');
    }
    if (port > 65535) return std::nullopt;
    return ListenAddress{std::string(host), port};
}

CommandLine parse_command_line(int argc, const char* const* argv, std::ostream& out,
                               std::ostream& err) {
    CommandLine result;
    Settings& settings = result.settings;
    CLI::App app{"checkpointctl: audit and operate checkpoint databases", "checkpointctl"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("checkpointctl ") + CHECKPOINT_VERSION);
    app.footer(
        "Exit codes: 0 ok, 1 error, 2 usage, 3 verification failed, 4 database, pipeline or\n"
        "stage not found,\n"
        "5 not a checkpoint database, damaged or unsafe, 6 schema version mismatch, 7 busy,\n"
        "8 database server unavailable, 9 serve cannot listen on the address.\n"
        "Example: checkpointctl --dir checkpoints history --format csv");
    add_location_options(app, settings);
    const std::string table_default =
        "table|csv|json|ndjson (default: table on a terminal, "
        "else csv)";

    auto* status = app.add_subcommand("status", "The current state of every stage");
    add_location_options(*status, settings);
    add_format_option(*status, settings, table_default);
    add_columns_option(*status, settings, status_columns);
    status->add_option("stages", settings.stages, "Only these stages ('not run' if unknown)");
    status->footer("Example: checkpointctl status --dir checkpoints data_ingestion model_training");

    auto* history = app.add_subcommand("history", "Every row of the history, oldest first");
    add_location_options(*history, settings);
    add_format_option(*history, settings, table_default);
    history->add_option("--stage", settings.stage, "Only this stage (and pipeline-wide clears)");
    history->add_option("--run", settings.run, "Only rows written by this run id");
    history->add_option("--status", settings.status, "Only rows with this status")
        ->check(CLI::IsMember({"started", "completed", "failed", "cleared", "incomplete"}));
    history->add_option("--since", settings.since, "Only rows at or after this ISO-8601 UTC time");
    history->add_option("--until", settings.until, "Only rows before this ISO-8601 UTC time");
    auto* limit = history
                      ->add_option("--limit", settings.limit,
                                   "At most this many rows, the oldest (0 to 1000000000)")
                      ->check(CLI::Range(std::int64_t{0}, max_row_count));
    history
        ->add_option("--last", settings.last,
                     "Only the newest N rows, printed oldest first (1 to 1000000000)")
        ->check(CLI::Range(std::int64_t{1}, max_row_count))
        ->excludes(limit);
    add_columns_option(*history, settings, checkpoint_columns,
                       "id,stage,status,version,timestamp,message");
    history->footer(
        "Tables cut long values with '…' and abbreviate hashes (csv and json hold them whole);\n"
        "names show control characters and backslashes escaped (\\n, \\t, \\x01, \\\\) and\n"
        "are quoted when they could be mistaken (\"-\", \"\", spaces at either end).\n"
        "Example: checkpointctl history --status failed --since 2026-11-01 --format json\n"
        "         checkpointctl history --last 20 --columns id,stage,status,run_id");

    auto* runs = app.add_subcommand("runs", "One line per run, with its outcome");
    add_location_options(*runs, settings);
    add_format_option(*runs, settings, table_default);
    add_columns_option(*runs, settings, run_columns);
    runs->footer("Example: checkpointctl runs --pipeline nightly --format csv > runs.csv");

    auto* dump = app.add_subcommand(
        "dump", "The complete history of every pipeline, streamed (for archiving)");
    add_location_options(*dump, settings);
    add_format_option(*dump, settings, "table|csv|json|ndjson (default: ndjson)");
    add_columns_option(*dump, settings, checkpoint_columns,
                       "id,pipeline,stage,status,version,timestamp");
    dump->footer(
        "Every pipeline, unless --pipeline names one.\n"
        "Example: checkpointctl dump --dir checkpoints | gzip > history.ndjson.gz");

    auto* pipelines = app.add_subcommand(
        "pipelines", "The pipelines in the database, with their stages and last activity");
    add_location_options(*pipelines, settings);
    add_format_option(*pipelines, settings, table_default);
    add_columns_option(*pipelines, settings, pipeline_columns);
    pipelines->footer(
        "completed: stages completed and up to date now; last_activity: the newest change of\n"
        "a stage or start or end of a run. Example: checkpointctl pipelines --dir checkpoints");

    auto* clear = app.add_subcommand("clear", "Atomically reset stages to not completed");
    add_location_options(*clear, settings);
    auto* clear_stage =
        clear->add_option("--stage", settings.clear_stages, "Clear only this stage (repeatable)");
    clear
        ->add_flag("--downstream", settings.downstream,
                   "Also clear every stage downstream of each --stage: those whose current "
                   "checkpoint consumed it (SaveOptions::inputs), transitively; each --stage "
                   "with its downstream stages in one transaction")
        ->needs(clear_stage);
    clear->add_flag("-y,--yes", settings.yes, "Do not ask for confirmation");
    clear->add_flag("--force", settings.force,
                    "Also clear a --stage that was never recorded (refused otherwise: a typo)");
    clear->footer(
        "Example: checkpointctl clear --stage model_training --yes\n"
        "         checkpointctl clear --stage data_ingestion --downstream --yes");

    std::string older_than, orphan_grace;
    const CLI::Validator duration(
        [](std::string& text) -> std::string {
            if (parse_duration(text)) return {};
            return "'" + text +
                   "' is not a duration: give a whole number and one unit, d, h, m or s "
                   "(e.g. 30d, 12h, 90m, 45s), at most 36500d";
        },
        "DURATION");
    auto* prune = app.add_subcommand(
        "prune", "Delete old history rows, their ended runs and unreferenced output files");
    add_location_options(*prune, settings);
    prune
        ->add_option("--older-than", older_than,
                     "Delete only rows older than DURATION (30d, 12h, 90m, 45s)")
        ->check(duration);
    prune
        ->add_option("--keep-last", settings.keep_last,
                     "Keep the last N completed versions of each stage (and every row of the "
                     "stage after the oldest of them); delete only rows before them")
        ->check(CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max()));
    prune
        ->add_option("--orphan-grace", orphan_grace,
                     "Delete output files that no row references only once older than "
                     "DURATION, so a save in flight keeps its file (default: 1h)")
        ->check(duration);
    prune->add_flag("-y,--yes", settings.yes, "Do not ask for confirmation");
    prune->footer(
        "With both --older-than and --keep-last, a row is deleted only when both allow it.\n"
        "With neither, no history row is deleted: prune only removes orphaned output files\n"
        "(written by a process killed before its row committed, or left by an earlier prune).\n"
        "Never deleted: the last row of each stage (its current state and output), the\n"
        "pipeline's last pipeline-wide clear, and the rows of a run still running.\n"
        "Example: checkpointctl prune --dir checkpoints --older-than 30d --keep-last 3 --yes");

    auto* verify =
        app.add_subcommand("verify", "Check integrity, schema and the history's invariants");
    add_location_options(*verify, settings);
    verify->add_option("--format", settings.format, "text|json (default: text, one problem a line)")
        ->check(CLI::IsMember({"text", "json"}));
    verify->add_option("--expect-head", settings.expect_head,
                       "Also fail unless this head, as `seal` printed it (\"<row id> <hash>\"), "
                       "is still in the history chain");
    verify->footer("Example: checkpointctl verify --db /var/lib/etl/checkpoints.db || alert");

    auto* keygen = app.add_subcommand("keygen", "Write a new random key file (mode 0600)");
    keygen->add_option("file", settings.keygen_file, "The key file to create (never replaced)")
        ->required();
    keygen->footer("Example: checkpointctl keygen /etc/etl/checkpoints.key");

    auto* rekey = app.add_subcommand(
        "rekey", "Re-encrypt everything under a new key (--key-file OLD --new-key-file NEW)");
    add_location_options(*rekey, settings);
    rekey->add_option("--new-key-file", settings.new_key_file, "The new key file (see keygen)")
        ->required();
    rekey->footer(
        "Readers see the old key's database or the new one's, never a mix; killed midway,\n"
        "run it again to finish. The history chain is re-keyed: seal again afterwards.\n"
        "Example: checkpointctl rekey --dir checkpoints --key-file old.key --new-key-file new.key");

    auto* seal = app.add_subcommand(
        "seal", "Print the history chain's head (\"<row id> <hash>\"), to keep elsewhere");
    add_location_options(*seal, settings);
    seal->footer(
        "Keep the line outside the database (a ticket, a log, a signature); later,\n"
        "`checkpointctl verify --expect-head \"<line>\"` fails if the history was cut back.\n"
        "Example: checkpointctl seal --dir checkpoints >> /var/log/etl-heads");

    auto* migrate = app.add_subcommand("migrate", "Apply pending schema migrations");
    add_location_options(*migrate, settings);
    migrate->footer("Example: checkpointctl migrate --dir checkpoints");

    auto* import_legacy = app.add_subcommand(
        "import-legacy", "Import <stage>.checkpoint files of the original Python design");
    add_location_options(*import_legacy, settings);
    import_legacy->add_option("legacy_dir", settings.legacy_dir, "Directory of .checkpoint files")
        ->required();
    import_legacy->footer("Example: checkpointctl import-legacy old_checkpoints --dir checkpoints");

    auto* backup = app.add_subcommand(
        "backup", "A consistent copy of an SQLite database and its output files, while it is used");
    add_location_options(*backup, settings);
    backup
        ->add_option("destination", settings.backup_to,
                     "A directory (created if missing) to hold the copy: checkpoints.db and its "
                     "checkpoints.db-outputs; it must not hold a database of that name yet")
        ->required();
    backup->footer(
        "Online: writers go on while it copies one consistent snapshot (SQLite's backup API).\n"
        "The copy is one self-contained file that passes verify. For PostgreSQL, use pg_dump.\n"
        "Example: checkpointctl backup --dir checkpoints /backups/checkpoints-2026-11-30");

    auto* copy = app.add_subcommand(
        "copy",
        "Copy a whole history (every pipeline, run, row with its id, output) into an empty "
        "database: from SQLite to PostgreSQL or back");
    copy->add_option("--from", settings.copy_from,
                     "Source: a checkpoint directory or a postgresql:// URI")
        ->required();
    copy->add_option("--to", settings.copy_to,
                     "Target (empty, created when missing): a directory or a postgresql:// URI")
        ->required();
    copy->add_flag("-v,--verbose", settings.verbose, "Log what the library does");
    copy->add_option("--busy-timeout", settings.busy_timeout_ms,
                     "How long to wait for a locked database, in ms (default: 30000)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{86'400'000}));
    copy->footer(
        "Example: checkpointctl copy --from checkpoints --to "
        "postgresql://etl@db.example.com/checkpoints");

    auto* serve = app.add_subcommand(
        "serve", "A read-only web dashboard of the database, with a JSON API and /metrics");
    add_location_options(*serve, settings);
    serve
        ->add_option("--listen", settings.listen,
                     "HOST:PORT to listen on (default: 127.0.0.1:8765; port 0: any free port, "
                     "printed at start)")
        ->check(CLI::Validator(
            [](std::string& text) -> std::string {
                if (parse_listen_address(text)) return {};
                return "'" + text + "' is not HOST:PORT (e.g. 127.0.0.1:8765, [::1]:8765)";
            },
            "HOST:PORT"));
    serve->footer(
        "Shows every pipeline of the database (whatever --pipeline says); opens it read-only\n"
        "and never writes. Stop it with Ctrl-C (or SIGTERM).\n"
        "Example: checkpointctl serve --dir checkpoints --listen 127.0.0.1:8765");

    auto* report =
        app.add_subcommand("report", "Write a self-contained HTML report of a pipeline's run");
    add_location_options(*report, settings);
    report->add_option("--html", settings.html_file, "The HTML file to write")->required();
    report->add_option("--run", settings.run, "The run to show (default: the pipeline's last)");
    report->footer(
        "One file, no network needed to view it: status grid, run timeline, the run's rows\n"
        "and its failures. Example: checkpointctl report --dir checkpoints --html run.html");

    if (report_unknown_command(app, argc, argv, err)) {
        result.exit_code = exit_usage;
        return result;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        result.exit_code = report_parse_error(app, e, argc, argv, out, err);
        return result;
    }
    const CLI::App* chosen = app.get_subcommands().empty() ? nullptr : app.get_subcommands()[0];
    // An empty filter is a mistake (an unset shell variable), not "no filter".
    if (*history) {
        for (const char* option : {"--stage", "--run", "--status", "--since", "--until"}) {
            std::string value;
            if (history->count(option) == 0) continue;
            value = history->get_option(option)->as<std::string>();
            if (value.empty()) {
                report_usage_error(app, history,
                                   std::string(option) +
                                       " is empty; give a value, or leave the "
                                       "option out for no filter",
                                   err);
                result.exit_code = exit_usage;
                return result;
            }
        }
    }
    settings.pipeline_given =
        app.count("--pipeline") > 0 ||
        (chosen && chosen->get_option_no_throw("--pipeline") && chosen->count("--pipeline") > 0);

    if (!older_than.empty()) settings.older_than = parse_duration(older_than);
    if (!orphan_grace.empty()) settings.orphan_grace = *parse_duration(orphan_grace);

    // --dir, --db and --url exclude each other, also on opposite sides of the subcommand.
    std::size_t dir_count = app.count("--dir"), db_count = app.count("--db"),
                url_count = app.count("--url");
    for (const CLI::App* command : app.get_subcommands()) {
        if (command->get_option_no_throw("--dir") == nullptr) continue;  // copy: --from, --to
        dir_count += command->count("--dir");
        db_count += command->count("--db");
        url_count += command->count("--url");
    }
    if ((dir_count > 0) + (db_count > 0) + (url_count > 0) > 1) {
        report_usage_error(app, chosen, "--dir, --db and --url cannot be used together; give one",
                           err);
        result.exit_code = exit_usage;
        return result;
    }
    if (dir_count + db_count + url_count == 0) {
        if (const char* url = std::getenv("CHECKPOINT_URL"); url && *url) settings.url = url;
    }

    if (*status)
        result.command = Command::Status;
    else if (*history)
        result.command = Command::History;
    else if (*runs)
        result.command = Command::Runs;
    else if (*dump)
        result.command = Command::Dump;
    else if (*clear)
        result.command = Command::Clear;
    else if (*prune)
        result.command = Command::Prune;
    else if (*verify)
        result.command = Command::Verify;
    else if (*migrate)
        result.command = Command::Migrate;
    else if (*import_legacy)
        result.command = Command::ImportLegacy;
    else if (*copy)
        result.command = Command::Copy;
    else if (*serve)
        result.command = Command::Serve;
    else if (*report)
        result.command = Command::Report;
    else if (*pipelines)
        result.command = Command::Pipelines;
    else if (*backup)
        result.command = Command::Backup;
    else if (*keygen)
        result.command = Command::Keygen;
    else if (*seal)
        result.command = Command::Seal;
    else if (*rekey)
        result.command = Command::Rekey;
    else
        result.exit_code = exit_usage;
    return result;
}

}  // namespace checkpointctl

// Built without main() for the fuzz target of the command line (tests/fuzz).
#ifndef CHECKPOINTCTL_NO_MAIN
int main(int argc, char** argv) {
    const CommandLine command_line = parse_command_line(argc, argv, std::cout, std::cerr);
    if (!command_line.command) return command_line.exit_code;
    const Settings& settings = command_line.settings;
    try {
        switch (*command_line.command) {
            case Command::Status:
                return run_status(settings);
            case Command::History:
                return run_history(settings, false);
            case Command::Runs:
                return run_runs(settings);
            case Command::Dump:
                return run_history(settings, true);
            case Command::Clear:
                return run_clear(settings);
            case Command::Prune:
                return run_prune(settings);
            case Command::Verify:
                return run_verify(settings);
            case Command::Migrate:
                return run_migrate(settings);
            case Command::ImportLegacy:
                return run_import_legacy(settings);
            case Command::Copy:
                return run_copy(settings);
            case Command::Serve:
                return checkpointctl::run_serve(settings);
            case Command::Report:
                return checkpointctl::run_report(settings);
            case Command::Pipelines:
                return run_pipelines(settings);
            case Command::Backup:
                return run_backup(settings);
            case Command::Keygen:
                return checkpointctl::run_keygen(settings);
            case Command::Seal:
                return checkpointctl::run_seal(settings);
            case Command::Rekey:
                return checkpointctl::run_rekey(settings);
        }
    } catch (const checkpoint::Error& e) {
        std::string message = e.what();
        if (e.code() == checkpoint::ErrorCode::Busy) {
            // The library names its option; here the user sets it on the command line.
            const std::string option = "Options::busy_timeout";
            for (auto at = message.find(option); at != std::string::npos;
                 at = message.find(option, at))
                message.replace(at, option.size(), "--busy-timeout");
        }
        std::cerr << "checkpointctl: " << message << "\n";
        return exit_code_for(e.code());
    } catch (const std::exception& e) {
        std::cerr << "checkpointctl: " << e.what() << "\n";
        return exit_error;
    }
    return exit_usage;
}
#endif
