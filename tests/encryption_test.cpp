// Encryption at rest (README, "Security"), on SQLite (the cases not tagged [sqlite] on
// PostgreSQL too): with a key file, what a user put in — outputs (in the database and as files),
// metadata, failure messages — is in no byte of the database file, its -wal, or any output file;
// everything reads back with the key; without it writes and output reads are KeyRequired; a
// ciphertext moved to another row is OutputDamaged; copy_history into a new database with the key
// encrypts a plaintext history.
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/copy.hpp>
#include <checkpoint/keys.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "test_location.hpp"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::Options;
using checkpoint::SaveOptions;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TestBackend;
using checkpoint::test::TestLocation;
namespace fs = std::filesystem;

namespace {

const std::string marker = "SECRET-MARKER-7f3a9c";

Options keyed(const fs::path& key) {
    Options options;
    options.key_file = key;
    options.max_inline_output = 4096;  // small outputs in the database, large ones in files
    return options;
}

// A large output: the marker repeated, more than one secretstream chunk.
std::string large_output() {
    std::string bytes;
    while (bytes.size() < 300 * 1024) bytes += marker + " ";
    return bytes;
}

// Every regular file under `dir` (the database, its -wal, output files).
std::vector<fs::path> files_under(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
        if (entry.is_regular_file() && entry.path().filename() != "db.key")
            files.push_back(entry.path());
    return files;
}

void write_marked_history(const fs::path& dir, const Options& options) {
    CheckpointManager manager(dir, options);
    SaveOptions small;
    small.metadata = {{"note", marker}};
    small.output = "small " + marker;
    manager.save_checkpoint("small", small);
    SaveOptions large;
    large.output = large_output();
    large.metadata = {{"note", marker}};
    manager.save_checkpoint("large", large);
    manager.begin_stage("broken");
    manager.fail_stage("broken", "failed with " + marker);
}

ErrorCode code_of(const std::function<void()>& call) {
    try {
        call();
    } catch (const Error& e) {
        return e.code();
    }
    return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("with a key, no byte of the database, its -wal or an output file holds the marker",
          "[encryption][sqlite]") {
    TestLocation location(TestBackend::Sqlite);
    const fs::path key = location / "db.key";
    checkpoint::generate_key_file(key);
    // Every log line, debug included: none repeats what the database keeps encrypted.
    std::ostringstream log;
    Options writing = keyed(key);
    writing.logger = std::make_shared<spdlog::logger>(
        "encryption_test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
    writing.logger->set_level(spdlog::level::debug);
    write_marked_history(location.location(), writing);
    CHECK(log.str().find("stage 'broken' failed") != std::string::npos);
    CHECK(log.str().find("SECRET-MARKER") == std::string::npos);
    {
        // Read back with the key, while the -wal holds the writes.
        CheckpointManager manager(location.location(), keyed(key));
        CHECK(manager.load_output("small") == "small " + marker);
        CHECK(manager.load_output("large") == large_output());
        CHECK(manager.latest("small")->metadata["note"] == marker);
        CHECK(manager.latest("broken")->message == "failed with " + marker);
        CHECK(manager.verify().empty());
        const auto files = files_under(location.location());
        REQUIRE(files.size() >= 3);  // the database, its -wal, the large output's file
        bool wal_seen = false, output_file_seen = false;
        for (const fs::path& file : files) {
            INFO(file);
            const std::string bytes = read_file(file);
            CHECK(bytes.find(marker) == std::string::npos);
            CHECK(bytes.find("SECRET-MARKER") == std::string::npos);
            wal_seen |= file.string().size() > 4 &&
                        file.string().substr(file.string().size() - 4) == "-wal";
            output_file_seen |= file.parent_path().filename() == "checkpoints.db-outputs";
        }
        CHECK(wal_seen);
        CHECK(output_file_seen);
    }
    // What stays readable without the key: the history's shape.
    CheckpointManager reader(location.location());
    CHECK(reader.has_checkpoint("small"));
    CHECK(reader.latest("broken")->message == "(encrypted)");
    CHECK(code_of([&] { reader.load_output("small"); }) == ErrorCode::KeyRequired);
    CHECK(code_of([&] { reader.load_output("large"); }) == ErrorCode::KeyRequired);
    CHECK(code_of([&] { reader.save_checkpoint("small"); }) == ErrorCode::KeyRequired);
    CHECK(location.query("SELECT count(*) FROM checkpoints") == "4");
}

TEST_CASE("a ciphertext copied to another row does not decrypt: OutputDamaged",
          "[encryption][sqlite]") {
    TestLocation location(TestBackend::Sqlite);
    const fs::path key = location / "db.key";
    checkpoint::generate_key_file(key);
    {
        CheckpointManager manager(location.location(), keyed(key));
        SaveOptions a;
        a.output = "output of a";
        a.metadata = {{"who", "a"}};
        manager.save_checkpoint("a", a);
        SaveOptions b;
        b.output = "output of b";
        b.metadata = {{"who", "b"}};
        manager.save_checkpoint("b", b);
    }
    const std::string a = location.query("SELECT id FROM checkpoints WHERE stage = 'a'");
    const std::string b = location.query("SELECT id FROM checkpoints WHERE stage = 'b'");
    CheckpointManager manager(location.location(), keyed(key));
    SECTION("an output") {
        location.exec(
            "UPDATE output_data SET data = (SELECT data FROM output_data WHERE "
            "checkpoint_id = " +
            a + ") WHERE checkpoint_id = " + b);
        CHECK(code_of([&] { manager.load_output("b"); }) == ErrorCode::OutputDamaged);
        CHECK(manager.load_output("a") == "output of a");
    }
    SECTION("metadata") {
        location.exec(
            "UPDATE checkpoints SET metadata = (SELECT metadata FROM checkpoints WHERE "
            "id = " +
            a + ") WHERE id = " + b);
        CHECK(code_of([&] { manager.latest("b"); }) == ErrorCode::OutputDamaged);
    }
    SECTION("the same version of the same stage in another pipeline") {
        Options other = keyed(key);
        other.pipeline = "other";
        CheckpointManager second(location.location(), other);
        SaveOptions same;
        same.output = "output of other";
        second.save_checkpoint("a", same);
        const std::string o = location.query("SELECT id FROM checkpoints WHERE pipeline = 'other'");
        location.exec(
            "UPDATE output_data SET data = (SELECT data FROM output_data WHERE "
            "checkpoint_id = " +
            o + ") WHERE checkpoint_id = " + a);
        CHECK(code_of([&] { manager.load_output("a"); }) == ErrorCode::OutputDamaged);
    }
}

TEST_CASE("a wrong key changes nothing, and copy_history with a key encrypts a plaintext history",
          "[encryption][sqlite]") {
    TestLocation location(TestBackend::Sqlite);
    const fs::path key = location / "db.key";
    const fs::path other = location / "other.key";
    checkpoint::generate_key_file(key);
    checkpoint::generate_key_file(other);
    const fs::path plain = location / "plain";
    write_marked_history(plain, Options{});
    const fs::path encrypted = location / "encrypted";
    Options options = keyed(key);
    checkpoint::copy_history(plain, encrypted, options);
    const std::string before = read_file(encrypted / "checkpoints.db");
    CHECK(code_of([&] { CheckpointManager manager(encrypted, keyed(other)); }) ==
          ErrorCode::WrongKey);
    CHECK(read_file(encrypted / "checkpoints.db") == before);
    CheckpointManager manager(encrypted, options);
    CHECK(manager.load_output("large") == large_output());
    CHECK(manager.latest("broken")->message == "failed with " + marker);
    CHECK(manager.verify().empty());
    for (const fs::path& file : files_under(encrypted)) {
        INFO(file);
        CHECK(read_file(file).find(marker) == std::string::npos);
    }
    // checkpointctl: the exit codes of the key errors.
    const std::string ctl = std::string(CHECKPOINT_BINARY_DIR) + "/tools/checkpointctl";
    CHECK(run_command({ctl, "seal", "--dir", encrypted.string()}).exit_code == 10);
    CHECK(run_command({ctl, "verify", "--dir", encrypted.string(), "--key-file", other.string()})
              .exit_code == 11);
    const auto sealed =
        run_command({ctl, "seal", "--dir", encrypted.string(), "--key-file", key.string()});
    REQUIRE(sealed.exit_code == 0);
    const std::string head = sealed.out.substr(0, sealed.out.find('\n'));
    CHECK(run_command({ctl, "verify", "--dir", encrypted.string(), "--key-file", key.string(),
                       "--expect-head", head})
              .exit_code == 0);
}

TEST_CASE(
    "on every backend: the marker is not stored, everything reads back with the key, "
    "and a moved ciphertext is OutputDamaged",
    "[encryption]") {
    TestLocation location;
    const fs::path key = location / "db.key";
    checkpoint::generate_key_file(key);
    write_marked_history(location.location(), keyed(key));
    CheckpointManager manager(location.location(), keyed(key));
    CHECK(manager.load_output("small") == "small " + marker);
    CHECK(manager.load_output("large") == large_output());
    CHECK(manager.latest("large")->metadata["note"] == marker);
    CHECK(manager.latest("broken")->message == "failed with " + marker);
    CHECK(manager.verify().empty());
    CHECK(location.query("SELECT count(*) FROM checkpoints WHERE key_id IS NULL") == "0");
    if (location.is_postgres()) {
        const auto dump = run_command({"pg_dump", "-d", location.pg()->url()});
        REQUIRE(dump.exit_code == 0);
        CHECK(dump.out.find("CREATE TABLE") != std::string::npos);
        CHECK(dump.out.find(marker) == std::string::npos);
        CHECK(dump.out.find("SECRET-MARKER") == std::string::npos);
    } else {
        for (const fs::path& file : files_under(location.location())) {
            INFO(file);
            CHECK(read_file(file).find(marker) == std::string::npos);
        }
    }
    CheckpointManager reader(location.location());
    CHECK(reader.latest("broken")->message == "(encrypted)");
    CHECK(code_of([&] { reader.load_output("small"); }) == ErrorCode::KeyRequired);
    // The small output's ciphertext put in the place of the other small one's.
    SaveOptions other;
    other.output = "other " + marker;
    manager.save_checkpoint("other", other);
    const std::string small = location.query("SELECT id FROM checkpoints WHERE stage = 'small'");
    const std::string moved = location.query("SELECT id FROM checkpoints WHERE stage = 'other'");
    location.exec(location.is_postgres()
                      ? "UPDATE output_chunks SET data = (SELECT data FROM output_chunks WHERE "
                        "checkpoint_id = " +
                            small + " AND chunk = 0) WHERE checkpoint_id = " + moved
                      : "UPDATE output_data SET data = (SELECT data FROM output_data WHERE "
                        "checkpoint_id = " +
                            small + ") WHERE checkpoint_id = " + moved);
    CHECK(code_of([&] { manager.load_output("other"); }) == ErrorCode::OutputDamaged);
    CHECK(manager.load_output("small") == "small " + marker);
}

TEST_CASE(
    "verify decrypts every encrypted output: one that fails to authenticate is a problem "
    "naming its row",
    "[encryption][verify]") {
    TestLocation location;
    const fs::path key = location / "db.key";
    checkpoint::generate_key_file(key);
    write_marked_history(location.location(), keyed(key));
    CheckpointManager manager(location.location(), keyed(key));
    REQUIRE(manager.verify().empty());
    const std::string small = location.query("SELECT id FROM checkpoints WHERE stage = 'small'");
    // One byte of the ciphertext changed (PostgreSQL), or all of it zeroed (SQLite): same
    // size, so only decrypting finds it.
    location.exec(location.is_postgres()
                      ? "UPDATE output_chunks SET data = set_byte(data, 40, 255 - get_byte(data, "
                        "40)) WHERE checkpoint_id = " +
                            small
                      : "UPDATE output_data SET data = zeroblob(length(data)) WHERE "
                        "checkpoint_id = " +
                            small);
    const auto problems = manager.verify();
    INFO(problems.size() << " problems; first: " << (problems.empty() ? "" : problems.front()));
    REQUIRE(problems.size() == 1);
    CHECK(problems.front().find("checkpoints row " + small) != std::string::npos);
    CHECK(code_of([&] { manager.load_output("small"); }) == ErrorCode::OutputDamaged);
    CHECK(manager.load_output("large") == large_output());
}

TEST_CASE(
    "a plaintext database takes nothing for a ciphertext: a message that looks sealed "
    "reads as written",
    "[encryption]") {
    TestLocation location;
    CheckpointManager manager(location.location());
    const std::string text = "ckpt-enc1:not a ciphertext";
    manager.begin_stage("s");
    manager.fail_stage("s", text);
    CHECK(manager.latest("s")->message == text);
    CHECK(manager.history()[1].message == text);
}

TEST_CASE("a large output file damaged in its middle is OutputDamaged, with a key or without",
          "[encryption][sqlite]") {
    // Large enough to be read in several pieces, each hashed on a second thread while the
    // next is read (or decrypted): the read fails (encrypted: a chunk does not authenticate)
    // or the hash differs (plain) while that thread may still hold an earlier piece.
    std::string output(6u << 20, '\0');
    for (std::size_t i = 0; i < output.size(); ++i)
        output[i] = static_cast<char>((i * 2654435761u) >> 13);
    for (const bool encrypted : {true, false}) {
        INFO((encrypted ? "with a key" : "without a key"));
        TestLocation location;
        const fs::path key = location / "db.key";
        checkpoint::generate_key_file(key);
        Options options = keyed(key);
        if (!encrypted) options.key_file.clear();
        CheckpointManager manager(location.location(), options);
        SaveOptions save;
        save.output = output;
        manager.save_checkpoint("large", save);
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(location / "checkpoints.db-outputs"))
            files.push_back(entry.path());
        REQUIRE(files.size() == 1);
        {
            std::fstream file(files.front(), std::ios::in | std::ios::out | std::ios::binary);
            REQUIRE(file);
            file.seekg(static_cast<std::streamoff>(fs::file_size(files.front()) / 2));
            char byte = 0;
            file.read(&byte, 1);
            file.seekp(static_cast<std::streamoff>(fs::file_size(files.front()) / 2));
            byte = static_cast<char>(~byte);
            file.write(&byte, 1);
            REQUIRE(file);
        }
        CHECK(code_of([&] { manager.load_output("large"); }) == ErrorCode::OutputDamaged);
        CHECK(code_of([&] { manager.load_output("large"); }) == ErrorCode::OutputDamaged);
    }
}
