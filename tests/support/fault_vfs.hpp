// A test-only SQLite VFS that wraps the real "unix" VFS and is registered as the default
// VFS of the test process, so that the library (which opens with the default VFS) uses it
// unchanged. It can
//  - count the I/O calls of each kind and make the Nth call of one kind fail (once, or
//    from then on), with the error code a real failure would give;
//  - simulate a power loss, in the manner of SQLite's own crash tests (src/test6.c): every
//    write (and truncate) to a database, WAL or journal file since that file's last
//    successful xSync is pending; a power cut makes every later I/O fail, and reboot()
//    then keeps a random subset of the pending writes (whole writes, or torn at 512-byte
//    sectors), discards the rest and writes the result to the real files. Whatever a file
//    held at its last sync is durable.
//
// One FaultVfs at a time, created on the test's stack: its constructor registers the shim
// as the default VFS with a clean state, its destructor unregisters it and restores the
// previous default. Open no SQLite connection across its construction or destruction.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <string>

namespace checkpoint::test {

// The kinds of I/O call the shim counts and can fail.
enum class IoKind {
    Read,      // xRead: fails with SQLITE_IOERR_READ
    Write,     // xWrite: SQLITE_IOERR_WRITE, or SQLITE_FULL (a full disk)
    Sync,      // xSync: SQLITE_IOERR_FSYNC
    Lock,      // xLock: SQLITE_BUSY or SQLITE_IOERR_LOCK
    Open,      // xOpen: SQLITE_CANTOPEN
    Truncate,  // xTruncate: SQLITE_IOERR_TRUNCATE
    FileSize,  // xFileSize: SQLITE_IOERR_FSTAT
};
inline constexpr int io_kind_count = 7;
inline constexpr std::array<IoKind, io_kind_count> all_io_kinds{
    IoKind::Read, IoKind::Write,    IoKind::Sync,    IoKind::Lock,
    IoKind::Open, IoKind::Truncate, IoKind::FileSize};

// "read", "write", "sync", "lock", "open", "truncate", "file-size".
const char* to_string(IoKind kind);

// Calls made through the shim since the last reset_counts(), by kind.
using IoCounts = std::array<std::int64_t, io_kind_count>;

// What reboot() did to the pending writes.
struct RebootStats {
    std::int64_t files = 0;    // files that had pending writes
    std::int64_t applied = 0;  // pending writes kept whole
    std::int64_t dropped = 0;  // pending writes discarded
    std::int64_t torn = 0;     // pending writes kept in part (512-byte sectors)
};

class FaultVfs {
public:
    // Registers the shim as the default VFS, with no fault, no power cut, counts at zero
    // and real fsync() calls on.
    FaultVfs();
    // Unregisters the shim and makes the previous default VFS the default again.
    ~FaultVfs();
    FaultVfs(const FaultVfs&) = delete;
    FaultVfs& operator=(const FaultVfs&) = delete;

    // ---- Counting and fault injection ----

    void reset_counts();
    IoCounts counts() const;
    std::int64_t count(IoKind kind) const { return counts()[static_cast<int>(kind)]; }

    // Makes the nth call (1-based, counted from now) of `kind` fail with `error_code`; when
    // `persistent`, every later call of that kind fails too. Replaces any previous fault.
    void fail_nth(IoKind kind, std::int64_t nth, int error_code, bool persistent = false);
    // Removes the fault (if any).
    void clear_fault();
    // How many calls failed because of the current (or last cleared) fault.
    std::int64_t fault_hits() const;

    // How many times a connection slept through the shim (xSleep) since the shim was
    // registered: SQLite's busy handler sleeps while another connection holds a lock it
    // waits for, so a rising count means some call is blocked on a lock.
    std::int64_t sleeps() const;

    // Whether xSync really calls fsync(). Off makes tests on a real disk fast; the power
    // loss simulation does not need it (it decides what is durable itself).
    void set_real_sync(bool on);

    // ---- Power loss ----

    // From now on, remembers every write to a database, WAL or journal file made since
    // that file's last successful sync (data written before is durable).
    void track_durability(bool on);
    // Cuts the power after `writes` more successful writes: either at the first I/O call
    // of any kind after them (`at_next_write` false), or at the next write (true), so
    // that syncs and reads in between still succeed. From the cut on, every read, write,
    // sync, lock, open, truncate and file-size call fails (unlock, close and the shared
    // memory of WAL still work, so connections can be closed).
    void cut_power_after(std::int64_t writes, bool at_next_write);
    // Cuts the power now.
    void cut_power_now();
    bool power_is_cut() const;
    // "Reboots": for every file with pending writes, rebuilds the content it had at its
    // last sync, applies a random subset of the pending writes in order (each kept whole,
    // discarded, or torn: kept sector by sector at 512-byte granularity) and writes the
    // result to the real file. Then clears the cut and the pending writes (tracking stays
    // as it was). Call it with every connection closed.
    RebootStats reboot(std::mt19937_64& random);
};

}  // namespace checkpoint::test
