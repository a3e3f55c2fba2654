// Staleness: fingerprints, the upstream versions a checkpoint consumed, stale stages
// (transitively), clearing with the downstream stages, metadata, and the fingerprint helpers.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"
#include "test_location.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::ClearScope;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::Fingerprint;
using checkpoint::fingerprint_of;
using checkpoint::fingerprint_of_file;
using checkpoint::HistoryFilter;
using checkpoint::InputVersion;
using checkpoint::Options;
using checkpoint::SaveOptions;
using checkpoint::Status;
using checkpoint::test::query_value;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;
using checkpoint::test::write_file;
using nlohmann::json;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

// Runs `call`, which must throw Error with `code`; returns its what().
template <typename Call>
std::string error_of(ErrorCode code, Call&& call) {
    try {
        call();
    } catch (const Error& e) {
        CHECK(e.code() == code);
        return e.what();
    }
    FAIL("no checkpoint::Error was thrown");
    return {};
}

SaveOptions consuming(std::vector<std::string> inputs) {
    SaveOptions options;
    options.inputs = std::move(inputs);
    return options;
}

// Whether each stage is up to date (has_checkpoint), for compact checks.
std::map<std::string, bool> fresh(const CheckpointManager& manager,
                                  const std::vector<std::string>& stages) {
    std::map<std::string, bool> result;
    for (const auto& stage : stages) result[stage] = manager.has_checkpoint(stage);
    return result;
}

// Checks that `stage` is Completed but stale, for a reason that names `because`.
void expect_stale(const CheckpointManager& manager, const std::string& stage,
                  const std::string& because) {
    INFO("stage " << stage);
    CHECK_FALSE(manager.has_checkpoint(stage));
    const auto latest = manager.latest(stage);
    REQUIRE(latest);
    CHECK(latest->status == Status::Completed);
    CHECK(latest->stale);
    INFO("stale_reason: " << latest->stale_reason);
    CHECK_THAT(latest->stale_reason, Catch::Contains(because));
}

void expect_fresh(const CheckpointManager& manager, const std::string& stage) {
    INFO("stage " << stage);
    CHECK(manager.has_checkpoint(stage));
    const auto latest = manager.latest(stage);
    REQUIRE(latest);
    CHECK(latest->status == Status::Completed);
    CHECK_FALSE(latest->stale);
    CHECK(latest->stale_reason.empty());
}

// What a rejected write must not have changed.
struct Snapshot {
    std::size_t history = 0;
    std::size_t runs = 0;
    std::set<std::string> files;
    bool operator==(const Snapshot& other) const {
        return history == other.history && runs == other.runs && files == other.files;
    }
};

std::ostream& operator<<(std::ostream& out, const Snapshot& snapshot) {
    out << snapshot.history << " history rows, " << snapshot.runs << " runs, files {";
    for (const auto& file : snapshot.files) out << " " << file;
    return out << " }";
}

Snapshot snapshot(const CheckpointManager& manager) {
    Snapshot result;
    HistoryFilter every;
    every.all_pipelines = true;
    result.history = manager.history(every).size();
    result.runs = manager.runs().size();
    if (fs::exists(manager.outputs_directory())) {
        for (const auto& entry : fs::directory_iterator(manager.outputs_directory()))
            result.files.insert(entry.path().filename().string());
    }
    return result;
}

// A small pipeline as a user writes it: each stage runs unless it has an up-to-date
// checkpoint with the fingerprint of its code version and configuration; it reads its
// inputs' outputs and stores its own.
struct StageSpec {
    std::string name;
    std::vector<std::string> inputs;
};

std::vector<std::string> run_pipeline(CheckpointManager& manager,
                                      const std::vector<StageSpec>& stages,
                                      const std::map<std::string, std::string>& config) {
    std::vector<std::string> ran;
    for (const auto& stage : stages) {
        const std::string fingerprint =
            Fingerprint().add(stage.name + " v1").add(config.at(stage.name)).str();
        if (manager.has_checkpoint(stage.name, fingerprint)) continue;
        ran.push_back(stage.name);
        std::string output = stage.name + "[" + config.at(stage.name) + "](";
        for (const auto& input : stage.inputs) {
            const auto upstream = manager.load_output(input);
            REQUIRE(upstream);
            output += *upstream + ",";
        }
        SaveOptions save;
        save.fingerprint = fingerprint;
        save.inputs = stage.inputs;
        save.output = output + ")";
        manager.save_checkpoint(stage.name, save);
    }
    return ran;
}

bool is_lower_hex(const std::string& text) {
    if (text.size() != 64) return false;
    for (const char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
    }
    return true;
}

}  // namespace

// ---- Fingerprints on checkpoints ----

TEST_CASE("has_checkpoint(stage, fingerprint) is true only for the fingerprint saved",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    SaveOptions save;
    save.fingerprint = Fingerprint().add("code v1").add("threshold=3").str();
    manager.save_checkpoint("train", save);

    CHECK(manager.has_checkpoint("train"));
    CHECK(manager.has_checkpoint("train", save.fingerprint));
    CHECK_FALSE(
        manager.has_checkpoint("train", Fingerprint().add("code v1").add("threshold=4").str()));
    CHECK_FALSE(manager.has_checkpoint("train", "something else"));
    CHECK_FALSE(manager.has_checkpoint("never", save.fingerprint));
    const auto latest = manager.latest("train");
    REQUIRE(latest);
    CHECK(latest->fingerprint == save.fingerprint);

    // A new manager (a resumed run) sees the same.
    {
        CheckpointManager resumed(dir.location());
        CHECK(resumed.has_checkpoint("train", save.fingerprint));
        CHECK_FALSE(resumed.has_checkpoint("train", "other"));
    }

    // A stage saved without a fingerprint matches no fingerprint.
    manager.save_checkpoint("plain");
    CHECK(manager.has_checkpoint("plain"));
    CHECK_FALSE(manager.has_checkpoint("plain", save.fingerprint));

    // The fingerprint is the last save's: saving with another replaces it.
    SaveOptions changed;
    changed.fingerprint = "config v2";
    manager.save_checkpoint("train", changed);
    CHECK(manager.has_checkpoint("train", "config v2"));
    CHECK_FALSE(manager.has_checkpoint("train", save.fingerprint));
    HistoryFilter of_train;
    of_train.stage = "train";
    const auto rows = manager.history(of_train);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].fingerprint == save.fingerprint);
    CHECK(rows[1].fingerprint == "config v2");

    // Not completed: false whatever the fingerprint.
    manager.clear_checkpoint("train");
    CHECK_FALSE(manager.has_checkpoint("train", "config v2"));
}

TEST_CASE("fingerprints are checked like names: UTF-8, no NUL, at most max_name_bytes",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("setup");
    const Snapshot before = snapshot(manager);
    for (const std::string& bad : {"with\0nul"s, "\xff\xfe"s, "caf\xc3"s,
                                   std::string(checkpoint::max_name_bytes + 1, 'f')}) {
        INFO("fingerprint of " << bad.size() << " bytes");
        SaveOptions save;
        save.fingerprint = bad;
        save.output = std::string(2 * 1024 * 1024, 'o');  // a file, not to be left behind
        error_of(ErrorCode::InvalidArgument, [&] { manager.save_checkpoint("s", save); });
    }
    CHECK(snapshot(manager) == before);
    CHECK_FALSE(manager.latest("s"));

    SaveOptions longest;
    longest.fingerprint = std::string(checkpoint::max_name_bytes, 'f');
    manager.save_checkpoint("s", longest);
    CHECK(manager.has_checkpoint("s", longest.fingerprint));
    SaveOptions unicode;
    unicode.fingerprint = "données é 🚀";
    manager.save_checkpoint("u", unicode);
    CHECK(manager.has_checkpoint("u", "données é 🚀"));
}

TEST_CASE("a changed configuration reruns exactly that stage and the stages downstream of it",
          "[staleness]") {
    TestLocation dir;
    // ingest -> clean -> features -> train -> report;  ingest -> stats -> report;
    // lookup (independent).
    const std::vector<StageSpec> stages{{"ingest", {}},
                                        {"lookup", {}},
                                        {"clean", {"ingest"}},
                                        {"stats", {"ingest"}},
                                        {"features", {"clean"}},
                                        {"train", {"features", "lookup"}},
                                        {"report", {"train", "stats"}}};
    std::map<std::string, std::string> config{
        {"ingest", "src=a"},  {"lookup", "l=1"},     {"clean", "drop=na"}, {"stats", "mean"},
        {"features", "f=10"}, {"train", "epochs=3"}, {"report", "html"}};
    using Ran = std::vector<std::string>;
    {
        CheckpointManager manager(dir.location());
        CHECK(run_pipeline(manager, stages, config) ==
              Ran{"ingest", "lookup", "clean", "stats", "features", "train", "report"});
        CHECK(run_pipeline(manager, stages, config).empty());
    }
    // Each later run is a new process (a new manager), as after a restart.
    {
        CheckpointManager manager(dir.location());
        CHECK(run_pipeline(manager, stages, config).empty());
        config["clean"] = "drop=none";
        CHECK(run_pipeline(manager, stages, config) == Ran{"clean", "features", "train", "report"});
        CHECK(run_pipeline(manager, stages, config).empty());
    }
    {
        CheckpointManager manager(dir.location());
        config["stats"] = "median";
        CHECK(run_pipeline(manager, stages, config) == Ran{"stats", "report"});
        config["lookup"] = "l=2";
        CHECK(run_pipeline(manager, stages, config) == Ran{"lookup", "train", "report"});
        config["report"] = "pdf";
        CHECK(run_pipeline(manager, stages, config) == Ran{"report"});
        config["ingest"] = "src=b";
        CHECK(run_pipeline(manager, stages, config) ==
              Ran{"ingest", "clean", "stats", "features", "train", "report"});
        // The final output was built from the current upstream outputs.
        const auto report = manager.load_output("report");
        REQUIRE(report);
        CHECK_THAT(*report, Catch::Contains("src=b") && Catch::Contains("median") &&
                                Catch::Contains("l=2") && Catch::Contains("drop=none") &&
                                Catch::Contains("[pdf]"));
        CHECK(manager.verify().empty());
    }
}

// ---- Inputs ----

TEST_CASE("a checkpoint records the version and row of each input, in the order given",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("raw");
    manager.save_checkpoint("raw");  // version 2
    manager.save_checkpoint("vocab");
    const auto raw = manager.latest("raw");
    const auto vocab = manager.latest("vocab");
    REQUIRE(raw);
    REQUIRE(vocab);
    REQUIRE(raw->version == 2);

    manager.save_checkpoint("tokens", consuming({"vocab", "raw"}));
    const auto tokens = manager.latest("tokens");
    REQUIRE(tokens);
    REQUIRE(tokens->inputs.size() == 2);
    CHECK(tokens->inputs[0].stage == "vocab");
    CHECK(tokens->inputs[0].version == 1);
    CHECK(tokens->inputs[0].id == vocab->id);
    CHECK(tokens->inputs[1].stage == "raw");
    CHECK(tokens->inputs[1].version == 2);
    CHECK(tokens->inputs[1].id == raw->id);
    expect_fresh(manager, "tokens");

    // The same in the history and in a new manager.
    CheckpointManager reopened(dir.location());
    HistoryFilter of_tokens;
    of_tokens.stage = "tokens";
    const auto rows = reopened.history(of_tokens);
    REQUIRE(rows.size() == 1);
    REQUIRE(rows[0].inputs.size() == 2);
    CHECK(rows[0].inputs[0].stage == "vocab");
    CHECK(rows[0].inputs[1].id == raw->id);
    // Rows saved without inputs have none.
    HistoryFilter of_raw;
    of_raw.stage = "raw";
    for (const auto& row : reopened.history(of_raw)) CHECK(row.inputs.empty());
}

TEST_CASE("a stage goes stale when an input is saved again, and downstream of it too",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    // upstream-a -> middle-b -> bottom-c
    manager.save_checkpoint("upstream-a");
    manager.save_checkpoint("middle-b", consuming({"upstream-a"}));
    manager.save_checkpoint("bottom-c", consuming({"middle-b"}));
    manager.save_checkpoint("other");
    for (const auto& stage : {"upstream-a", "middle-b", "bottom-c", "other"})
        expect_fresh(manager, stage);

    manager.save_checkpoint("upstream-a");  // version 2
    expect_fresh(manager, "upstream-a");
    expect_stale(manager, "middle-b", "upstream-a");
    expect_stale(manager, "bottom-c", "middle-b");  // its input is stale itself
    expect_fresh(manager, "other");
    // stages() reports the same flags.
    for (const auto& stage : manager.stages()) {
        INFO("stage " << stage.stage);
        CHECK(stage.stale == (stage.stage == "middle-b" || stage.stage == "bottom-c"));
    }
    // The flags are derived, nothing was written: a read-only manager sees the same.
    {
        Options read_only;
        read_only.read_only = true;
        const CheckpointManager reader(dir.location(), read_only);
        CHECK_FALSE(reader.has_checkpoint("middle-b"));
        CHECK_FALSE(reader.has_checkpoint("bottom-c"));
        CHECK(reader.has_checkpoint("upstream-a"));
    }

    // Re-saving in order makes them fresh again, one by one.
    manager.save_checkpoint("middle-b", consuming({"upstream-a"}));
    expect_fresh(manager, "middle-b");
    expect_stale(manager, "bottom-c", "middle-b");  // middle-b has a new version now
    manager.save_checkpoint("bottom-c", consuming({"middle-b"}));
    expect_fresh(manager, "bottom-c");
    const auto bottom = manager.latest("bottom-c");
    REQUIRE(bottom);
    REQUIRE(bottom->inputs.size() == 1);
    CHECK(bottom->inputs[0].version == 2);
    CHECK(manager.verify().empty());
}

TEST_CASE("a stage goes stale when an input is cleared", "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("source-x");
    manager.save_checkpoint("consumer-y", consuming({"source-x"}));
    manager.save_checkpoint("final-z", consuming({"consumer-y"}));

    SECTION("clear_checkpoint(stage)") {
        manager.clear_checkpoint("source-x");
    }
    SECTION("clear_checkpoint(stage, ClearScope::StageOnly)") {
        CHECK(manager.clear_checkpoint("source-x", ClearScope::StageOnly) ==
              std::vector<std::string>{"source-x"});
    }
    CHECK_FALSE(manager.has_checkpoint("source-x"));
    expect_stale(manager, "consumer-y", "source-x");
    expect_stale(manager, "final-z", "consumer-y");
    // StageOnly leaves the downstream stages completed (stale), not cleared.
    HistoryFilter cleared;
    cleared.status = Status::Cleared;
    const auto clears = manager.history(cleared);
    REQUIRE(clears.size() == 1);
    CHECK(clears[0].stage == "source-x");

    // Saved again (a new version), then the downstream stages again in order: all fresh.
    manager.save_checkpoint("source-x");
    expect_stale(manager, "consumer-y", "source-x");
    manager.save_checkpoint("consumer-y", consuming({"source-x"}));
    manager.save_checkpoint("final-z", consuming({"consumer-y"}));
    for (const auto& stage : {"source-x", "consumer-y", "final-z"}) expect_fresh(manager, stage);
}

TEST_CASE("a stage goes stale while an input is failed or begun again", "[staleness]") {
    // has_checkpoint: "every input it recorded is still at the version it used and up to
    // date itself": an input whose last row is Failed or Started is not up to date.
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("source-x");
    manager.save_checkpoint("consumer-y", consuming({"source-x"}));
    manager.save_checkpoint("final-z", consuming({"consumer-y"}));

    SECTION("failed") {
        manager.fail_stage("source-x", "broke");
    }
    SECTION("begun again") {
        manager.begin_stage("source-x");
    }
    CHECK_FALSE(manager.has_checkpoint("source-x"));
    expect_stale(manager, "consumer-y", "source-x");
    expect_stale(manager, "final-z", "consumer-y");

    manager.save_checkpoint("source-x");
    manager.save_checkpoint("consumer-y", consuming({"source-x"}));
    manager.save_checkpoint("final-z", consuming({"consumer-y"}));
    for (const auto& stage : {"source-x", "consumer-y", "final-z"}) expect_fresh(manager, stage);
}

TEST_CASE("after a pipeline-wide clear, stages saved again in order are fresh", "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("a");
    manager.save_checkpoint("b", consuming({"a"}));
    manager.save_checkpoint("c", consuming({"b"}));
    manager.clear_checkpoints();
    for (const auto& stage : {"a", "b", "c"}) {
        INFO(stage);
        CHECK_FALSE(manager.has_checkpoint(stage));
        const auto latest = manager.latest(stage);
        REQUIRE(latest);
        CHECK(latest->status == Status::Cleared);
    }
    // Only "a" saved again: "b" and "c" are still cleared (not completed).
    manager.save_checkpoint("a");
    CHECK(manager.has_checkpoint("a"));
    CHECK_FALSE(manager.has_checkpoint("b"));
    CHECK_FALSE(manager.has_checkpoint("c"));
    manager.save_checkpoint("b", consuming({"a"}));
    manager.save_checkpoint("c", consuming({"b"}));
    for (const auto& stage : {"a", "b", "c"}) expect_fresh(manager, stage);
    const auto c = manager.latest("c");
    REQUIRE(c);
    REQUIRE(c->inputs.size() == 1);
    CHECK(c->inputs[0].version == 2);
}

TEST_CASE("staleness in a diamond: only the paths from the changed stage", "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    // root -> left -> join;  root -> right -> join
    manager.save_checkpoint("root");
    manager.save_checkpoint("left", consuming({"root"}));
    manager.save_checkpoint("right", consuming({"root"}));
    manager.save_checkpoint("join", consuming({"left", "right"}));
    const std::vector<std::string> all{"root", "left", "right", "join"};
    using Fresh = std::map<std::string, bool>;

    manager.save_checkpoint("right", consuming({"root"}));
    CHECK(fresh(manager, all) ==
          Fresh{{"root", true}, {"left", true}, {"right", true}, {"join", false}});
    expect_stale(manager, "join", "right");
    manager.save_checkpoint("join", consuming({"left", "right"}));
    CHECK(fresh(manager, all) ==
          Fresh{{"root", true}, {"left", true}, {"right", true}, {"join", true}});

    manager.save_checkpoint("root");
    CHECK(fresh(manager, all) ==
          Fresh{{"root", true}, {"left", false}, {"right", false}, {"join", false}});
    manager.save_checkpoint("left", consuming({"root"}));
    // "right" is still stale, so "join" stays stale.
    CHECK(fresh(manager, all) ==
          Fresh{{"root", true}, {"left", true}, {"right", false}, {"join", false}});
    manager.save_checkpoint("right", consuming({"root"}));
    CHECK(fresh(manager, all) ==
          Fresh{{"root", true}, {"left", true}, {"right", true}, {"join", false}});
    manager.save_checkpoint("join", consuming({"left", "right"}));
    CHECK(fresh(manager, all) ==
          Fresh{{"root", true}, {"left", true}, {"right", true}, {"join", true}});
}

TEST_CASE("a long chain goes stale from the top and comes back in order", "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    constexpr int length = 30;
    auto name = [](int i) { return "step-" + std::to_string(100 + i); };
    manager.save_checkpoint(name(0));
    for (int i = 1; i < length; ++i) manager.save_checkpoint(name(i), consuming({name(i - 1)}));
    for (int i = 0; i < length; ++i) CHECK(manager.has_checkpoint(name(i)));

    manager.save_checkpoint(name(0));
    CHECK(manager.has_checkpoint(name(0)));
    for (int i = 1; i < length; ++i) {
        INFO(name(i));
        CHECK_FALSE(manager.has_checkpoint(name(i)));
        const auto latest = manager.latest(name(i));
        REQUIRE(latest);
        CHECK(latest->stale);
    }
    for (int i = 1; i < length; ++i) {
        manager.save_checkpoint(name(i), consuming({name(i - 1)}));
        CHECK(manager.has_checkpoint(name(i)));
        if (i + 1 < length) CHECK_FALSE(manager.has_checkpoint(name(i + 1)));
    }
    for (int i = 0; i < length; ++i) CHECK(manager.has_checkpoint(name(i)));
}

TEST_CASE("an input whose output file is damaged makes its consumers stale",
          "[staleness][sqlite]") {
    TempDir dir;
    Options options;
    options.max_inline_output = 16;
    CheckpointManager manager(dir.path(), options);
    SaveOptions producer;
    producer.output = std::string(1000, 'p');
    manager.save_checkpoint("producer", producer);
    manager.save_checkpoint("consumer", consuming({"producer"}));
    manager.save_checkpoint("last", consuming({"consumer"}));
    const auto file = manager.outputs_directory() / fingerprint_of(*producer.output);
    REQUIRE(fs::exists(file));

    fs::rename(file, dir / "aside");
    CHECK_FALSE(manager.has_checkpoint("producer"));
    expect_stale(manager, "consumer", "producer");
    expect_stale(manager, "last", "consumer");

    fs::rename(dir / "aside", file);
    for (const auto& stage : {"producer", "consumer", "last"}) expect_fresh(manager, stage);
}

TEST_CASE("inputs that are not completed, the stage itself or duplicates are refused",
          "[staleness]") {
    TestLocation dir;
    {
        CheckpointManager setup(dir.location());
        setup.save_checkpoint("done");
        setup.save_checkpoint("self");
        setup.save_checkpoint("cleared");
        setup.clear_checkpoint("cleared");
        setup.begin_stage("running");
        setup.begin_stage("failed");
        setup.fail_stage("failed", "no");
        Options elsewhere;
        elsewhere.pipeline = "elsewhere";
        CheckpointManager other(dir.location(), elsewhere);
        other.save_checkpoint("foreign");
    }
    Options options;
    options.max_inline_output = 16;
    CheckpointManager manager(dir.location(), options);
    const Snapshot before = snapshot(manager);
    const std::vector<std::vector<std::string>> refused{
        {"never-saved"},   {"cleared"},
        {"running"},       {"failed"},
        {"foreign"},       {"self"},
        {"done", "done"},  {""},
        {"done", "\xff"s}, {"done", "self", "done"}};
    for (const auto& inputs : refused) {
        std::string listed;
        for (const auto& input : inputs) listed += "'" + input + "' ";
        INFO("inputs " << listed);
        SaveOptions save = consuming(inputs);
        save.output = std::string(1000, 'o');  // a file, which must not be left behind
        save.metadata = {{"k", "v"}};
        const std::string message =
            error_of(ErrorCode::InvalidArgument, [&] { manager.save_checkpoint("self", save); });
        CHECK_FALSE(message.empty());
        // No row, no run, and no output file left behind (DESIGN: "Bad input gets a clear
        // error and loses nothing: no partial row, no changed file").
        CHECK(snapshot(manager) == before);
        if (fs::exists(manager.outputs_directory())) fs::remove_all(manager.outputs_directory());
    }
    const auto self = manager.latest("self");
    REQUIRE(self);
    CHECK(self->version == 1);
    CHECK(self->inputs.empty());
    CHECK(manager.runs().size() == 1);  // the setup's run only (of this pipeline)
    CHECK(manager.verify().empty());

    // The same call with good inputs works.
    manager.save_checkpoint("self", consuming({"done"}));
    expect_fresh(manager, "self");
}

// ---- Clearing downstream ----

TEST_CASE("clear_checkpoint WithDownstream clears exactly the transitive downstream",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    // a -> b -> c -> f;  a -> d -> h <- e;  g consumed a once, no longer;  i independent.
    manager.save_checkpoint("a");
    manager.save_checkpoint("e");
    manager.save_checkpoint("i");
    manager.save_checkpoint("b", consuming({"a"}));
    manager.save_checkpoint("c", consuming({"b"}));
    manager.save_checkpoint("f", consuming({"c"}));
    manager.save_checkpoint("d", consuming({"a"}));
    manager.save_checkpoint("h", consuming({"d", "e"}));
    manager.save_checkpoint("g", consuming({"a"}));
    manager.save_checkpoint("g");  // its current checkpoint names no input
    HistoryFilter every;
    const auto rows_before = manager.history(every);

    const auto cleared = manager.clear_checkpoint("a", ClearScope::WithDownstream);
    CHECK(cleared == std::vector<std::string>{"a", "b", "c", "d", "f", "h"});

    // One Cleared row per stage, all at once (consecutive rows of this run).
    const auto rows_after = manager.history(every);
    REQUIRE(rows_after.size() == rows_before.size() + 6);
    std::set<std::string> stages_cleared;
    for (std::size_t i = rows_before.size(); i < rows_after.size(); ++i) {
        const auto& row = rows_after[i];
        CHECK(row.status == Status::Cleared);
        CHECK(row.run_id == manager.run_id());
        CHECK(row.id == rows_after[rows_before.size()].id +
                            static_cast<std::int64_t>(i - rows_before.size()));
        stages_cleared.insert(row.stage);
    }
    CHECK(stages_cleared == std::set<std::string>{"a", "b", "c", "d", "f", "h"});
    for (const auto& stage : cleared) {
        INFO(stage);
        CHECK_FALSE(manager.has_checkpoint(stage));
        const auto latest = manager.latest(stage);
        REQUIRE(latest);
        CHECK(latest->status == Status::Cleared);
        CHECK(latest->version == 1);
    }
    for (const auto& stage : {"e", "g", "i"}) expect_fresh(manager, stage);
    CHECK(manager.verify().empty());

    // Nothing downstream of a cleared stage is left: saving again in order restores all.
    manager.save_checkpoint("a");
    manager.save_checkpoint("b", consuming({"a"}));
    CHECK(manager.has_checkpoint("b"));
    CHECK_FALSE(manager.has_checkpoint("c"));
}

TEST_CASE("clear_checkpoint WithDownstream of a leaf, a middle stage, an unsaved stage",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("a");
    manager.save_checkpoint("b", consuming({"a"}));
    manager.save_checkpoint("c", consuming({"b"}));
    using Names = std::vector<std::string>;

    CHECK(manager.clear_checkpoint("c", ClearScope::WithDownstream) == Names{"c"});
    CHECK(manager.has_checkpoint("b"));
    manager.save_checkpoint("c", consuming({"b"}));

    CHECK(manager.clear_checkpoint("b", ClearScope::WithDownstream) == Names{"b", "c"});
    CHECK(manager.has_checkpoint("a"));
    CHECK_FALSE(manager.has_checkpoint("b"));
    CHECK_FALSE(manager.has_checkpoint("c"));

    // A stage never saved: its clear is still recorded, and it has no downstream.
    const auto before = manager.history().size();
    CHECK(manager.clear_checkpoint("nothing", ClearScope::WithDownstream) == Names{"nothing"});
    CHECK(manager.history().size() == before + 1);
    const auto latest = manager.latest("nothing");
    REQUIRE(latest);
    CHECK(latest->status == Status::Cleared);
    CHECK(latest->version == 0);

    // Downstream stages are named in byte order after the stage itself.
    manager.save_checkpoint("z-root");
    for (const auto& name : {"m", "B", "a2", "zz", "A"})
        manager.save_checkpoint(name, consuming({"z-root"}));
    CHECK(manager.clear_checkpoint("z-root", ClearScope::WithDownstream) ==
          Names{"z-root", "A", "B", "a2", "m", "zz"});

    // An invalid name writes nothing.
    const auto count = manager.history().size();
    error_of(ErrorCode::InvalidArgument,
             [&] { manager.clear_checkpoint("", ClearScope::WithDownstream); });
    CHECK(manager.history().size() == count);
}

TEST_CASE("clear_checkpoint StageOnly leaves the downstream stale but not cleared", "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("top");
    manager.save_checkpoint("under", consuming({"top"}));
    const auto before = manager.history().size();
    CHECK(manager.clear_checkpoint("top", ClearScope::StageOnly) ==
          std::vector<std::string>{"top"});
    CHECK(manager.history().size() == before + 1);
    const auto under = manager.latest("under");
    REQUIRE(under);
    CHECK(under->status == Status::Completed);
    expect_stale(manager, "under", "top");
}

TEST_CASE("a clear with downstream stages is one transaction: readers see none or all of it",
          "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    constexpr int leaves = 60;
    manager.save_checkpoint("root");
    for (int i = 0; i < leaves; ++i)
        manager.save_checkpoint("leaf-" + std::to_string(100 + i), consuming({"root"}));
    const auto db_path = dir.location() / "checkpoints.db";  // SQLite

    // Another connection polls the number of Cleared rows while the clear runs.
    std::atomic<bool> started{false};
    std::atomic<bool> done{false};
    std::vector<long> seen;
    std::string reader_error;
    const std::string count_sql = "SELECT count(*) FROM checkpoints WHERE status = 'cleared'";
    std::thread reader([&] {
        if (dir.is_postgres()) {
            try {
                pqxx::connection connection(dir.pg()->url());
                for (bool last = false; !last;) {
                    last = done;
                    pqxx::nontransaction tx(connection);
                    seen.push_back(tx.exec1(count_sql)[0].as<long>());
                    started = true;
                }
            } catch (const std::exception& e) {
                reader_error = e.what();
                started = true;
            }
            return;
        }
        sqlite3* db = nullptr;
        if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
            reader_error = "open failed";
            started = true;
            sqlite3_close(db);
            return;
        }
        sqlite3_busy_timeout(db, 10'000);
        sqlite3_stmt* count = nullptr;
        sqlite3_prepare_v2(db, count_sql.c_str(), -1, &count, nullptr);
        for (bool last = false; !last;) {
            last = done;
            if (sqlite3_step(count) == SQLITE_ROW) {
                seen.push_back(sqlite3_column_int64(count, 0));
            } else {
                reader_error = sqlite3_errmsg(db);
            }
            sqlite3_reset(count);
            started = true;
        }
        sqlite3_finalize(count);
        sqlite3_close(db);
    });
    while (!started) std::this_thread::yield();
    const auto cleared = manager.clear_checkpoint("root", ClearScope::WithDownstream);
    done = true;
    reader.join();

    CHECK(reader_error.empty());
    CHECK(cleared.size() == leaves + 1);
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back() == leaves + 1);
    for (const long count : seen) {
        INFO("a reader saw " << count << " Cleared rows");
        CHECK((count == 0 || count == leaves + 1));
    }
    CHECK(dir.query("SELECT count(DISTINCT run_id) FROM checkpoints WHERE status = "
                    "'cleared'") == "1");
}

// ---- Metadata ----

TEST_CASE("metadata round-trips and is JSON text that sqlite3's json_extract reads",
          "[staleness][metadata][sqlite]") {
    TempDir dir;
    const json metadata = {
        {"rows", 1234},
        {"source", "s3://bucket/données é"},
        {"nested", {{"list", {1, 2.5, "x", nullptr, true}}, {"deep", {{"k", {{"v", -7}}}}}}},
        {"empty", json::object()},
        {"emoji", "🚀"}};
    {
        CheckpointManager manager(dir.path());
        SaveOptions save;
        save.metadata = metadata;
        manager.save_checkpoint("ingest", save);
        const auto latest = manager.latest("ingest");
        REQUIRE(latest);
        CHECK(latest->metadata == metadata);
        manager.save_checkpoint("plain");
        SaveOptions null_metadata;
        null_metadata.metadata = nullptr;  // counts as an empty object
        manager.save_checkpoint("null", null_metadata);
    }
    CheckpointManager reopened(dir.path());
    const auto latest = reopened.latest("ingest");
    REQUIRE(latest);
    CHECK(latest->metadata == metadata);
    CHECK(latest->metadata["nested"]["deep"]["k"]["v"] == -7);
    const auto history = reopened.history();
    REQUIRE(history.size() == 3);
    CHECK(history[0].metadata == metadata);
    CHECK(history[1].metadata == json::object());
    CHECK(history[2].metadata == json::object());
    CHECK(history[2].metadata.is_object());

    // The real sqlite3 shell, as an operator would query it.
    const auto db = reopened.database_path().string();
    auto sqlite3 = [&](const std::string& sql) {
        const auto result = run_command({CHECKPOINT_SQLITE3_SHELL, "-bail", db, sql});
        INFO(sql << "\nstderr: " << result.err);
        REQUIRE(result.exit_code == 0);
        return result.out;
    };
    CHECK(sqlite3("SELECT json_extract(metadata, '$.rows') FROM checkpoints WHERE stage = "
                  "'ingest'") == "1234\n");
    CHECK(sqlite3("SELECT json_extract(metadata, '$.nested.list[1]') FROM history WHERE stage = "
                  "'ingest'") == "2.5\n");
    CHECK(sqlite3("SELECT json_extract(metadata, '$.source') FROM history WHERE stage = "
                  "'ingest'") == "s3://bucket/données é\n");
    CHECK(sqlite3("SELECT json_valid(metadata) FROM checkpoints WHERE stage = 'ingest'") == "1\n");
    CHECK(sqlite3("SELECT typeof(metadata) FROM checkpoints WHERE stage = 'ingest'") == "text\n");
    CHECK(sqlite3("SELECT stage FROM checkpoints WHERE json_extract(metadata, '$.rows') > 1000") ==
          "ingest\n");
    // Empty metadata is NULL in the column.
    CHECK(sqlite3("SELECT count(*) FROM checkpoints WHERE stage IN ('plain', 'null') AND "
                  "metadata IS NULL") == "2\n");
    // Compact text: the same JSON, no insignificant whitespace.
    const std::string stored = query_value(
        dir / "checkpoints.db", "SELECT metadata FROM checkpoints WHERE stage = 'ingest'");
    CHECK(json::parse(stored) == metadata);
    CHECK(stored.find('\n') == std::string::npos);
    CHECK(stored.find("\": ") == std::string::npos);
    CHECK(stored.find(", \"") == std::string::npos);
}

TEST_CASE("metadata that is not an object, not UTF-8, or too large is refused",
          "[staleness][metadata]") {
    TestLocation dir;
    {
        CheckpointManager setup(dir.location());
        setup.save_checkpoint("setup");
    }
    CheckpointManager manager(dir.location());
    const Snapshot before = snapshot(manager);
    const std::size_t frame = json{{"x", ""}}.dump().size();  // {"x":""}
    const std::vector<std::pair<std::string, json>> refused{
        {"an array", json::array({1, 2})},
        {"a number", 42},
        {"a string", "text"},
        {"a boolean", true},
        {"an invalid UTF-8 value", {{"k", "caf\xc3"}}},
        {"an invalid UTF-8 key", {{"\xff", 1}}},
        {"an invalid UTF-8 string deep inside", {{"a", {{"b", json::array({"ok", "\xfe\xff"})}}}}},
        {"one byte over max_metadata_bytes",
         {{"x", std::string(checkpoint::max_metadata_bytes - frame + 1, 'a')}}},
    };
    for (const auto& [what, metadata] : refused) {
        INFO("metadata: " << what);
        SaveOptions save;
        save.metadata = metadata;
        save.output = std::string(2 * 1024 * 1024, 'o');  // a file, not to be left behind
        error_of(ErrorCode::InvalidArgument, [&] { manager.save_checkpoint("s", save); });
    }
    CHECK(snapshot(manager) == before);
    CHECK_FALSE(manager.latest("s"));

    // Exactly max_metadata_bytes is accepted.
    SaveOptions largest;
    largest.metadata = {{"x", std::string(checkpoint::max_metadata_bytes - frame, 'a')}};
    REQUIRE(largest.metadata.dump().size() == checkpoint::max_metadata_bytes);
    manager.save_checkpoint("s", largest);
    const auto latest = manager.latest("s");
    REQUIRE(latest);
    CHECK(latest->metadata == largest.metadata);
}

// ---- Fingerprint helpers ----

TEST_CASE("Fingerprint frames its parts", "[staleness][fingerprint]") {
    TempDir dir;
    const auto x_file = dir / "x.txt";
    write_file(x_file, "x");
    const auto empty_file = dir / "empty";
    write_file(empty_file, "");

    const std::string ab_c = Fingerprint().add("ab").add("c").str();
    const std::string a_bc = Fingerprint().add("a").add("bc").str();
    CHECK(ab_c != a_bc);
    CHECK(ab_c != Fingerprint().add("abc").str());
    CHECK(Fingerprint().add("x").str() != Fingerprint().add_file(x_file).str());
    CHECK(Fingerprint().add("").str() != Fingerprint().str());
    CHECK(Fingerprint().add("").str() != Fingerprint().add_file(empty_file).str());
    CHECK(Fingerprint().add("a").add("b").str() != Fingerprint().add("b").add("a").str());
    // Deterministic, and the same in every process and version: only the parts matter.
    CHECK(Fingerprint().add("ab").add("c").str() == ab_c);
    CHECK(Fingerprint().add_file(x_file).str() == Fingerprint().add_file(x_file).str());
    // A file part depends on the content, not the name.
    const auto other_x = dir / "other-name";
    write_file(other_x, "x");
    CHECK(Fingerprint().add_file(x_file).str() == Fingerprint().add_file(other_x).str());
    write_file(other_x, "y");
    CHECK(Fingerprint().add_file(x_file).str() != Fingerprint().add_file(other_x).str());
    // Any bytes.
    CHECK(Fingerprint().add("a\0b"s).str() != Fingerprint().add("a").str());
    // 64 lower-case hexadecimal digits, and not the plain SHA-256 of the text.
    for (const auto& value : {ab_c, Fingerprint().str(), Fingerprint().add_file(x_file).str()}) {
        INFO(value);
        CHECK(is_lower_hex(value));
    }
    CHECK(Fingerprint().add("x").str() != fingerprint_of("x"));
    // Copyable: a copy continues independently.
    Fingerprint base;
    base.add("common");
    Fingerprint copy = base;
    copy.add("more");
    CHECK(base.str() == Fingerprint().add("common").str());
    CHECK(copy.str() == Fingerprint().add("common").add("more").str());
    // str() does not consume.
    CHECK(base.str() == base.str());
}

TEST_CASE("Fingerprint::add_file: missing file NotFound, directory Io",
          "[staleness][fingerprint]") {
    TempDir dir;
    error_of(ErrorCode::NotFound, [&] { Fingerprint().add_file(dir / "missing"); });
    error_of(ErrorCode::Io, [&] { Fingerprint().add_file(dir.path()); });
}

TEST_CASE("fingerprint_of is SHA-256 and fingerprint_of_file agrees with sha256sum",
          "[staleness][fingerprint]") {
    CHECK(fingerprint_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(fingerprint_of("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(fingerprint_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    TempDir dir;
    std::string binary;
    for (std::uint64_t i = 0; i < 3 * 1024 * 1024 + 17; ++i)
        binary.push_back(static_cast<char>((i * 7919) >> 3));
    const std::vector<std::pair<std::string, std::string>> files{
        {"empty", ""}, {"one", "x"}, {"nul", "a\0b\n"s}, {"big", binary}};
    for (const auto& [name, content] : files) {
        INFO("file " << name << " of " << content.size() << " bytes");
        const auto path = dir / name;
        write_file(path, content);
        const auto result = run_command({"sha256sum", path.string()});
        REQUIRE(result.exit_code == 0);
        const std::string expected = result.out.substr(0, 64);
        CHECK(fingerprint_of_file(path) == expected);
        CHECK(fingerprint_of(content) == expected);
    }
    CHECK_FALSE(fingerprint_of_file(dir / "missing"));
    CHECK_FALSE(fingerprint_of_file(dir / "no-such-dir" / "file"));
    error_of(ErrorCode::Io, [&] { (void)fingerprint_of_file(dir.path()); });

    // A file that cannot be read (not for root, who reads every file).
    const auto locked = dir / "locked";
    write_file(locked, "secret");
    ::chmod(locked.c_str(), 0);
    if (::geteuid() == 0) {
        WARN("skipped the unreadable-file case: root can read a file with mode 000");
    } else {
        error_of(ErrorCode::Io, [&] { (void)fingerprint_of_file(locked); });
        error_of(ErrorCode::Io, [&] { Fingerprint().add_file(locked); });
    }
}

TEST_CASE("only the current checkpoint's inputs count", "[staleness]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("upstream-u");
    manager.save_checkpoint("consumer-c", consuming({"upstream-u"}));
    manager.save_checkpoint("upstream-u");
    expect_stale(manager, "consumer-c", "upstream-u");
    // Saved again without inputs: fresh, whatever its upstream does from now on.
    manager.save_checkpoint("consumer-c");
    expect_fresh(manager, "consumer-c");
    manager.save_checkpoint("upstream-u");
    manager.clear_checkpoint("upstream-u");
    expect_fresh(manager, "consumer-c");
    CHECK(manager.clear_checkpoint("upstream-u", ClearScope::WithDownstream) ==
          std::vector<std::string>{"upstream-u"});
    expect_fresh(manager, "consumer-c");
    // And a new manager (a new process) agrees.
    CheckpointManager reopened(dir.location());
    expect_fresh(reopened, "consumer-c");
}
