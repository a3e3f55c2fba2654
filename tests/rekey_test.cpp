// Key rotation (`checkpointctl rekey`, checkpoint::rekey) on SQLite: the real checkpointctl
// killed with SIGKILL at random points, again and again; after every kill exactly one of the
// two keys opens the database and reads every output (in the database and in files),
// metadata and message; run once more, it ends with everything readable with the new key
// only, the chain verified, and no file of the old key left.
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/keys.hpp>

#include "child_process.hpp"
#include "scale.hpp"
#include "test_location.hpp"

#include <csignal>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>

using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::Options;
using checkpoint::SaveOptions;
using checkpoint::test::ChildProcess;
using checkpoint::test::run_command;
using checkpoint::test::scaled;
using checkpoint::test::TestBackend;
using checkpoint::test::TestLocation;
namespace fs = std::filesystem;

namespace {

const std::string checkpointctl = std::string(CHECKPOINT_BINARY_DIR) + "/tools/checkpointctl";

Options keyed(const fs::path& key) {
    Options options;
    options.key_file = key;
    options.max_inline_output = 2048;
    return options;
}

struct Expected {
    std::string output;
    std::string note;
};

// Every stage's output and metadata, and the failure's message, read with `key`.
void check_all(const fs::path& dir, const fs::path& key,
               const std::map<std::string, Expected>& expected) {
    CheckpointManager manager(dir, keyed(key));
    for (const auto& [stage, want] : expected) {
        INFO("stage " << stage);
        CHECK(manager.load_output(stage) == want.output);
        CHECK(manager.latest(stage)->metadata["note"] == want.note);
    }
    CHECK(manager.latest("broken")->message == "secret failure");
}

// Which of the two keys opens the database (the test fails if neither or both do).
fs::path current_key(const fs::path& dir, const fs::path& a, const fs::path& b) {
    int opened = 0;
    fs::path which;
    for (const fs::path& key : {a, b}) {
        try {
            CheckpointManager manager(dir, keyed(key));
            ++opened;
            which = key;
        } catch (const Error& e) {
            REQUIRE(e.code() == ErrorCode::WrongKey);
        }
    }
    REQUIRE(opened == 1);
    return which;
}

}  // namespace

TEST_CASE("rekey killed with SIGKILL at random points, then run again, ends under the new key",
          "[rekey][crash][sqlite]") {
    TestLocation location(TestBackend::Sqlite);
    const fs::path dir = location.location() / "db";
    const fs::path a = location / "a.key";
    const fs::path b = location / "b.key";
    checkpoint::generate_key_file(a);
    checkpoint::generate_key_file(b);
    std::map<std::string, Expected> expected;
    {
        CheckpointManager manager(dir, keyed(a));
        for (int i = 0; i < 12; ++i) {
            const std::string stage = "stage_" + std::to_string(i);
            // Half small (in the database), half large (files, several stream chunks).
            const std::size_t size = i % 2 ? 100 : 150 * 1024 + static_cast<std::size_t>(i);
            Expected want{std::string(size, static_cast<char>('a' + i)), "note " + stage};
            SaveOptions save;
            save.output = want.output;
            save.metadata = {{"note", want.note}};
            manager.save_checkpoint(stage, save);
            expected[stage] = want;
        }
        manager.begin_stage("broken");
        manager.fail_stage("broken", "secret failure");
    }
    check_all(dir, a, expected);

    // One whole rekey, timed: the kills land anywhere in such a span.
    const auto started = std::chrono::steady_clock::now();
    auto first = run_command({checkpointctl, "rekey", "--dir", dir.string(), "--key-file",
                              a.string(), "--new-key-file", b.string()});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto span = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
    CHECK(current_key(dir, a, b) == b);
    check_all(dir, b, expected);

    std::mt19937_64 rng(std::random_device{}());
    const int kills = scaled(30, 5);
    int interrupted = 0;
    for (int i = 0; i < kills; ++i) {
        const fs::path from = current_key(dir, a, b);
        const fs::path to = from == a ? b : a;
        ChildProcess child({checkpointctl, "rekey", "--dir", dir.string(), "--key-file",
                            from.string(), "--new-key-file", to.string()});
        std::this_thread::sleep_for(std::chrono::microseconds(
            std::uniform_int_distribution<long>(0, span + span / 4)(rng)));
        child.kill(SIGKILL);
        const int status = child.wait();
        if (status == 128 + SIGKILL) ++interrupted;
        // Whichever key opens it reads everything.
        check_all(dir, current_key(dir, a, b), expected);
    }
    std::cerr << "rekey_test: " << kills << " rekeys, " << interrupted
              << " killed before they ended (scale " << checkpoint::test::test_scale_percent()
              << "%)\n";
    // Finish towards b, from wherever it stands.
    const fs::path from = current_key(dir, a, b);
    const auto last =
        run_command({checkpointctl, "rekey", "--dir", dir.string(), "--key-file",
                     from == b ? a.string() : from.string(), "--new-key-file", b.string()});
    INFO(last.err);
    REQUIRE(last.exit_code == 0);
    CHECK(current_key(dir, a, b) == b);
    check_all(dir, b, expected);
    CheckpointManager manager(dir, keyed(b));
    CHECK(manager.verify().empty());
    const std::string head = last.out.substr(0, last.out.find('\n'));
    CHECK(manager.history_head() == head);
    // Only the new key's files are left, one per large output (temporary files of killed
    // writes are prune's, after its grace period).
    int files = 0;
    std::string suffix;
    for (const auto& entry : fs::directory_iterator(dir / "checkpoints.db-outputs")) {
        const std::string name = entry.path().filename().string();
        if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") continue;
        INFO(name);
        REQUIRE(name.size() == 64 + 1 + 16);
        if (suffix.empty()) suffix = name.substr(65);
        CHECK(name.substr(65) == suffix);
        ++files;
    }
    CHECK(files == 6);
    // checkpointctl: without a key, a wrong one, and a database without a key.
    CHECK(run_command({checkpointctl, "verify", "--dir", dir.string()}).exit_code == 10);
    CHECK(run_command({checkpointctl, "verify", "--dir", dir.string(), "--key-file", a.string()})
              .exit_code == 11);
    CHECK(run_command({checkpointctl, "verify", "--dir", dir.string(), "--key-file", b.string()})
              .exit_code == 0);
}
