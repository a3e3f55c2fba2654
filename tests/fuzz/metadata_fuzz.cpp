// Fuzz target: the metadata JSON, both ways. The first byte picks the mode; the rest is
// the input.
//   0: the bytes as JSON text. When they parse to an object, save_checkpoint() with it as
//      SaveOptions::metadata must succeed and latest() must return an equal object, stored
//      as text that SQLite's json_valid() accepts; any other JSON value (but null) must be
//      refused with Error(InvalidArgument) and nothing written.
//   1: the bytes as one string value ({"text": <bytes>}): accepted and returned verbatim
//      when they are valid UTF-8, refused (InvalidArgument, nothing written) otherwise.
//   2: the bytes written by hand into the metadata column of a saved row (a damaged or
//      tampered database): latest() must return the object they encode, or throw
//      Error(Corrupt) — never crash, hang or return something else.
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/error.hpp>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "metadata_fuzz: %s\n", what);
    std::abort();
}

// One manager on a temporary directory per process, replaced now and then so that the
// database of a long run stays small, and a raw read-write connection to the same file.
class Fixture {
public:
    Fixture() { reopen(); }
    ~Fixture() { close(); }

    checkpoint::CheckpointManager& manager() { return *manager_; }

    std::int64_t query(const char* sql) {
        sqlite3_stmt* statement = nullptr;
        if (sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr) != SQLITE_OK ||
            sqlite3_step(statement) != SQLITE_ROW)
            fail("a raw query failed");
        const std::int64_t value = sqlite3_column_int64(statement, 0);
        sqlite3_finalize(statement);
        return value;
    }

    // Stores `text` as the metadata of the latest row of stage "tampered".
    void tamper(std::string_view text) {
        sqlite3_stmt* statement = nullptr;
        const char* sql =
            "UPDATE checkpoints SET metadata = ?1 WHERE id = "
            "(SELECT max(id) FROM checkpoints WHERE stage = 'tampered')";
        if (sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr) != SQLITE_OK ||
            sqlite3_bind_text(statement, 1, text.data(), static_cast<int>(text.size()),
                              SQLITE_TRANSIENT) != SQLITE_OK ||
            sqlite3_step(statement) != SQLITE_DONE)
            fail("tampering failed");
        sqlite3_finalize(statement);
    }

    void next_input() {
        if (++inputs_ % 20000 == 0) reopen();
    }

private:
    void reopen() {
        close();
        char pattern[] = "/tmp/checkpoint-fuzz-XXXXXX";
        if (!::mkdtemp(pattern)) std::abort();
        dir_ = pattern;
        checkpoint::Options options;
        options.durability = checkpoint::Durability::Normal;
        options.logger = std::make_shared<spdlog::logger>(
            "metadata_fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
        manager_.emplace(dir_, options);
        manager_->save_checkpoint("tampered");
        if (sqlite3_open_v2((dir_ / "checkpoints.db").c_str(), &db_, SQLITE_OPEN_READWRITE,
                            nullptr) != SQLITE_OK)
            std::abort();
        sqlite3_busy_timeout(db_, 10000);
    }

    void close() {
        manager_.reset();
        if (db_) sqlite3_close(db_), db_ = nullptr;
        if (!dir_.empty()) {
            std::error_code ignored;
            fs::remove_all(dir_, ignored);
        }
    }

    fs::path dir_;
    std::optional<checkpoint::CheckpointManager> manager_;
    sqlite3* db_ = nullptr;
    std::uint64_t inputs_ = 0;
};

// Saves `metadata` on stage "s": true when accepted (and checked), false when refused with
// InvalidArgument and nothing written.
bool save_and_check(Fixture& fixture, const nlohmann::json& metadata) {
    auto& manager = fixture.manager();
    const std::int64_t rows_before = fixture.query("SELECT count(*) FROM checkpoints");
    checkpoint::SaveOptions options;
    options.metadata = metadata;
    try {
        manager.save_checkpoint("s", options);
    } catch (const checkpoint::Error& e) {
        if (e.code() != checkpoint::ErrorCode::InvalidArgument) throw;  // a finding
        if (fixture.query("SELECT count(*) FROM checkpoints") != rows_before)
            fail("refused metadata wrote a row");
        return false;
    }
    const auto latest = manager.latest("s");
    if (!latest) fail("no checkpoint after a save");
    const nlohmann::json expected = metadata.is_null() ? nlohmann::json::object() : metadata;
    if (latest->metadata != expected) fail("metadata did not round-trip");
    if (fixture.query("SELECT metadata IS NULL OR json_valid(metadata) FROM checkpoints WHERE id = "
                      "(SELECT max(id) FROM checkpoints)") != 1)
        fail("stored metadata is not valid JSON for SQLite");
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static Fixture fixture;
    fixture.next_input();
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 3) {
        case 0: {
            const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
            if (parsed.is_discarded()) return 0;  // not JSON: nlohmann's parser, not ours
            const bool accepted = save_and_check(fixture, parsed);
            if (accepted != (parsed.is_object() || parsed.is_null()))
                fail(accepted ? "non-object metadata was accepted" : "an object was refused");
            return 0;
        }
        case 1: {
            const nlohmann::json object = {{"text", std::string(text)}};
            bool valid_utf8 = true;
            try {
                (void)object.dump();
            } catch (const nlohmann::json::type_error&) {
                valid_utf8 = false;
            }
            if (save_and_check(fixture, object) != valid_utf8)
                fail("a string was accepted or refused against its UTF-8 validity");
            return 0;
        }
        default: {
            fixture.tamper(text);
            std::optional<checkpoint::Checkpoint> latest;
            try {
                latest = fixture.manager().latest("tampered");
            } catch (const checkpoint::Error& e) {
                if (e.code() != checkpoint::ErrorCode::Corrupt) throw;  // a finding
                const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
                if (!parsed.is_discarded() && parsed.is_object())
                    fail("valid object metadata read as Corrupt");
                return 0;
            }
            if (!latest) fail("the tampered row vanished");
            const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
            if (parsed.is_discarded() || !parsed.is_object() || latest->metadata != parsed)
                fail("damaged metadata was returned as if sound");
            return 0;
        }
    }
}
