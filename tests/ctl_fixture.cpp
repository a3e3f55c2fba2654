// checkpointctl's test fixture (tests/checkpointctl_test.py, env CHECKPOINT_CTL_FIXTURE):
// writes the states that checkpointctl must show — metadata, fingerprints, stored outputs,
// inputs, stale stages, downstream clears — through the library, as a pipeline would.
//
//   checkpoint_ctl_fixture DIR [--pipeline NAME] [--max-inline BYTES] [--normal]
//       --max-inline  Options::max_inline_output (outputs larger than BYTES go to files)
//       --normal      Durability::Normal (for long histories)
//
// Opens DIR/checkpoints.db (one CheckpointManager: one run, from its first write until the
// end of stdin), prints "ready" and flushes, then runs one command per line of stdin, each
// a JSON object, and prints one JSON line per command (flushed) once it has returned:
//
//   {"op":"save","stage":S[,"metadata":{…}][,"fingerprint":F][,"output":TEXT]
//                         [,"inputs":[S1,…]]}      save_checkpoint(S, SaveOptions) → {"ok":true}
//   {"op":"save_many","prefix":P,"count":N,…}      the same save of P-0 … P-(N-1)  → {"ok":true}
//   {"op":"begin","stage":S}                       begin_stage                      → {"ok":true}
//   {"op":"fail","stage":S,"message":M}            fail_stage                       → {"ok":true}
//   {"op":"clear","stage":S}                       clear_checkpoint(S)              → {"ok":true}
//   {"op":"clear_downstream","stage":S}            clear_checkpoint(S, WithDownstream)
//                                                                    → {"cleared":[S,…]}
//   {"op":"clear_all"}                             clear_checkpoints()              → {"ok":true}
//   {"op":"has","stage":S[,"fingerprint":F]}       has_checkpoint                   → {"has":bool}
//   {"op":"latest","stage":S}     latest(S) → {"status":…,"version":…,"stale":…,"reason":…}
//                                 or {"status":null}
//   {"op":"load","stage":S[,"version":V]}          load_output → {"output":TEXT|null}, or
//                                                  {"error":CODE} when it throws Error
//   {"op":"run_id"}                                → {"run_id":…}
//
// TEXT is the output's bytes as a JSON string (its UTF-8). Exits 0 at the end of stdin; on
// a bad line or an unexpected error prints "error: …" on stderr and exits 1.
#include <checkpoint/checkpoint_manager.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

using nlohmann::json;

void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

checkpoint::SaveOptions save_options(const json& command) {
    checkpoint::SaveOptions options;
    if (command.contains("metadata")) options.metadata = command.at("metadata");
    if (command.contains("fingerprint"))
        options.fingerprint = command.at("fingerprint").get<std::string>();
    if (command.contains("output")) options.output = command.at("output").get<std::string>();
    if (command.contains("inputs"))
        options.inputs = command.at("inputs").get<std::vector<std::string>>();
    return options;
}

json run(checkpoint::CheckpointManager& manager, const json& command) {
    const std::string op = command.at("op").get<std::string>();
    const auto stage = [&] { return command.at("stage").get<std::string>(); };
    if (op == "save") {
        manager.save_checkpoint(stage(), save_options(command));
    } else if (op == "save_many") {
        const auto options = save_options(command);
        const std::string prefix = command.at("prefix").get<std::string>();
        const auto count = command.at("count").get<std::int64_t>();
        for (std::int64_t i = 0; i < count; ++i)
            manager.save_checkpoint(prefix + "-" + std::to_string(i), options);
    } else if (op == "begin") {
        manager.begin_stage(stage());
    } else if (op == "fail") {
        manager.fail_stage(stage(), command.at("message").get<std::string>());
    } else if (op == "clear") {
        manager.clear_checkpoint(stage());
    } else if (op == "clear_downstream") {
        return {
            {"cleared", manager.clear_checkpoint(stage(), checkpoint::ClearScope::WithDownstream)}};
    } else if (op == "clear_all") {
        manager.clear_checkpoints();
    } else if (op == "has") {
        const bool has =
            command.contains("fingerprint")
                ? manager.has_checkpoint(stage(), command.at("fingerprint").get<std::string>())
                : manager.has_checkpoint(stage());
        return {{"has", has}};
    } else if (op == "latest") {
        const auto state = manager.latest(stage());
        if (!state) return {{"status", nullptr}};
        return {{"status", std::string(to_string(state->status))},
                {"version", state->version},
                {"stale", state->stale},
                {"reason", state->stale_reason}};
    } else if (op == "load") {
        try {
            const auto output =
                command.contains("version")
                    ? manager.load_output(stage(), command.at("version").get<std::int64_t>())
                    : manager.load_output(stage());
            return {{"output", output ? json(*output) : json(nullptr)}};
        } catch (const checkpoint::Error& e) {
            return {{"error", std::string(to_string(e.code()))}};
        }
    } else if (op == "run_id") {
        return {{"run_id", manager.run_id()}};
    } else {
        throw std::runtime_error("unknown op '" + op + "'");
    }
    return {{"ok", true}};
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 2) throw std::runtime_error("usage: checkpoint_ctl_fixture DIR [options]");
        checkpoint::Options options;
        for (int i = 2; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--normal") {
                options.durability = checkpoint::Durability::Normal;
                continue;
            }
            if (i + 1 >= argc) throw std::runtime_error("missing value after " + arg);
            if (arg == "--pipeline") {
                options.pipeline = argv[++i];
            } else if (arg == "--max-inline") {
                options.max_inline_output = std::stoull(argv[++i]);
            } else {
                throw std::runtime_error("unknown argument " + arg);
            }
        }
        checkpoint::CheckpointManager manager(argv[1], options);
        say("ready");
        std::string line;
        while (std::getline(std::cin, line)) {
            if (line.empty()) continue;
            say(run(manager, json::parse(line)).dump());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
