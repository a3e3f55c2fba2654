// The group commit's batch window (lib/batch_window.hpp; README, "Durability and
// concurrency"): a lone writer never waits; after a burst of writers the leader waits at
// most half a recent commit for the others, and a writer left alone waits once.
// Then real threads sharing one manager, a burst then a lone thread: nothing lost or
// reordered, every save durable and chained.
#include <checkpoint/checkpoint_manager.hpp>

#include "batch_window.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using checkpoint::CheckpointManager;
using checkpoint::detail::BatchWindow;
using namespace std::chrono_literals;

TEST_CASE("a lone writer never waits for a batch", "[concurrency][batch]") {
    BatchWindow window;
    CHECK(window.expected() == 1);
    CHECK(window.wait_for(1) == BatchWindow::Duration::zero());
    for (int i = 0; i < 1000; ++i) {
        window.record(1, std::chrono::milliseconds(1 + i % 7));
        REQUIRE(window.wait_for(1) == BatchWindow::Duration::zero());
    }
}

TEST_CASE("after a burst the leader waits at most half a commit, then forgets the burst",
          "[concurrency][batch]") {
    BatchWindow window;
    window.record(8, 400us);
    CHECK(window.expected() == 8);
    CHECK(window.wait_for(1) == 200us);  // half the commit it would otherwise wait for
    CHECK(window.wait_for(7) == 200us);
    CHECK(window.wait_for(8) == BatchWindow::Duration::zero());  // full: commit at once
    CHECK(window.wait_for(9) == BatchWindow::Duration::zero());

    SECTION("a slow disk: the wait is capped") {
        window.record(8, 50ms);
        CHECK(window.wait_for(1) == BatchWindow::max_wait);
    }
    SECTION("alone again: the first wait goes unfilled, and then it never waits") {
        std::size_t waited = 0;
        for (int i = 0; i < 20; ++i) {
            if (window.wait_for(1) > BatchWindow::Duration::zero()) {
                ++waited;
                window.missed(1);  // nobody came (what submit() does when the wait ends)
            }
            window.record(1, 400us);
        }
        CHECK(waited == 1);
        CHECK(window.expected() == 1);
        CHECK(window.wait_for(1) == BatchWindow::Duration::zero());
    }
    SECTION("a wait that ends short of the burst lowers what is expected, a batch raises it") {
        window.missed(6);
        CHECK(window.expected() == 6);
        CHECK(window.wait_for(6) == BatchWindow::Duration::zero());
        window.record(8, 400us);
        CHECK(window.expected() == 8);
    }
    SECTION("without missed waits, a burst is forgotten after `history` lone batches") {
        for (std::size_t i = 0; i < BatchWindow::history; ++i) {
            CHECK(window.wait_for(1) > BatchWindow::Duration::zero());
            window.record(1, 400us);
        }
        CHECK(window.wait_for(1) == BatchWindow::Duration::zero());
    }
}

TEST_CASE("threads sharing a manager, then a lone thread: every durable save is kept, in order",
          "[concurrency][batch]") {
    checkpoint::test::TempDir dir;
    CheckpointManager manager(dir.path());  // defaults: Durability::Full
    constexpr int threads = 8;
    constexpr int per_thread = 15;
    std::atomic<int> failures{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            try {
                for (int i = 0; i < per_thread; ++i) {
                    const std::string stage = "t" + std::to_string(t) + "-" + std::to_string(i);
                    manager.save_checkpoint(stage);
                    // Returned: committed, and visible to this thread at once.
                    if (!manager.has_checkpoint(stage)) ++failures;
                }
            } catch (...) {
                ++failures;
            }
        });
    }
    for (auto& worker : workers) worker.join();
    CHECK(failures == 0);
    // Alone now (the window still remembers the burst): each save returns committed.
    for (int i = 0; i < 10; ++i) {
        const std::string stage = "alone-" + std::to_string(i);
        manager.save_checkpoint(stage);
        REQUIRE(manager.has_checkpoint(stage));
    }
    CHECK(manager.history().size() == threads * per_thread + 10);
    std::vector<std::string> problems = manager.verify();
    INFO(problems.size() << " problems");
    CHECK(problems.empty());
    // Each thread's saves are in its own order in the history (ids grow).
    for (int t = 0; t < threads; ++t) {
        std::int64_t last = 0;
        for (int i = 0; i < per_thread; ++i) {
            const auto row = manager.latest("t" + std::to_string(t) + "-" + std::to_string(i));
            REQUIRE(row);
            CHECK(row->id > last);
            last = row->id;
        }
    }
}
