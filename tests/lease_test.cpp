// Stage leases, case by case (claim_stage, Lease, fencing), on both backends (a
// conformance program: tests/support/test_location.hpp). Several managers in one process
// stand for several workers: each is its own run with its own connection. The tests with
// worker processes are in lease_workers_test.cpp.
#include <checkpoint/checkpoint_manager.hpp>

#include "test_location.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Lease;
using checkpoint::LeaseOptions;
using checkpoint::SaveOptions;
using checkpoint::StageLease;
using checkpoint::Status;
using checkpoint::test::TestLocation;
using namespace std::chrono_literals;

namespace {

LeaseOptions options(std::chrono::milliseconds ttl, std::chrono::milliseconds wait,
                     bool heartbeat = true) {
    LeaseOptions lease;
    lease.ttl = ttl;
    lease.wait = wait;
    lease.heartbeat = heartbeat;
    return lease;
}

// The stored claim of `stage`, if it is unreleased.
std::optional<StageLease> lease_of(const CheckpointManager& manager, const std::string& stage) {
    for (const StageLease& lease : manager.leases())
        if (lease.stage == stage) return lease;
    return std::nullopt;
}

// Waits (polling, up to 60 s) until the claim on `stage` has lapsed by the database's clock.
void wait_until_lapsed(const CheckpointManager& manager, const std::string& stage) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        const auto lease = lease_of(manager, stage);
        if (!lease || !lease->live) return;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(5ms);
    }
}

// A lease on `stage` of `holder` that is lost: it lapsed (no heartbeat) and `other` took
// the stage over. Returns the holder's lease and the other's.
std::pair<Lease, Lease> lost_lease(CheckpointManager& holder, CheckpointManager& other,
                                   const std::string& stage) {
    auto mine = holder.claim_stage(stage, options(50ms, 0ms, false));
    REQUIRE(mine);
    wait_until_lapsed(holder, stage);
    auto theirs = other.claim_stage(stage, options(60s, 0ms));
    REQUIRE(theirs);
    CHECK(theirs->token() > mine->token());
    return {std::move(*mine), std::move(*theirs)};
}

std::size_t history_size(const CheckpointManager& manager) {
    return manager.history().size();
}

Error error_of(const std::function<void()>& call) {
    try {
        call();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no Error was thrown");
    return Error(ErrorCode::Internal, "unreachable");
}

}  // namespace

TEST_CASE("claim_stage returns nullopt for a completed, up-to-date stage", "[lease]") {
    TestLocation location;
    CheckpointManager manager(location.location());
    manager.save_checkpoint("done");
    CHECK_FALSE(manager.claim_stage("done").has_value());
    CHECK(manager.leases().empty());  // nothing claimed

    // A stage that is not up to date (its input was saved again) is claimed.
    manager.save_checkpoint("input");
    SaveOptions with_input;
    with_input.inputs = {"input"};
    manager.save_checkpoint("consumer", with_input);
    CHECK_FALSE(manager.claim_stage("consumer").has_value());
    manager.save_checkpoint("input");
    auto lease = manager.claim_stage("consumer");
    REQUIRE(lease);
    CHECK(lease->stage() == "consumer");
    CHECK(lease->token() == 1);
}

TEST_CASE("claim_stage throws Busy once wait runs out while another live lease holds it",
          "[lease]") {
    TestLocation location;
    CheckpointManager first(location.location());
    CheckpointManager second(location.location());
    auto held = first.claim_stage("stage", options(60s, 0ms));
    REQUIRE(held);
    for (const auto wait : {0ms, 30ms}) {
        const Error error = error_of([&] { second.claim_stage("stage", options(60s, wait)); });
        CHECK(error.code() == ErrorCode::Busy);
        const std::string message = error.what();
        CHECK(message.find("another worker holds it") != std::string::npos);
        CHECK(message.find(first.run_id()) != std::string::npos);
    }
    // The holder itself may not claim it twice.
    CHECK(error_of([&] { first.claim_stage("stage", options(60s, 0ms)); }).code() ==
          ErrorCode::InvalidArgument);
    // Nothing of the refused claims was written: the holder's claim is unchanged.
    const auto stored = lease_of(second, "stage");
    REQUIRE(stored);
    CHECK(stored->token == held->token());
    CHECK(stored->run_id == first.run_id());
    CHECK(stored->live);
}

TEST_CASE("bad lease options are refused and claim nothing", "[lease]") {
    TestLocation location;
    CheckpointManager manager(location.location());
    CHECK(error_of([&] { manager.claim_stage("s", options(0ms, 0ms)); }).code() ==
          ErrorCode::InvalidArgument);
    CHECK(error_of([&] { manager.claim_stage("s", options(60s, -1ms)); }).code() ==
          ErrorCode::InvalidArgument);
    CHECK(error_of([&] { manager.claim_stage("", options(60s, 0ms)); }).code() ==
          ErrorCode::InvalidArgument);
    CHECK(manager.leases().empty());
}

TEST_CASE("lease tokens strictly increase across holders", "[lease]") {
    TestLocation location;
    CheckpointManager first(location.location());
    CheckpointManager second(location.location());
    std::vector<std::int64_t> tokens;
    for (int round = 0; round < 3; ++round) {
        for (CheckpointManager* manager : {&first, &second}) {
            auto lease = manager->claim_stage("stage", options(60s, 0ms));
            REQUIRE(lease);
            tokens.push_back(lease->token());
        }  // released
    }
    // A lapsed claim taken over.
    {
        auto lapsing = first.claim_stage("stage", options(20ms, 0ms, false));
        REQUIRE(lapsing);
        tokens.push_back(lapsing->token());
        wait_until_lapsed(second, "stage");
        auto taken = second.claim_stage("stage", options(60s, 0ms));
        REQUIRE(taken);
        tokens.push_back(taken->token());
    }
    for (std::size_t i = 1; i < tokens.size(); ++i) {
        INFO("claim " << i);
        CHECK(tokens[i] > tokens[i - 1]);
    }
    // Other stages count on their own.
    auto other = first.claim_stage("other", options(60s, 0ms));
    REQUIRE(other);
    CHECK(other->token() == 1);
}

TEST_CASE("renew extends a live lease and throws LeaseLost once it is lost", "[lease]") {
    TestLocation location;
    CheckpointManager holder(location.location());
    CheckpointManager other(location.location());
    {
        auto lease = holder.claim_stage("kept", options(60s, 0ms, false));
        REQUIRE(lease);
        const auto before = lease_of(holder, "kept");
        REQUIRE(before);
        lease->renew();
        const auto after = lease_of(holder, "kept");
        REQUIRE(after);
        CHECK(after->expires_at >= before->expires_at);
        CHECK_FALSE(lease->lost());
    }
    auto [mine, theirs] = lost_lease(holder, other, "stage");
    CHECK(error_of([&] { mine.renew(); }).code() == ErrorCode::LeaseLost);
    CHECK(mine.lost());
    CHECK(error_of([&] { mine.renew(); }).code() == ErrorCode::LeaseLost);
    // The other's claim is untouched.
    const auto stored = lease_of(other, "stage");
    REQUIRE(stored);
    CHECK(stored->token == theirs.token());
    CHECK(stored->run_id == other.run_id());
    theirs.renew();

    // A claim that lapsed without being taken over cannot be renewed either.
    auto lapsed = holder.claim_stage("lapsed", options(20ms, 0ms, false));
    REQUIRE(lapsed);
    wait_until_lapsed(holder, "lapsed");
    CHECK(error_of([&] { lapsed->renew(); }).code() == ErrorCode::LeaseLost);
}

TEST_CASE("fenced begin, save and fail write nothing once the lease is lost", "[lease]") {
    TestLocation location;
    CheckpointManager holder(location.location());
    CheckpointManager other(location.location());
    const std::vector<std::pair<std::string, std::function<void()>>> writes = {
        {"begin", [&] { holder.begin_stage("begin"); }},
        {"save", [&] { holder.save_checkpoint("save"); }},
        {"save-options",
         [&] {
             SaveOptions save;
             save.output = std::string("bytes");
             save.metadata = {{"k", 1}};
             holder.save_checkpoint("save-options", save);
         }},
        {"fail", [&] { holder.fail_stage("fail", "boom"); }},
    };
    for (const auto& [stage, write] : writes) {
        INFO("stage " << stage);
        auto [mine, theirs] = lost_lease(holder, other, stage);
        const std::size_t rows = history_size(holder);
        // The database refuses it (the holder does not know yet that it lost the claim).
        CHECK_FALSE(mine.lost());
        const Error error = error_of(write);
        CHECK(error.code() == ErrorCode::LeaseLost);
        CHECK(std::string(error.what()).find("Nothing was written") != std::string::npos);
        CHECK(mine.lost());
        // Then the manager refuses it at once.
        CHECK(error_of(write).code() == ErrorCode::LeaseLost);
        CHECK(history_size(holder) == rows);
        CHECK_FALSE(holder.latest(stage).has_value());
    }
    // A write of a stage this manager holds no lease on is not fenced.
    holder.save_checkpoint("free");
    CHECK(holder.has_checkpoint("free"));
}

TEST_CASE("release lets another worker claim the stage at once", "[lease]") {
    TestLocation location;
    CheckpointManager first(location.location());
    CheckpointManager second(location.location());
    auto lease = first.claim_stage("stage", options(60s, 0ms));
    REQUIRE(lease);
    lease->release();
    lease->release();  // a second release does nothing
    CHECK(error_of([&] { lease->renew(); }).code() == ErrorCode::LeaseLost);
    auto next = second.claim_stage("stage", options(60s, 0ms));
    REQUIRE(next);
    CHECK(next->token() > lease->token());
    // A released lease no longer fences its manager's writes... of a stage it does not hold.
    first.save_checkpoint("elsewhere");
    // The destructor releases too.
    next.reset();
    auto third = first.claim_stage("stage", options(60s, 0ms));
    REQUIRE(third);
    CHECK(third->token() == lease->token() + 2);
}

TEST_CASE("rows written under a lease carry its token", "[lease]") {
    TestLocation location;
    CheckpointManager manager(location.location());
    bool ran = false;
    CHECK(manager.run_stage(
        "leased", [&] { ran = true; }, options(60s, 0ms)));
    CHECK(ran);
    CHECK_FALSE(manager.run_stage(
        "leased", [&] { FAIL("ran twice"); }, options(60s, 0ms)));
    manager.save_checkpoint("plain");
    HistoryFilter filter;
    filter.stage = "leased";
    const auto rows = manager.history(filter);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].status == Status::Started);
    CHECK(rows[1].status == Status::Completed);
    REQUIRE(rows[0].lease_token.has_value());
    CHECK(rows[1].lease_token == rows[0].lease_token);
    const auto latest = manager.latest("leased");
    REQUIRE(latest);
    CHECK(latest->lease_token == rows[1].lease_token);
    const auto plain = manager.latest("plain");
    REQUIRE(plain);
    CHECK_FALSE(plain->lease_token.has_value());
    CHECK(manager.leases().empty());  // run_stage released it

    // A failing stage records a Failed row under the lease, and the exception passes.
    CHECK_THROWS_AS(manager.run_stage(
                        "broken", [] { throw std::runtime_error("boom"); }, options(60s, 0ms)),
                    std::runtime_error);
    const auto broken = manager.latest("broken");
    REQUIRE(broken);
    CHECK(broken->status == Status::Failed);
    CHECK(broken->lease_token.has_value());
}

TEST_CASE("leases() shows the holder, and claim_stage waiting for it sees the stage completed",
          "[lease]") {
    TestLocation location;
    CheckpointManager holder(location.location());
    CheckpointManager waiter(location.location());
    auto lease = holder.claim_stage("stage", options(60s, 0ms));
    REQUIRE(lease);
    const auto stored = lease_of(waiter, "stage");
    REQUIRE(stored);
    CHECK(stored->run_id == holder.run_id());
    CHECK(stored->pid == static_cast<std::int64_t>(::getpid()));
    CHECK_FALSE(stored->host.empty());
    CHECK(stored->token == lease->token());
    CHECK(stored->live);
    CHECK(stored->expires_at > stored->claimed_at);

    std::optional<Lease> waited;
    std::thread wait_thread([&] { waited = waiter.claim_stage("stage"); });  // waits for ever
    holder.begin_stage("stage");
    holder.save_checkpoint("stage");
    lease->release();
    wait_thread.join();
    CHECK_FALSE(waited.has_value());  // completed meanwhile: nothing to run
    CHECK(waiter.leases().empty());
}

TEST_CASE("the heartbeat renews a lease until it is released", "[lease]") {
    TestLocation location;
    CheckpointManager holder(location.location());
    CheckpointManager other(location.location());
    auto lease = holder.claim_stage("stage", options(1500ms, 0ms, true));
    REQUIRE(lease);
    const auto first = lease_of(other, "stage");
    REQUIRE(first);
    // The heartbeat moves the expiry on (every ttl / 3); no timing is asserted, only that
    // it happens.
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        const auto now = lease_of(other, "stage");
        REQUIRE(now);
        REQUIRE(now->token == first->token);
        if (now->expires_at > first->expires_at) break;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(10ms);
    }
    lease.reset();  // stops the heartbeat and releases
    CHECK_FALSE(lease_of(other, "stage").has_value());
    auto next = other.claim_stage("stage", options(60s, 0ms));
    REQUIRE(next);
    CHECK(next->token() == first->token + 1);
}

TEST_CASE("a manager destroyed with a lease still held releases it", "[lease]") {
    TestLocation location;
    CheckpointManager other(location.location());
    std::optional<Lease> orphan;
    {
        CheckpointManager holder(location.location());
        orphan = holder.claim_stage("stage", options(60s, 0ms, true));
        REQUIRE(orphan);
    }
    CHECK_FALSE(lease_of(other, "stage").has_value());
    CHECK(other.claim_stage("stage", options(60s, 0ms)).has_value());
    orphan.reset();  // does nothing: its manager is gone
}
