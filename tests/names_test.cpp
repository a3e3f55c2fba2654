// Stage and pipeline names: what is rejected (with nothing written) and what is stored
// verbatim.
#include <checkpoint/checkpoint_manager.hpp>

#include "test_location.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>

using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::test::TestLocation;

namespace {

// Every entry of the directory, so a test can see that no file was created from a name.
std::set<std::string> entries(const std::filesystem::path& dir) {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir))
        names.insert(std::filesystem::relative(entry.path(), dir).string());
    return names;
}

ErrorCode code_of(const std::function<void()>& call) {
    try {
        call();
    } catch (const Error& e) {
        return e.code();
    }
    FAIL("the call did not throw checkpoint::Error");
    return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("invalid stage names are rejected and nothing is written", "[names]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    const std::string too_long(checkpoint::max_name_bytes + 1, 'x');
    const std::string with_nul("bad\0name", 8);
    const std::string overlong_slash = "\xC0\xAF";  // overlong encoding of '/'
    const std::string lone_continuation = "abc\x80";
    const std::string surrogate = "\xED\xA0\x80";  // U+D800
    const std::string truncated = "caf\xC3";
    for (const std::string& name : {std::string(), too_long, with_nul, overlong_slash,
                                    lone_continuation, surrogate, truncated}) {
        INFO("name bytes: " << name.size());
        CHECK(code_of([&] { manager.save_checkpoint(name); }) == ErrorCode::InvalidArgument);
        CHECK(code_of([&] { manager.begin_stage(name); }) == ErrorCode::InvalidArgument);
        CHECK(code_of([&] { manager.fail_stage(name, "m"); }) == ErrorCode::InvalidArgument);
        CHECK(code_of([&] { manager.clear_checkpoint(name); }) == ErrorCode::InvalidArgument);
        CHECK(code_of([&] { (void)manager.has_checkpoint(name); }) == ErrorCode::InvalidArgument);
        CHECK(code_of([&] { (void)manager.latest(name); }) == ErrorCode::InvalidArgument);
    }
    CHECK(manager.history().empty());
    CHECK(manager.runs().empty());  // not even a run was recorded
}

TEST_CASE("the error message says what was wrong", "[names]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    try {
        manager.save_checkpoint(std::string(checkpoint::max_name_bytes + 5, 'y'));
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("stage name") && Catch::Contains("1029 bytes") &&
                                 Catch::Contains("1024"));
    }
    try {
        manager.save_checkpoint("");
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("empty"));
    }
}

TEST_CASE("hostile and unusual names are stored verbatim and create no file", "[names]") {
    TestLocation dir;
    const auto before = [&] {
        CheckpointManager opener(dir.location());  // creates the database
        return entries(dir.scratch());
    }();
    CheckpointManager manager(dir.location());
    const std::string max_length(checkpoint::max_name_bytes, 'z');
    const std::vector<std::string> names = {
        "it's \"quoted\"",
        "'; DROP TABLE checkpoints; --",
        "../../etc/passwd",
        "/absolute/path",
        "with spaces and\ttabs",
        "line\nbreak",
        "données — 数据 — 🚀",
        "%s %n {}",
        "*",
        max_length,
    };
    for (const auto& name : names) {
        manager.save_checkpoint(name);
        INFO(name);
        CHECK(manager.has_checkpoint(name));
        const auto latest = manager.latest(name);
        REQUIRE(latest);
        CHECK(latest->stage == name);
        CHECK(latest->version == 1);
    }
    // A prefix or a sibling of a stored name is a different stage.
    CHECK_FALSE(manager.has_checkpoint("../../etc"));
    CHECK_FALSE(manager.has_checkpoint("zz"));
    std::set<std::string> stored;
    for (const auto& row : manager.history()) stored.insert(row.stage);
    CHECK(stored == std::set<std::string>(names.begin(), names.end()));
    // The directory holds the database files (SQLite) and nothing named after a stage.
    for (const auto& entry : entries(dir.scratch())) {
        INFO(entry);
        CHECK(entry.rfind("checkpoints.db", 0) == 0);
    }
    CHECK(before.count("checkpoints.db") == (dir.is_sqlite() ? 1 : 0));
    CHECK_FALSE(std::filesystem::exists("/etc/passwd.checkpoint"));
}

TEST_CASE("pipeline names follow the same rules", "[names]") {
    TestLocation dir;
    checkpoint::Options options;
    options.pipeline = "";
    CHECK(code_of([&] { CheckpointManager m(dir.location(), options); }) ==
          ErrorCode::InvalidArgument);
    options.pipeline = std::string("a\0b", 3);
    CHECK(code_of([&] { CheckpointManager m(dir.location(), options); }) ==
          ErrorCode::InvalidArgument);
    options.pipeline = "nightly 'etl'; --";
    CheckpointManager manager(dir.location(), options);
    manager.save_checkpoint("s");
    CHECK(manager.latest("s")->pipeline == "nightly 'etl'; --");
}

TEST_CASE("failure messages are kept as valid UTF-8 and bounded", "[names]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.fail_stage("s", std::string("bad byte \xFF here\0and after", 25));
    auto latest = manager.latest("s");
    REQUIRE(latest);
    CHECK(latest->status == checkpoint::Status::Failed);
    CHECK(latest->message ==
          "bad byte \xEF\xBF\xBD here\xEF\xBF\xBD"
          "and after");

    manager.fail_stage("s", std::string(checkpoint::max_message_bytes + 100, 'm'));
    CHECK(manager.latest("s")->message.size() == checkpoint::max_message_bytes);
}
