// checkpointctl — audit and operate a checkpoint database without writing code.
//
// Exit codes: 0 success; 1 error; 2 usage; 3 verification found problems; 4 database not
// found; 5 not a checkpoint database, damaged or unsafe; 6 schema version mismatch; 7 busy;
// 8 serve cannot listen on the address.
#include "command_line.hpp"
#include "crypto_commands.hpp"
#include "dashboard_server.hpp"
#include "database.hpp"
#include "html_report.hpp"
#include "legacy_import.hpp"
#include "record_fields.hpp"
#include "record_writer.hpp"

#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/copy.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

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

int run_status(const Settings& settings) {
    const auto manager = open_database(settings, true);
    RecordWriter out(std::cout, resolve_format(settings.format, Format::Table, Format::Csv),
                     status_columns);
    // A completed stage that is not up to date (has_checkpoint false) reads "stale", with
    // the library's reason.
    const auto write = [&](const checkpoint::Checkpoint& state) {
        out.write(status_record(state));
    };
    if (settings.stages.empty()) {
        for (const auto& state : manager.stages()) write(state);
    } else {
        for (const auto& stage : settings.stages) {
            if (const auto state = manager.latest(stage)) {
                write(*state);
            } else {
                out.write({stage, std::string("not run"), {}, {}, {}, {}});
            }
        }
    }
    out.finish();
    return exit_ok;
}

int run_history(const Settings& settings, bool dump) {
    const auto manager = open_database(settings, true);
    checkpoint::HistoryFilter filter =
        dump ? checkpoint::HistoryFilter{} : history_filter(settings);
    filter.all_pipelines = dump;
    const Format format = dump ? resolve_format(settings.format, Format::Ndjson, Format::Ndjson)
                               : resolve_format(settings.format, Format::Table, Format::Csv);
    RecordWriter out(std::cout, format, checkpoint_columns);
    manager.for_each_history(
        filter, [&](const checkpoint::Checkpoint& row) { out.write(checkpoint_record(row)); });
    out.finish();
    return exit_ok;
}

int run_runs(const Settings& settings) {
    const auto manager = open_database(settings, true);
    RecordWriter out(std::cout, resolve_format(settings.format, Format::Table, Format::Csv),
                     run_columns);
    for (const auto& run : manager.runs()) out.write(run_record(run));
    out.finish();
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
    std::cerr << "This will " << what << ". Type 'yes' to continue: " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    return answer == "yes";
}

// 'a', 'b', 'c'
std::string quoted_list(const std::set<std::string>& names) {
    std::string text;
    for (const auto& name : names) text += (text.empty() ? "'" : ", '") + name + "'";
    return text;
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
    std::string what;
    if (settings.clear_stages.empty()) {
        what = "clear every stage " + where;
    } else if (!settings.downstream) {
        what = "clear " + std::to_string(settings.clear_stages.size()) + " stage(s) " + where;
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
            if (manager.import_checkpoint(legacy.stage, legacy.timestamp, source)) {
                ++imported;
                std::cout << "imported " << legacy.stage << " (completed " << legacy.timestamp
                          << ")\n";
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
    return failed == 0 ? exit_ok : exit_error;
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
    app.footer(
        "Exit codes: 0 ok, 1 error, 2 usage, 3 verification failed, 4 database not found,\n"
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
    history->add_option("--limit", settings.limit, "At most this many rows")
        ->check(CLI::NonNegativeNumber);
    history->footer(
        "Example: checkpointctl history --status failed --since 2026-11-01 --format json");

    auto* runs = app.add_subcommand("runs", "One line per run, with its outcome");
    add_location_options(*runs, settings);
    add_format_option(*runs, settings, table_default);
    runs->footer("Example: checkpointctl runs --pipeline nightly --format csv > runs.csv");

    auto* dump = app.add_subcommand(
        "dump", "The complete history of every pipeline, streamed (for archiving)");
    add_location_options(*dump, settings);
    add_format_option(*dump, settings, "table|csv|json|ndjson (default: ndjson)");
    dump->footer("Example: checkpointctl dump --dir checkpoints | gzip > history.ndjson.gz");

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

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e, out, err);
        result.exit_code = code == 0 ? exit_ok : exit_usage;
        return result;
    }

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
        err << "checkpointctl: --dir, --db and --url cannot be used together; give one\n";
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
            case Command::Keygen:
                return checkpointctl::run_keygen(settings);
            case Command::Seal:
                return checkpointctl::run_seal(settings);
            case Command::Rekey:
                return checkpointctl::run_rekey(settings);
        }
    } catch (const checkpoint::Error& e) {
        std::cerr << "checkpointctl: " << e.what() << "\n";
        return exit_code_for(e.code());
    } catch (const std::exception& e) {
        std::cerr << "checkpointctl: " << e.what() << "\n";
        return exit_error;
    }
    return exit_usage;
}
#endif
