#include "usage.hpp"

#include "command_line.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>

namespace checkpointctl {

namespace {

std::vector<std::string> subcommand_names(const CLI::App& app) {
    std::vector<std::string> names;
    for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; }))
        names.push_back(command->get_name());
    return names;
}

// Every spelling of the options of `command`: "--limit", "-v", ...
std::vector<std::string> option_names(const CLI::App& command) {
    std::vector<std::string> names;
    for (const CLI::Option* option : command.get_options()) {
        for (const auto& name : option->get_lnames()) names.push_back("--" + name);
        for (const auto& name : option->get_snames()) names.push_back("-" + name);
    }
    return names;
}

// Whether the option spelled `arg` ("--dir", "--dir=x", "-v") takes the next argument as
// its value.
bool takes_next_value(const CLI::App& command, const std::string& arg) {
    if (arg.find('=') != std::string::npos) return false;
    for (const CLI::Option* option : command.get_options()) {
        for (const auto& name : option->get_lnames())
            if (arg == "--" + name)
                return option->get_expected_max() > 0 && option->get_type_size_max() > 0;
        for (const auto& name : option->get_snames())
            if (arg == "-" + name)
                return option->get_expected_max() > 0 && option->get_type_size_max() > 0;
    }
    return false;
}

// The subcommand named on the command line, if any.
const CLI::App* named_command(const CLI::App& app, int argc, const char* const* argv) {
    const auto names = subcommand_names(app);
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (std::find(names.begin(), names.end(), arg) != names.end())
            return app.get_subcommand(arg);
    }
    return nullptr;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Three rows of the optimal string alignment table.
    std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
    std::iota(previous.begin(), previous.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                current[j] = std::min(current[j], before[j - 2] + 1);
        }
        before.swap(previous);
        previous.swap(current);
    }
    return previous[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
    std::optional<std::string> best;
    std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
    for (const auto& candidate : candidates) {
        const std::size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = candidate;
        }
    }
    return best;
}

void report_usage_error(const CLI::App& app, const CLI::App* command, const std::string& message,
                        std::ostream& err) {
    err << "checkpointctl: " << message << "\n";
    if (command == nullptr) {
        err << "usage: checkpointctl [OPTIONS] COMMAND [ARGS]\ncommands:";
        for (const auto& name : subcommand_names(app)) err << " " << name;
        err << "\nRun 'checkpointctl --help' for more, 'checkpointctl COMMAND --help' for a "
               "command's options.\n";
    } else {
        err << "usage: checkpointctl " << command->get_name() << " [OPTIONS]";
        for (const CLI::Option* option : command->get_options()) {
            if (option->get_positional()) err << " " << option->get_name();
        }
        err << "\nRun 'checkpointctl " << command->get_name() << " --help' for its options.\n";
    }
}

bool report_unknown_command(const CLI::App& app, int argc, const char* const* argv,
                            std::ostream& err) {
    const auto names = subcommand_names(app);
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--") return false;
        if (!arg.empty() && arg[0] == '-') {
            if (takes_next_value(app, arg)) ++i;  // its value is no command
            continue;
        }
        if (std::find(names.begin(), names.end(), arg) != names.end()) return false;
        std::string message = "unknown command '" + arg + "'";
        if (const auto match = closest_match(arg, names))
            message += " (did you mean '" + *match + "'?)";
        report_usage_error(app, nullptr, message, err);
        return true;
    }
    return false;
}

int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc,
                       const char* const* argv, std::ostream& out, std::ostream& err) {
    if (dynamic_cast<const CLI::CallForHelp*>(&error) ||
        dynamic_cast<const CLI::CallForAllHelp*>(&error) ||
        dynamic_cast<const CLI::CallForVersion*>(&error)) {
        return app.exit(error, out, err) == 0 ? exit_ok : exit_usage;
    }
    const CLI::App* command = named_command(app, argc, argv);
    if (dynamic_cast<const CLI::ExtrasError*>(&error)) {
        // An argument nothing took: find the first unknown option on the command line.
        std::vector<std::string> candidates = option_names(app);
        if (command) {
            const auto more = option_names(*command);
            candidates.insert(candidates.end(), more.begin(), more.end());
        }
        for (int i = 1; i < argc; ++i) {
            std::string arg = argv[i];
            if (arg.size() < 2 || arg[0] != '-') continue;
            const std::string name = arg.substr(0, arg.find('='));
            if (std::find(candidates.begin(), candidates.end(), name) != candidates.end()) {
                if (takes_next_value(app, arg) || (command && takes_next_value(*command, arg))) ++i;
                continue;
            }
            std::string message = "unknown option '" + name + "'";
            if (const auto match = closest_match(name, candidates))
                message += " (did you mean '" + *match + "'?)";
            report_usage_error(app, command, message, err);
            return exit_usage;
        }
        std::string message = error.what();
        if (!message.empty()) message[0] = static_cast<char>(std::tolower(message[0]));
        report_usage_error(app, command, message, err);
        return exit_usage;
    }
    if (dynamic_cast<const CLI::RequiredError*>(&error) && command == nullptr) {
        report_usage_error(app, nullptr, "no command given", err);
        return exit_usage;
    }
    std::string message = error.what();
    if (!message.empty()) message[0] = static_cast<char>(std::tolower(message[0]));
    report_usage_error(app, command, message, err);
    return exit_usage;
}

}  // namespace checkpointctl
