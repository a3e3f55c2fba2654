// checkpointctl's usage errors, for every subcommand alike: each starts with
// "checkpointctl:", an unknown command or option gets a "did you mean" when one is close,
// and the usage of the command concerned follows (exit 2). New subcommands get all of this
// from their CLI11 definition, with nothing to add here.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace checkpointctl {

// The number of single-character insertions, deletions, substitutions and transpositions
// of adjacent characters that turn `a` into `b` (optimal string alignment distance).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, when it is close enough to be what was meant (at most a
// third of the word's characters differ, and at least one may); std::nullopt otherwise.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

// Looks at the arguments before CLI11 parses them: the first word at the top level that is
// neither an option, an option's value nor a subcommand of `app` is an unknown command.
// Writes "checkpointctl: unknown command 'WORD'" (with a "did you mean") and the usage to
// `err`, and returns true then.
bool report_unknown_command(const CLI::App& app, int argc, const char* const* argv,
                            std::ostream& err);

// Writes CLI11's parse error as checkpointctl's usage error (help and --version go to
// `out`), and returns the exit code: 0 for help and --version, exit_usage otherwise.
int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc,
                       const char* const* argv, std::ostream& out, std::ostream& err);

// Writes "checkpointctl: MESSAGE" and the usage of `command` (the top level when null).
void report_usage_error(const CLI::App& app, const CLI::App* command, const std::string& message,
                        std::ostream& err);

}  // namespace checkpointctl
