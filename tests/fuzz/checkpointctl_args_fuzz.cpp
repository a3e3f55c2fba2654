// Fuzz target: checkpointctl's command line (parse_command_line in
// tools/checkpointctl/main.cpp, built here without main()). The input is split at NUL bytes
// into arguments; nothing is run and no database is opened. Parsing must end in a command
// to run or in exit code 0 (--help) / 2 (usage error), never in an exception or a crash.
#include "command_line.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "checkpointctl_args_fuzz: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> args{"checkpointctl"};
    for (std::size_t start = 0; start <= input.size() && args.size() < 64;) {
        const std::size_t end = std::min(input.find('\0', start), input.size());
        args.emplace_back(input.substr(start, end - start));
        start = end + 1;
    }
    if (input.empty()) args.pop_back();  // no arguments at all
    std::vector<const char*> argv;
    for (const auto& arg : args) argv.push_back(arg.c_str());
    argv.push_back(nullptr);

    std::ostringstream out, err;
    const auto line =
        checkpointctl::parse_command_line(static_cast<int>(args.size()), argv.data(), out, err);
    using checkpointctl::exit_ok;
    using checkpointctl::exit_usage;
    if (!line.command) {
        if (line.exit_code != exit_ok && line.exit_code != exit_usage)
            fail("parsing ended with an exit code other than 0 or 2");
        if (line.exit_code == exit_usage && err.str().empty())
            fail("a usage error without a message");
        if (line.exit_code == exit_usage && err.str().rfind("checkpointctl: ", 0) != 0)
            fail("a usage error that does not start with 'checkpointctl: '");
        return 0;
    }
    if (line.exit_code != exit_ok) fail("a command to run with a non-zero exit code");
    const auto& s = line.settings;
    const bool verify = line.command == checkpointctl::Command::Verify;
    if (!(s.format.empty() || s.format == "json" ||
          (verify ? s.format == "text"
                  : s.format == "table" || s.format == "csv" || s.format == "ndjson")))
        fail("an unknown --format was accepted");
    if (s.busy_timeout_ms < 0 || s.busy_timeout_ms > 86'400'000)
        fail("a --busy-timeout out of range was accepted");
    if (s.limit && (*s.limit < 0 || *s.limit > checkpointctl::max_row_count))
        fail("a negative or absurd --limit was accepted");
    if (s.last && (*s.last < 1 || *s.last > checkpointctl::max_row_count))
        fail("a --last out of range was accepted");
    if (s.limit && s.last) fail("--limit with --last was accepted");
    if (line.command == checkpointctl::Command::ImportLegacy && s.legacy_dir.empty() &&
        std::find(args.begin(), args.end(), std::string()) == args.end())
        fail("import-legacy without a directory was accepted");
    return 0;
}
