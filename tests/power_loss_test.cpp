// Power loss: through a test VFS (support/fault_vfs.hpp) that keeps every write since a
// file's last fsync pending, a manager saves stages in a loop until the power is cut at a
// random moment (after a random number of writes). The manager is abandoned, and at the
// "reboot" a random subset of the pending writes reaches the files (some torn at 512-byte
// sectors), as in SQLite's own crash tests. Then a fresh manager opens the database:
//  - Durability::Full: every save acknowledged before the cut is there;
//  - Durability::Normal: the saves there are a prefix of those made (only the latest lost);
// and in both the database passes integrity_check, verify() finds nothing and a further
// save works. The seed is printed; set CHECKPOINT_TEST_SEED to replay one.
// CHECKPOINT_TEST_SCALE (support/scale.hpp) scales the number of cuts (the sanitizer runs
// of tools/test.sh); unset, 100 per durability.
#include <checkpoint/checkpoint_manager.hpp>

#include "fault_vfs.hpp"
#include "raw_db.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Durability;
using checkpoint::Error;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::Status;
using checkpoint::test::FaultVfs;
using checkpoint::test::RawDb;
using checkpoint::test::RebootStats;
using checkpoint::test::TempDir;

namespace {

// At least 20 cuts at any scale: enough that some pending writes are torn and some dropped
// (about 0.8 torn writes per cut with Durability::Full), which the test checks happened.
int cuts_per_durability() {
    return checkpoint::test::scaled(100, 20);
}

std::uint64_t test_seed() {
    if (const char* text = std::getenv("CHECKPOINT_TEST_SEED"); text && *text)
        return std::strtoull(text, nullptr, 10);
    return std::random_device{}();
}

Options options_for(Durability durability) {
    Options options;
    options.durability = durability;
    options.logger = std::make_shared<spdlog::logger>(
        "power_loss", std::make_shared<spdlog::sinks::null_sink_mt>());
    options.busy_timeout = std::chrono::milliseconds(5'000);
    return options;
}

// The stage saved by the ith save of a cut: a few stages, so versions climb too.
std::string stage_of(std::size_t i) {
    return "stage" + std::to_string(i % 7);
}

struct Totals {
    std::int64_t cuts = 0;
    std::int64_t attempted = 0;     // saves started
    std::int64_t acknowledged = 0;  // saves that returned before the cut
    std::int64_t present = 0;       // saves found after the reboot
    std::int64_t lost = 0;          // acknowledged saves missing after the reboot
    std::int64_t inconsistent = 0;  // reboots after which the database was not sound
    std::int64_t cuts_in_open = 0;  // cuts that hit the first open (creation, migration)
    std::int64_t cuts_idle = 0;     // cuts between calls (no write in progress)
    RebootStats writes;             // what the reboots did with the pending writes
};

void run_cuts(Durability durability, const char* name) {
    const std::uint64_t seed = test_seed();
    std::cout << "power_loss_test: " << name << ": seed " << seed
              << " (CHECKPOINT_TEST_SEED=" << seed << " replays it)" << std::endl;
    checkpoint::test::announce_scale(std::string("power_loss_test: ") + name,
                                     std::to_string(cuts_per_durability()) + " cuts");
    std::mt19937_64 random(seed);
    FaultVfs vfs;
    vfs.set_real_sync(false);  // what is durable is decided by the simulation, not the disk
    const Options options = options_for(durability);
    Totals totals;

    for (int cut = 0; cut < cuts_per_durability(); ++cut) {
        TempDir dir;
        // Mostly within the first saves; sometimes late enough for a WAL checkpoint.
        const std::int64_t max_writes =
            std::uniform_int_distribution<int>(0, 4)(random) == 0 ? 6'000 : 400;
        const std::int64_t writes =
            std::uniform_int_distribution<std::int64_t>(0, max_writes)(random);
        const bool at_next_write = std::uniform_int_distribution<int>(0, 1)(random) == 1;
        INFO("seed " << seed << ", cut " << cut << ": power cut after " << writes << " writes"
                     << (at_next_write ? " (at the next write)" : " (at the next I/O)"));

        vfs.track_durability(true);
        vfs.cut_power_after(writes, at_next_write);
        std::vector<std::string> attempted;
        std::size_t acknowledged = 0;
        bool opened = false;
        try {
            CheckpointManager manager(dir.path(), options);
            opened = true;
            for (std::size_t i = 0; i < 100'000; ++i) {
                attempted.push_back(stage_of(i));
                manager.save_checkpoint(attempted.back());
                ++acknowledged;
                if (vfs.power_is_cut()) break;  // the cut came after the save's last I/O
            }
        } catch (const Error& e) {
            // The cut: the call in progress (and the manager's closing) fails.
            INFO(e.what());
            REQUIRE(vfs.power_is_cut());
        }
        if (!vfs.power_is_cut()) {
            ++totals.cuts_idle;
            vfs.cut_power_now();
        }
        if (!opened) ++totals.cuts_in_open;

        const RebootStats stats = vfs.reboot(random);
        vfs.track_durability(false);
        totals.writes.files += stats.files;
        totals.writes.applied += stats.applied;
        totals.writes.dropped += stats.dropped;
        totals.writes.torn += stats.torn;
        ++totals.cuts;
        totals.attempted += static_cast<std::int64_t>(attempted.size());
        totals.acknowledged += static_cast<std::int64_t>(acknowledged);

        const auto db_path = dir / "checkpoints.db";
        bool sound = true;
        if (std::filesystem::exists(db_path) && std::filesystem::file_size(db_path) > 0) {
            RawDb raw(db_path);
            const std::string integrity = raw.value("PRAGMA integrity_check");
            CHECK(integrity == "ok");
            sound = sound && integrity == "ok";
        }
        std::unique_ptr<CheckpointManager> reopened;
        try {
            reopened = std::make_unique<CheckpointManager>(dir.path(), options);
        } catch (const Error& e) {
            FAIL_CHECK("after the reboot the database does not open: " << e.what());
            ++totals.inconsistent;
            continue;
        }
        const auto problems = reopened->verify();
        for (const auto& problem : problems) INFO("verify: " << problem);
        CHECK(problems.empty());
        sound = sound && problems.empty();

        HistoryFilter completed;
        completed.status = Status::Completed;
        std::vector<std::string> present;
        for (const Checkpoint& row : reopened->history(completed)) present.push_back(row.stage);
        totals.present += static_cast<std::int64_t>(present.size());
        INFO(attempted.size() << " saves attempted, " << acknowledged << " acknowledged, "
                              << present.size() << " present after the reboot");
        const bool prefix = present.size() <= attempted.size() &&
                            std::equal(present.begin(), present.end(), attempted.begin());
        CHECK(prefix);
        sound = sound && prefix;
        if (present.size() < acknowledged)
            totals.lost += static_cast<std::int64_t>(acknowledged - present.size());
        if (durability == Durability::Full) CHECK(present.size() >= acknowledged);

        reopened->save_checkpoint("after_reboot");
        CHECK(reopened->has_checkpoint("after_reboot"));
        if (!sound) ++totals.inconsistent;
    }

    std::cout << "power_loss_test: " << name << ": " << totals.cuts << " cuts ("
              << totals.cuts_in_open << " during the first open, " << totals.cuts_idle
              << " between calls), " << totals.attempted << " saves attempted, "
              << totals.acknowledged << " acknowledged saves, " << totals.present
              << " present after reboots, " << totals.lost << " lost, " << totals.inconsistent
              << " inconsistent; pending writes at the cuts: " << totals.writes.applied
              << " applied, " << totals.writes.torn << " torn, " << totals.writes.dropped
              << " dropped" << std::endl;
    CHECK(totals.inconsistent == 0);
    if (durability == Durability::Full) CHECK(totals.lost == 0);
    CHECK(totals.writes.dropped > 0);  // the cuts did lose pending writes
    CHECK(totals.writes.torn > 0);
}

}  // namespace

TEST_CASE("power loss with Durability::Full: every acknowledged save survives", "[power]") {
    run_cuts(Durability::Full, "Durability::Full");
}

TEST_CASE("power loss with Durability::Normal: consistent, only the latest saves lost", "[power]") {
    run_cuts(Durability::Normal, "Durability::Normal");
}
