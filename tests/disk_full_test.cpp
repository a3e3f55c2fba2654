// A full disk: a small tmpfs (root only, in a private mount namespace when possible) that
// the checkpoint database fills up. The failing write throws Error(DiskFull) (or Io) naming
// the file; every save acknowledged before is still there, nothing is half-written
// (integrity_check, verify()), and once space is freed saving works again. Without root, or
// when mount fails, each test says that it was skipped and why (WARN) and checks nothing.
#include <checkpoint/checkpoint_manager.hpp>

#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

namespace fs = std::filesystem;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::Status;
using checkpoint::test::RawDb;
using checkpoint::test::TempDir;

namespace {

Options quiet(bool read_only = false) {
    Options options;
    options.read_only = read_only;
    options.logger = std::make_shared<spdlog::logger>(
        "disk_full_test", std::make_shared<spdlog::sinks::null_sink_mt>());
    return options;
}

// Moves this process into a private mount namespace, so that its mounts are seen by no
// other process and vanish with it. Returns false (and mounts stay global, undone by
// TmpfsMount's destructor) when the kernel refuses.
bool enter_private_mount_namespace(std::string& why) {
    if (::unshare(CLONE_NEWNS) != 0) {
        why = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
        return false;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        why = std::string("mount --make-rprivate /: ") + std::strerror(errno);
        return false;
    }
    return true;
}

// A tmpfs of a given size mounted on a directory; unmounted on destruction.
class TmpfsMount {
public:
    TmpfsMount(fs::path where, const std::string& size) : where_(std::move(where)) {
        fs::create_directories(where_);
        const std::string data = "size=" + size + ",mode=0755";
        if (::mount("tmpfs", where_.c_str(), "tmpfs", 0, data.c_str()) == 0) {
            mounted_ = true;
        } else {
            error_ =
                "mount -t tmpfs -o " + data + " " + where_.string() + ": " + std::strerror(errno);
        }
    }
    ~TmpfsMount() {
        if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;

    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }
    // mount -o remount,size=SIZE
    bool resize(const std::string& size) {
        const std::string data = "size=" + size;
        return ::mount("tmpfs", where_.c_str(), "tmpfs", MS_REMOUNT, data.c_str()) == 0;
    }

private:
    fs::path where_;
    bool mounted_ = false;
    std::string error_;
};

// Why the test cannot run here, or nothing. Enters a private mount namespace if it can.
std::optional<std::string> cannot_run() {
    if (::geteuid() != 0) return "not root (mounting a tmpfs needs CAP_SYS_ADMIN)";
    std::string why;
    if (!enter_private_mount_namespace(why)) {
        std::cout << "disk_full_test: no private mount namespace (" << why
                  << "); mounting globally, unmounted at the end" << std::endl;
    }
    return std::nullopt;
}

void skip(const std::string& reason) {
    std::cout << "disk_full_test: SKIPPED (did not run): " << reason << std::endl;
    WARN("skipped: " << reason);
}

// Writes `bytes` bytes of filler into `file`; returns how many were written (less when the
// filesystem fills up).
std::size_t write_filler(const fs::path& file, std::size_t bytes) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    const std::string chunk(4096, 'f');
    std::size_t written = 0;
    while (written < bytes) {
        const ssize_t n = ::write(fd, chunk.data(), std::min(chunk.size(), bytes - written));
        if (n <= 0) break;
        written += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return written;
}

// A stage name of about 300 bytes: the history's index holds it, so each save takes room.
std::string stage_name(int index) {
    return "stage-" + std::to_string(index) + "-" + std::string(300, 'p');
}

struct Filled {
    std::vector<std::string> acknowledged;
    std::string failed_stage;
    ErrorCode code = ErrorCode::Internal;
    std::string message;
};

// Saves (some stages begun first, some failing with a long message, like a pipeline does)
// until a call throws; returns what was acknowledged before.
Filled save_until_full(CheckpointManager& manager) {
    Filled filled;
    for (int i = 0; i < 100'000; ++i) {
        const std::string stage = stage_name(i);
        try {
            if (i % 7 == 3) {
                manager.begin_stage(stage);
                manager.fail_stage(stage, std::string(5000, 'm'));
                manager.begin_stage(stage);
            }
            manager.save_checkpoint(stage);
            filled.acknowledged.push_back(stage);
        } catch (const Error& e) {
            filled.failed_stage = stage;
            filled.code = e.code();
            filled.message = e.what();
            return filled;
        }
    }
    FAIL("100000 saves fitted on the small tmpfs: the disk never filled up");
    return filled;
}

// The failing save's error: DiskFull (or Io), with a message that names the file.
void check_disk_full_error(const Filled& filled, const CheckpointManager& manager) {
    INFO("error after " << filled.acknowledged.size() << " saves: " << filled.message);
    CHECK((filled.code == ErrorCode::DiskFull || filled.code == ErrorCode::Io));
    CHECK(filled.message.find(manager.database_path().string()) != std::string::npos);
    if (filled.code == ErrorCode::DiskFull)
        CHECK(filled.message.find("disk is full") != std::string::npos);
    CHECK(filled.acknowledged.size() >= 3);  // the tmpfs had room for a few saves first
}

// Every acknowledged save is there; the failed one is not; the file is sound.
void check_nothing_lost(const fs::path& dir, const Filled& filled, bool read_only) {
    INFO((read_only ? "read-only" : "read-write") << " manager");
    std::optional<CheckpointManager> manager;
    REQUIRE_NOTHROW(manager.emplace(dir, quiet(read_only)));
    for (const auto& stage : filled.acknowledged) {
        INFO("acknowledged stage " << stage.substr(0, 12) << "...");
        CHECK(manager->has_checkpoint(stage));
    }
    // The failed save wrote nothing: its stage has no completed row.
    CHECK_FALSE(manager->has_checkpoint(filled.failed_stage));
    HistoryFilter failed;
    failed.stage = filled.failed_stage;
    failed.status = Status::Completed;
    CHECK(manager->history(failed).empty());
    HistoryFilter completed;
    completed.status = Status::Completed;
    CHECK(manager->history(completed).size() >= filled.acknowledged.size());
    const auto problems = manager->verify();
    INFO("verify(): " << (problems.empty() ? "" : problems.front()));
    CHECK(problems.empty());
    manager.reset();
    RawDb raw(dir / "checkpoints.db", SQLITE_OPEN_READONLY);
    CHECK(raw.value("PRAGMA integrity_check") == "ok");
}

}  // namespace

TEST_CASE("a full disk fails the save with DiskFull and loses nothing and freeing space heals",
          "[diskfull]") {
    if (const auto reason = cannot_run()) return skip(*reason);
    // Several sizes, so that the disk fills up at different moments (a save, a begin, a
    // failure with a long message; a new WAL page or a larger WAL frame).
    for (const char* size : {"1m", "640k", "800k", "1200k"}) {
        INFO("tmpfs size " << size);
        TempDir scratch;
        TmpfsMount tmpfs(scratch / "tmpfs", size);
        if (!tmpfs.mounted()) return skip(tmpfs.error());
        const fs::path filler = scratch / "tmpfs" / "filler";
        const fs::path dir = scratch / "tmpfs" / "checkpoints";
        REQUIRE(write_filler(filler, 256 * 1024) == 256 * 1024);

        Filled filled;
        {
            CheckpointManager manager(dir, quiet());
            filled = save_until_full(manager);
            check_disk_full_error(filled, manager);
            std::cout << "disk_full_test: " << filled.acknowledged.size()
                      << " saves acknowledged on a " << size << " tmpfs, then "
                      << checkpoint::to_string(filled.code) << ": " << filled.message.substr(0, 160)
                      << "..." << std::endl;
            // Reads keep working; the failed save is not there.
            CHECK(manager.has_checkpoint(filled.acknowledged.back()));
            CHECK_FALSE(manager.has_checkpoint(filled.failed_stage));
            // Another write either fits (then it counts) or fails the same way.
            try {
                manager.save_checkpoint("one-more");
                filled.acknowledged.push_back("one-more");
            } catch (const Error& e) {
                INFO(e.what());
                CHECK((e.code() == ErrorCode::DiskFull || e.code() == ErrorCode::Io));
                CHECK_FALSE(manager.has_checkpoint("one-more"));
            }
        }
        // Still full: a new manager reads every acknowledged save, and the file is sound.
        check_nothing_lost(dir, filled, true);
        check_nothing_lost(dir, filled, false);

        // Free the space: saving works again, and nothing was lost meanwhile.
        fs::remove(filler);
        {
            CheckpointManager manager(dir, quiet());
            REQUIRE_NOTHROW(manager.save_checkpoint(filled.failed_stage));
            REQUIRE_NOTHROW(manager.save_checkpoint("after-freeing"));
            CHECK(manager.has_checkpoint(filled.failed_stage));
            CHECK(manager.has_checkpoint("after-freeing"));
            CHECK(manager.verify().empty());
        }
        filled.acknowledged.push_back(filled.failed_stage);
        filled.failed_stage = "never-saved";
        check_nothing_lost(dir, filled, false);
    }
}

TEST_CASE("a full disk heals when the filesystem is made larger", "[diskfull]") {
    if (const auto reason = cannot_run()) return skip(*reason);
    TempDir scratch;
    TmpfsMount tmpfs(scratch / "tmpfs", "512k");
    if (!tmpfs.mounted()) return skip(tmpfs.error());
    const fs::path dir = scratch / "tmpfs" / "checkpoints";

    CheckpointManager manager(dir, quiet());
    Filled filled = save_until_full(manager);
    check_disk_full_error(filled, manager);
    REQUIRE(tmpfs.resize("4m"));
    // The same manager (its connection saw the failure) saves again.
    REQUIRE_NOTHROW(manager.save_checkpoint(filled.failed_stage));
    REQUIRE_NOTHROW(manager.save_checkpoint("after-growing"));
    CHECK(manager.has_checkpoint(filled.failed_stage));
    filled.acknowledged.push_back(filled.failed_stage);
    filled.acknowledged.push_back("after-growing");
    filled.failed_stage = "never-saved";
    check_nothing_lost(dir, filled, true);
    check_nothing_lost(dir, filled, false);
}

TEST_CASE("a database cannot be created on a full disk but can once space is freed", "[diskfull]") {
    if (const auto reason = cannot_run()) return skip(*reason);
    TempDir scratch;
    TmpfsMount tmpfs(scratch / "tmpfs", "256k");
    if (!tmpfs.mounted()) return skip(tmpfs.error());
    const fs::path filler = scratch / "tmpfs" / "filler";
    const fs::path dir = scratch / "tmpfs" / "checkpoints";
    fs::create_directories(dir);
    // Fill every block.
    CHECK(write_filler(filler, 1024 * 1024) < 1024 * 1024);

    try {
        CheckpointManager manager(dir, quiet());
        manager.save_checkpoint("first");
        FAIL("creating a database and saving on a full disk did not throw");
    } catch (const Error& e) {
        INFO(e.what());
        std::cout << "disk_full_test: creating on a full disk: " << checkpoint::to_string(e.code())
                  << ": " << e.what() << std::endl;
        CHECK((e.code() == ErrorCode::DiskFull || e.code() == ErrorCode::Io));
        CHECK(std::string(e.what()).find((dir / "checkpoints.db").string()) != std::string::npos);
    }

    fs::remove(filler);
    {
        CheckpointManager manager(dir, quiet());
        manager.save_checkpoint("first");
        CHECK(manager.has_checkpoint("first"));
        CHECK(manager.verify().empty());
    }
    RawDb raw(dir / "checkpoints.db", SQLITE_OPEN_READONLY);
    CHECK(raw.value("PRAGMA integrity_check") == "ok");
    CHECK(raw.value("PRAGMA user_version") == std::to_string(checkpoint::schema_version()));
}
