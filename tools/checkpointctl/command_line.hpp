// checkpointctl's command line: parsed into Settings without running anything, so that
// tests/fuzz/checkpointctl_args_fuzz.cpp can feed it arbitrary arguments.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace checkpointctl {

// Exit codes of checkpointctl.
enum Exit {
    exit_ok = 0,
    exit_error = 1,
    exit_usage = 2,
    exit_verify_failed = 3,
    exit_not_found = 4,
    exit_not_a_database = 5,
    exit_schema = 6,
    exit_busy = 7,
    exit_unavailable = 8,
    exit_listen = 9,         // serve: the address to listen on is in use, or may not be used
    exit_key_required = 10,  // the database was written with a key; give --key-file
    exit_wrong_key = 11,     // --key-file is not the database's key
    // 12 is reserved (stage leases)
};

// What the user asked for, filled by CLI11.
struct Settings {
    std::string dir = "checkpoints";
    std::string db;
    // A PostgreSQL database: --url, else the environment variable CHECKPOINT_URL when none
    // of --dir, --db and --url is given. Holds the password if the URI has one.
    std::string url;
    std::string pipeline = "default";
    std::string format;  // empty: table on a terminal, csv otherwise
    bool verbose = false;
    std::int64_t busy_timeout_ms = 30'000;
    // history filters
    std::string stage;
    std::string run;
    std::string status;
    std::string since;
    std::string until;
    std::optional<std::int64_t> limit;
    std::optional<std::int64_t> last;  // history --last N: the newest N rows, oldest first
    // --columns a,b,c (history, status, runs, dump, pipelines): the columns to print, in
    // this order; empty: every column (a table: the default_table_columns of the command).
    std::vector<std::string> columns;
    bool pipeline_given = false;  // --pipeline was given (dump: only that pipeline)
    // status
    std::vector<std::string> stages;
    // clear
    std::vector<std::string> clear_stages;
    bool downstream = false;  // clear --downstream: also every stage downstream
    bool yes = false;         // clear, prune
    bool force = false;       // clear --force: also a stage never recorded
    // prune
    std::optional<std::chrono::seconds> older_than;
    std::optional<std::int64_t> keep_last;
    std::chrono::seconds orphan_grace{3600};  // PruneOptions' default
    // import-legacy
    std::string legacy_dir;
    // copy
    std::string copy_from;
    std::string copy_to;
    // serve
    std::string listen = "127.0.0.1:8765";  // HOST:PORT (port 0: any free port)
    // report (and --run, above)
    std::string html_file;
    // backup
    std::string backup_to;
    // keys and the history chain (crypto_commands.hpp)
    std::string key_file;      // --key-file: Options::key_file
    std::string keygen_file;   // keygen FILE
    std::string new_key_file;  // rekey --new-key-file
    std::string expect_head;   // verify --expect-head "<row id> <hash>"
};

enum class Command {
    Status,
    History,
    Runs,
    Dump,
    Clear,
    Prune,
    Verify,
    Migrate,
    ImportLegacy,
    Copy,
    Serve,
    Report,
    Pipelines,
    Backup,
    Keygen,
    Seal,
    Rekey,
};

// The largest row count --limit and --last accept (more is a usage error, not "no limit").
inline constexpr std::int64_t max_row_count = 1'000'000'000;

// The longest duration prune accepts: 100 years.
inline constexpr std::chrono::seconds max_duration{36'500LL * 86'400};

// A duration as prune takes it: a whole number followed by one unit, d (days), h (hours),
// m (minutes) or s (seconds): "30d", "12h", "90m", "45s". std::nullopt for anything else
// (no unit, another unit, a sign, spaces, a fraction, more than max_duration).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// Where serve listens: a host name or IPv4 address, or an IPv6 address (written in
// brackets, stored without them), and a port (0: any free port).
struct ListenAddress {
    std::string host;
    int port = 0;
};

// "HOST:PORT" as serve takes it: "127.0.0.1:8765", "localhost:80", "[::1]:8765",
// "0.0.0.0:0". std::nullopt for anything else (no port, a port above 65535, an empty host,
// an IPv6 address without brackets).
std::optional<ListenAddress> parse_listen_address(std::string_view text);

struct CommandLine {
    // The subcommand to run; empty when there is nothing to run (--help, a usage error):
    // then checkpointctl exits with exit_code.
    std::optional<Command> command;
    int exit_code = exit_ok;
    Settings settings;
};

// Parses checkpointctl's arguments (argv[0] is the program). Help goes to `out`, usage
// errors to `err`. Opens no file and runs nothing; reads the environment variable
// CHECKPOINT_URL.
CommandLine parse_command_line(int argc, const char* const* argv, std::ostream& out,
                               std::ostream& err);

}  // namespace checkpointctl
