// Fuzz target: random bytes as a stage name. Either save_checkpoint() throws
// Error(InvalidArgument) and nothing is written to the database, or the save succeeds and
// has_checkpoint() and latest() give the very same bytes back. Whether the name is valid is
// decided independently here (Unicode's table of well-formed UTF-8 byte sequences), so a
// disagreement with lib/names.cpp is a finding too.
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/error.hpp>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

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

[[noreturn]] void fail(const char* what, std::string_view stage) {
    std::fprintf(stderr, "stage_name_fuzz: %s (stage of %zu bytes)\n", what, stage.size());
    std::abort();
}

// Well-formed UTF-8 per The Unicode Standard, table 3-7 (no NUL allowed either).
bool valid_name(std::string_view s) {
    if (s.empty() || s.size() > checkpoint::max_name_bytes) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    const auto in = [](unsigned char b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; };
    for (std::size_t i = 0; i < n;) {
        const unsigned char b = p[i];
        if (b == 0) return false;
        if (b <= 0x7F) {
            i += 1;
            continue;
        }
        unsigned lo = 0x80, hi = 0xBF;
        std::size_t len = 0;
        if (in(b, 0xC2, 0xDF)) len = 2;
        else if (b == 0xE0) len = 3, lo = 0xA0;
        else if (in(b, 0xE1, 0xEC) || in(b, 0xEE, 0xEF)) len = 3;
        else if (b == 0xED) len = 3, hi = 0x9F;
        else if (b == 0xF0) len = 4, lo = 0x90;
        else if (in(b, 0xF1, 0xF3)) len = 4;
        else if (b == 0xF4) len = 4, hi = 0x8F;
        else return false;
        if (i + len > n || !in(p[i + 1], lo, hi)) return false;
        for (std::size_t k = 2; k < len; ++k)
            if (!in(p[i + k], 0x80, 0xBF)) return false;
        i += len;
    }
    return true;
}

// One manager on a temporary directory per process, replaced now and then so that the
// database of a long run stays small. A second, raw connection sees whether anything was
// written: PRAGMA data_version changes whenever another connection commits.
class Fixture {
public:
    Fixture() { reopen(); }
    ~Fixture() { close(); }

    checkpoint::CheckpointManager& manager() { return *manager_; }

    std::int64_t data_version() { return query("PRAGMA data_version"); }
    std::int64_t last_row() { return query("SELECT coalesce(max(id), 0) FROM checkpoints"); }

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
            "stage_name_fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
        manager_.emplace(dir_, options);
        if (sqlite3_open_v2((dir_ / "checkpoints.db").c_str(), &db_, SQLITE_OPEN_READONLY,
                            nullptr) != SQLITE_OK)
            std::abort();
    }

    void close() {
        manager_.reset();
        if (db_) sqlite3_close(db_), db_ = nullptr;
        if (!dir_.empty()) {
            std::error_code ignored;
            fs::remove_all(dir_, ignored);
        }
    }

    std::int64_t query(const char* sql) {
        sqlite3_stmt* statement = nullptr;
        if (sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr) != SQLITE_OK ||
            sqlite3_step(statement) != SQLITE_ROW)
            std::abort();
        const std::int64_t value = sqlite3_column_int64(statement, 0);
        sqlite3_finalize(statement);
        return value;
    }

    fs::path dir_;
    std::optional<checkpoint::CheckpointManager> manager_;
    sqlite3* db_ = nullptr;
    std::uint64_t inputs_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Fixture fixture;
    fixture.next_input();
    const std::string_view stage(reinterpret_cast<const char*>(data), size);
    auto& manager = fixture.manager();
    const std::int64_t version_before = fixture.data_version();
    const std::int64_t row_before = fixture.last_row();
    bool rejected = false;
    try {
        manager.save_checkpoint(stage);
    } catch (const checkpoint::Error& e) {
        if (e.code() != checkpoint::ErrorCode::InvalidArgument) throw;  // a finding
        rejected = true;
    }
    if (rejected) {
        if (valid_name(stage)) fail("a valid UTF-8 name was rejected", stage);
        if (fixture.data_version() != version_before || fixture.last_row() != row_before)
            fail("a rejected name wrote to the database", stage);
        return 0;
    }
    if (!valid_name(stage)) fail("an invalid name was accepted", stage);
    if (fixture.last_row() <= row_before) fail("a save wrote no history row", stage);
    if (!manager.has_checkpoint(stage)) fail("has_checkpoint is false after a save", stage);
    const auto latest = manager.latest(stage);
    if (!latest) fail("latest() is empty after a save", stage);
    if (latest->stage != stage) fail("latest()->stage differs from the saved bytes", stage);
    if (latest->status != checkpoint::Status::Completed)
        fail("latest()->status is not completed after a save", stage);
    return 0;
}
