// copy_history (checkpointctl copy): a whole history from SQLite to PostgreSQL and back,
// against the test server (tools/test.sh starts it; see tests/support/pg_database.hpp).
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/copy.hpp>
#include <checkpoint/lease.hpp>

#include "pg_database.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::copy_history;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::Run;
using checkpoint::SaveOptions;
using checkpoint::test::PgDatabase;
using checkpoint::test::TempDir;

namespace {

Options quiet(const std::string& pipeline = "default") {
    Options options;
    options.pipeline = pipeline;
    options.max_inline_output = 1000;  // larger outputs go to files on SQLite
    return options;
}

// A history with everything a copy must carry: two pipelines, versions, a failure, a
// stage clear, a pipeline-wide clear, metadata, fingerprints, inputs, inline and
// file-backed outputs, an unfinished run.
void write_history(const std::filesystem::path& location) {
    {
        CheckpointManager etl(location, quiet("etl"));
        etl.begin_stage("ingest");
        SaveOptions ingest;
        ingest.output = std::string(5000, 'i');  // a file on SQLite
        ingest.metadata = {{"rows", 1000}, {"source", "s3://bucket/ü"}};
        ingest.fingerprint = "fp-1";
        etl.save_checkpoint("ingest", ingest);
        etl.fail_stage("clean", "division by zero");
        SaveOptions clean;
        clean.output = std::string("small output\0with nul", 21);
        clean.inputs = {"ingest"};
        etl.save_checkpoint("clean", clean);
        etl.save_checkpoint("report");
        etl.clear_checkpoint("report");
        etl.clear_checkpoints();
        etl.save_checkpoint("ingest", ingest);  // version 2, the same output bytes
        // Rows written under leases carry their tokens (1, then 2 after a second claim).
        for (int claim = 0; claim < 2; ++claim) {
            auto lease = etl.claim_stage("leased");
            REQUIRE(lease);
            etl.begin_stage("leased");
            etl.save_checkpoint("leased");
            lease->release();
            etl.clear_checkpoint("leased");
        }
    }
    CheckpointManager ml(location, quiet("ml"));
    ml.save_checkpoint("train");
    ml.begin_stage("evaluate");  // left started: its run is closed when ml goes
}

std::vector<Checkpoint> all_history(const std::filesystem::path& location) {
    Options options = quiet();
    options.read_only = true;
    CheckpointManager reader(location, options);
    HistoryFilter filter;
    filter.all_pipelines = true;
    return reader.history(filter);
}

std::vector<Run> runs_of(const std::filesystem::path& location, const std::string& pipeline) {
    Options options = quiet(pipeline);
    options.read_only = true;
    return CheckpointManager(location, options).runs();
}

void check_same_history(const std::filesystem::path& a, const std::filesystem::path& b) {
    const auto left = all_history(a);
    const auto right = all_history(b);
    REQUIRE(left.size() == right.size());
    for (std::size_t i = 0; i < left.size(); ++i) {
        INFO("row " << i << " (id " << left[i].id << ")");
        CHECK(left[i].id == right[i].id);
        CHECK(left[i].pipeline == right[i].pipeline);
        CHECK(left[i].stage == right[i].stage);
        CHECK(left[i].status == right[i].status);
        CHECK(left[i].version == right[i].version);
        CHECK(left[i].timestamp == right[i].timestamp);
        CHECK(left[i].run_id == right[i].run_id);
        CHECK(left[i].duration == right[i].duration);
        CHECK(left[i].message == right[i].message);
        CHECK(left[i].metadata == right[i].metadata);
        CHECK(left[i].fingerprint == right[i].fingerprint);
        CHECK(left[i].lease_token == right[i].lease_token);
        CHECK(left[i].output.has_value() == right[i].output.has_value());
        if (left[i].output && right[i].output) {
            CHECK(left[i].output->size == right[i].output->size);
            CHECK(left[i].output->sha256 == right[i].output->sha256);
        }
        REQUIRE(left[i].inputs.size() == right[i].inputs.size());
        for (std::size_t j = 0; j < left[i].inputs.size(); ++j) {
            CHECK(left[i].inputs[j].stage == right[i].inputs[j].stage);
            CHECK(left[i].inputs[j].version == right[i].inputs[j].version);
            CHECK(left[i].inputs[j].id == right[i].inputs[j].id);
        }
    }
    for (const std::string pipeline : {"etl", "ml"}) {
        const auto left_runs = runs_of(a, pipeline);
        const auto right_runs = runs_of(b, pipeline);
        REQUIRE(left_runs.size() == right_runs.size());
        for (std::size_t i = 0; i < left_runs.size(); ++i) {
            CHECK(left_runs[i].run_id == right_runs[i].run_id);
            CHECK(left_runs[i].host == right_runs[i].host);
            CHECK(left_runs[i].pid == right_runs[i].pid);
            CHECK(left_runs[i].user == right_runs[i].user);
            CHECK(left_runs[i].started_at == right_runs[i].started_at);
            CHECK(left_runs[i].ended_at == right_runs[i].ended_at);
            CHECK(left_runs[i].outcome == right_runs[i].outcome);
            CHECK(left_runs[i].stages_completed == right_runs[i].stages_completed);
            CHECK(left_runs[i].stages_failed == right_runs[i].stages_failed);
        }
    }
}

}  // namespace

TEST_CASE("copy_history carries a whole history from SQLite to PostgreSQL and back",
          "[postgres][copy]") {
    TempDir dir;
    const auto source = dir / "source";
    const auto back = dir / "back";
    PgDatabase database;
    write_history(source);

    const auto there = copy_history(source, database.url(), quiet());
    CHECK(there.rows == static_cast<std::int64_t>(all_history(source).size()));
    CHECK(there.runs == 2);
    CHECK(there.outputs == 3);
    CHECK(there.output_bytes == 5000 + 21 + 5000);
    CHECK(there.to_location == database.url());
    check_same_history(source, database.url());

    const auto back_again = copy_history(database.url(), back, quiet());
    CHECK(back_again.rows == there.rows);
    check_same_history(source, back);

    for (const std::filesystem::path& location :
         {source, std::filesystem::path(database.url()), back}) {
        INFO(location);
        Options options = quiet("etl");
        CheckpointManager etl(location, options);
        CHECK(etl.verify().empty());
        // The derived state answers as at the source.
        CHECK(etl.has_checkpoint("ingest"));
        CHECK(etl.has_checkpoint("ingest", "fp-1"));
        CHECK_FALSE(etl.has_checkpoint("clean"));  // cleared by the pipeline-wide clear
        CHECK_FALSE(etl.has_checkpoint("report"));
        CHECK(etl.load_output("ingest") == std::string(5000, 'i'));
        CHECK(etl.load_output("clean", 1) == std::string("small output\0with nul", 21));
        CHECK(etl.latest("ingest")->version == 2);
        // New saves continue the versions and the ids.
        const auto last_id = all_history(location).back().id;
        etl.save_checkpoint("ingest");
        CHECK(etl.latest("ingest")->version == 3);
        CHECK(etl.latest("ingest")->id > last_id);
        // Lease tokens continue above the copied ones.
        auto lease = etl.claim_stage("leased");
        REQUIRE(lease);
        CHECK(lease->token() == 3);
        lease->release();
        CHECK(etl.verify().empty());
    }
}

TEST_CASE("copy_history refuses a target that holds anything, and leaves it as it was",
          "[postgres][copy]") {
    TempDir dir;
    PgDatabase database;
    write_history(dir / "source");
    {
        CheckpointManager other(database.url(), quiet("other"));
        other.save_checkpoint("mine");
    }
    const auto before = all_history(database.url());
    try {
        copy_history(dir / "source", database.url(), quiet());
        FAIL("the copy into a non-empty database did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::InvalidArgument);
        CHECK_THAT(e.what(), Catch::Contains("empty"));
    }
    const auto after = all_history(database.url());
    REQUIRE(after.size() == before.size());
    CHECK(after.front().stage == "mine");

    // The same database as source and target, spelled alike: refused too.
    try {
        copy_history(dir / "source", dir / "source", quiet());
        FAIL("a copy onto itself did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::InvalidArgument);
    }
}

TEST_CASE("copy_history checks each output on the way: a damaged source copies nothing",
          "[postgres][copy]") {
    TempDir dir;
    PgDatabase database;
    write_history(dir / "source");
    // Alter the inline output of 'clean' in the source file.
    checkpoint::test::exec_sql(dir / "source" / "checkpoints.db",
                               "UPDATE output_data SET data = CAST('altered!' AS BLOB)");
    try {
        copy_history(dir / "source", database.url(), quiet());
        FAIL("the copy of a damaged output did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::OutputDamaged);
    }
    CHECK(database.exec("SELECT count(*) FROM checkpoints") == "0");
    CHECK(database.exec("SELECT count(*) FROM runs") == "0");
}

TEST_CASE("a password in a location appears in no message", "[postgres][copy]") {
    TempDir dir;
    write_history(dir / "source");
    const std::string secret = "s3cr3t-pa55";
    const std::string url =
        "postgresql://nobody:" + secret + "@127.0.0.1:1/nowhere?connect_timeout=2";
    try {
        copy_history(dir / "source", url, quiet());
        FAIL("a copy to an unreachable server did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Unavailable);
        CHECK_THAT(e.what(), !Catch::Contains(secret));
        CHECK_THAT(e.what(), Catch::Contains("127.0.0.1:1"));
    }
}
