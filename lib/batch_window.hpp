// The group commit's batch window (CheckpointManager's submit(); README, "Durability and
// concurrency"). Backend-neutral, no I/O: the manager feeds it each batch's size and commit
// time, and asks it how long a new batch's leader may wait for more writes.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>

namespace checkpoint::detail {

// Without a window, N threads saving in a loop alternate between a batch of 1 (the first
// writer back after a commit leads at once) and a batch of N-1 (the others, back a moment
// later), so they share about two commits per round instead of one. With it, a leader that
// finds fewer writes queued than the recent batches held waits for the others, until as
// many are queued or the window closes, whichever comes first.
//
// A lone writer never waits: while every recent batch held one write, expected() is 1 and
// the leader's own write fills it. After a burst of N writers, a writer left alone waits
// once, at most half a recent commit (capped at max_wait: a write that waits costs less
// than a commit of its own); that wait ends unfilled, and the window then expects one write
// (missed()). The window never reorders writes, never drops one, and never changes
// when a write is durable: each call still returns only after its own batch committed.
//
// Not thread-safe: the manager calls it under its queue mutex.
class BatchWindow {
public:
    using Duration = std::chrono::steady_clock::duration;
    static constexpr std::size_t history = 4;
    static constexpr Duration max_wait = std::chrono::milliseconds(2);

    // How many writes the next batch should hold: the largest of the last `history` batches.
    std::size_t expected() const { return *std::max_element(sizes_.begin(), sizes_.end()); }

    // How long a leader that finds `queued` writes (its own included) may wait for more:
    // zero when that is as many as expected().
    Duration wait_for(std::size_t queued) const {
        if (queued >= expected()) return Duration::zero();
        return std::min(commit_time_ / 2, max_wait);
    }

    // When a wait ended without as many writes as expected: the others are not coming (a
    // writer left alone after a burst), so the window expects no more than `queued` until
    // larger batches are recorded again.
    void missed(std::size_t queued) { sizes_.fill(std::max<std::size_t>(queued, 1)); }

    // After each batch: how many writes it held and how long its commit took.
    void record(std::size_t size, Duration took) {
        sizes_[next_] = size;
        next_ = (next_ + 1) % history;
        commit_time_ = commit_time_ == Duration::zero() ? took : (commit_time_ * 3 + took) / 4;
    }

private:
    std::array<std::size_t, history> sizes_{1, 1, 1, 1};
    std::size_t next_ = 0;
    Duration commit_time_ = Duration::zero();  // a moving average
};

}  // namespace checkpoint::detail
