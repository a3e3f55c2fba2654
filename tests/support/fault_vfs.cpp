#include "fault_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace checkpoint::test {

namespace {

constexpr std::int64_t sector = 512;

// One pending write or truncate of a file, with what it replaced (to undo it).
struct PendingOp {
    bool truncate = false;
    std::int64_t offset = 0;  // write: where; truncate: the new size
    std::string data;         // write: the bytes written
    std::int64_t old_size = 0;
    std::string old_bytes;  // the bytes the op overwrote (or cut off), from `offset`
};

struct State {
    std::mutex mutex;
    sqlite3_vfs* real = nullptr;
    sqlite3_vfs* previous_default = nullptr;
    sqlite3_vfs shim{};
    bool installed = false;

    IoCounts counts{};

    bool fault_armed = false;
    IoKind fault_kind = IoKind::Read;
    std::int64_t fault_nth = 0;
    int fault_code = SQLITE_IOERR;
    bool fault_persistent = false;
    std::int64_t fault_seen = 0;
    std::int64_t fault_hits = 0;

    bool real_sync = true;
    std::int64_t sleeps = 0;

    bool tracking = false;
    bool cut_armed = false;
    std::int64_t writes_left = 0;
    bool cut_at_next_write = false;
    bool cut = false;
    std::map<std::string, std::vector<PendingOp>> pending;  // by file name
};

State& state() {
    static State* s = new State;  // never destroyed: SQLite may outlive static destructors
    return *s;
}

struct ShimFile {
    sqlite3_file base;
    sqlite3_file* real;
    bool tracked;       // a database, WAL or journal file: its writes can be pending
    std::string* path;  // the file's name (nullptr for a temporary file)
};

ShimFile* shim(sqlite3_file* file) {
    return reinterpret_cast<ShimFile*>(file);
}
sqlite3_file* real(sqlite3_file* file) {
    return shim(file)->real;
}

constexpr std::size_t real_offset = (sizeof(ShimFile) + 15) / 16 * 16;

int default_error(IoKind kind) {
    switch (kind) {
        case IoKind::Read:
            return SQLITE_IOERR_READ;
        case IoKind::Write:
            return SQLITE_IOERR_WRITE;
        case IoKind::Sync:
            return SQLITE_IOERR_FSYNC;
        case IoKind::Lock:
            return SQLITE_IOERR_LOCK;
        case IoKind::Open:
            return SQLITE_CANTOPEN;
        case IoKind::Truncate:
            return SQLITE_IOERR_TRUNCATE;
        case IoKind::FileSize:
            return SQLITE_IOERR_FSTAT;
    }
    return SQLITE_IOERR;
}

// Counts a call of `kind` and decides whether it fails: returns SQLITE_OK to go on, or the
// error code to return. Called with the mutex held.
int admit(State& s, IoKind kind) {
    ++s.counts[static_cast<int>(kind)];
    if (s.cut) return default_error(kind);
    if (s.cut_armed) {
        if (kind == IoKind::Write) {
            if (s.writes_left == 0) {
                s.cut = true;
                return default_error(kind);
            }
            --s.writes_left;
        } else if (s.writes_left == 0 && !s.cut_at_next_write) {
            s.cut = true;
            return default_error(kind);
        }
    }
    if (s.fault_armed && s.fault_kind == kind) {
        ++s.fault_seen;
        if (s.fault_seen == s.fault_nth || (s.fault_persistent && s.fault_seen > s.fault_nth)) {
            ++s.fault_hits;
            return s.fault_code;
        }
    }
    return SQLITE_OK;
}

std::int64_t real_size(sqlite3_file* file) {
    sqlite3_int64 size = 0;
    if (file->pMethods->xFileSize(file, &size) != SQLITE_OK) return 0;
    return size;
}

// The bytes [offset, offset + amount) of the real file that exist (may be fewer).
std::string real_bytes(sqlite3_file* file, std::int64_t offset, std::int64_t amount,
                       std::int64_t size) {
    if (offset >= size) return {};
    const std::int64_t n = std::min(amount, size - offset);
    std::string bytes(static_cast<std::size_t>(n), '\0');
    file->pMethods->xRead(file, bytes.data(), static_cast<int>(n), offset);
    return bytes;
}

// ---- sqlite3_io_methods ----

int shim_close(sqlite3_file* file) {
    ShimFile* f = shim(file);
    const int rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    delete f->path;
    f->path = nullptr;
    return rc;
}

int shim_read(sqlite3_file* file, void* buffer, int amount, sqlite3_int64 offset) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (const int rc = admit(s, IoKind::Read)) return rc;
    return real(file)->pMethods->xRead(real(file), buffer, amount, offset);
}

int shim_write(sqlite3_file* file, const void* buffer, int amount, sqlite3_int64 offset) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (const int rc = admit(s, IoKind::Write)) return rc;
    ShimFile* f = shim(file);
    const bool track = s.tracking && f->tracked;
    if (track) {
        PendingOp op;
        op.offset = offset;
        op.data.assign(static_cast<const char*>(buffer), static_cast<std::size_t>(amount));
        op.old_size = real_size(f->real);
        op.old_bytes = real_bytes(f->real, offset, amount, op.old_size);
        s.pending[*f->path].push_back(std::move(op));
    }
    const int rc = f->real->pMethods->xWrite(f->real, buffer, amount, offset);
    if (rc != SQLITE_OK && track) s.pending[*f->path].pop_back();
    return rc;
}

int shim_truncate(sqlite3_file* file, sqlite3_int64 size) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (const int rc = admit(s, IoKind::Truncate)) return rc;
    ShimFile* f = shim(file);
    const bool track = s.tracking && f->tracked;
    if (track) {
        PendingOp op;
        op.truncate = true;
        op.offset = size;
        op.old_size = real_size(f->real);
        op.old_bytes =
            real_bytes(f->real, size, std::max<std::int64_t>(0, op.old_size - size), op.old_size);
        s.pending[*f->path].push_back(std::move(op));
    }
    const int rc = f->real->pMethods->xTruncate(f->real, size);
    if (rc != SQLITE_OK && track) s.pending[*f->path].pop_back();
    return rc;
}

int shim_sync(sqlite3_file* file, int flags) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (const int rc = admit(s, IoKind::Sync)) return rc;
    ShimFile* f = shim(file);
    const int rc = s.real_sync ? f->real->pMethods->xSync(f->real, flags) : SQLITE_OK;
    if (rc == SQLITE_OK && f->path) s.pending.erase(*f->path);  // all of it is durable now
    return rc;
}

int shim_file_size(sqlite3_file* file, sqlite3_int64* size) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (const int rc = admit(s, IoKind::FileSize)) return rc;
    return real(file)->pMethods->xFileSize(real(file), size);
}

int shim_lock(sqlite3_file* file, int level) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (const int rc = admit(s, IoKind::Lock)) return rc;
    return real(file)->pMethods->xLock(real(file), level);
}

int shim_unlock(sqlite3_file* file, int level) {
    return real(file)->pMethods->xUnlock(real(file), level);
}

int shim_check_reserved_lock(sqlite3_file* file, int* reserved) {
    {
        State& s = state();
        std::lock_guard lock(s.mutex);
        if (s.cut) return SQLITE_IOERR_CHECKRESERVEDLOCK;
    }
    return real(file)->pMethods->xCheckReservedLock(real(file), reserved);
}

int shim_file_control(sqlite3_file* file, int op, void* arg) {
    if (op == SQLITE_FCNTL_VFSNAME) {
        const int rc = real(file)->pMethods->xFileControl(real(file), op, arg);
        if (rc == SQLITE_OK) {
            char** name = static_cast<char**>(arg);
            *name = sqlite3_mprintf("faultvfs/%z", *name);
        }
        return rc;
    }
    return real(file)->pMethods->xFileControl(real(file), op, arg);
}

int shim_sector_size(sqlite3_file* file) {
    return real(file)->pMethods->xSectorSize(real(file));
}

int shim_device_characteristics(sqlite3_file* file) {
    return real(file)->pMethods->xDeviceCharacteristics(real(file));
}

int shim_shm_map(sqlite3_file* file, int page, int page_size, int extend, void volatile** memory) {
    return real(file)->pMethods->xShmMap(real(file), page, page_size, extend, memory);
}

int shim_shm_lock(sqlite3_file* file, int offset, int n, int flags) {
    return real(file)->pMethods->xShmLock(real(file), offset, n, flags);
}

void shim_shm_barrier(sqlite3_file* file) {
    real(file)->pMethods->xShmBarrier(real(file));
}

int shim_shm_unmap(sqlite3_file* file, int delete_flag) {
    return real(file)->pMethods->xShmUnmap(real(file), delete_flag);
}

// Version 2: no xFetch, so SQLite never memory-maps the file and every read is an xRead.
const sqlite3_io_methods shim_methods = {
    2,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_file_size,
    shim_lock,
    shim_unlock,
    shim_check_reserved_lock,
    shim_file_control,
    shim_sector_size,
    shim_device_characteristics,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    nullptr,
    nullptr,
};

// ---- sqlite3_vfs ----

sqlite3_vfs* real_vfs() {
    return state().real;
}

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    ShimFile* f = shim(file);
    f->base.pMethods = nullptr;
    f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + real_offset);
    f->real->pMethods = nullptr;
    f->path = nullptr;
    f->tracked = false;
    {
        State& s = state();
        std::lock_guard lock(s.mutex);
        if (const int rc = admit(s, IoKind::Open)) return rc;
    }
    const int rc = real_vfs()->xOpen(real_vfs(), name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        f->real->pMethods = nullptr;
        return rc;
    }
    if (name != nullptr) f->path = new std::string(name);
    f->tracked = name != nullptr && (flags & SQLITE_OPEN_DELETEONCLOSE) == 0 &&
                 (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL |
                           SQLITE_OPEN_SUPER_JOURNAL)) != 0;
    f->base.pMethods = &shim_methods;
    return SQLITE_OK;
}

int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) {
    State& s = state();
    {
        std::lock_guard lock(s.mutex);
        if (s.cut) return SQLITE_IOERR_DELETE;
    }
    const int rc = real_vfs()->xDelete(real_vfs(), name, sync_dir);
    if (rc == SQLITE_OK) {
        std::lock_guard lock(s.mutex);
        s.pending.erase(name);  // a deleted file stays deleted
    }
    return rc;
}

int vfs_access(sqlite3_vfs*, const char* name, int flags, int* result) {
    return real_vfs()->xAccess(real_vfs(), name, flags, result);
}
int vfs_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
    return real_vfs()->xFullPathname(real_vfs(), name, size, out);
}
void* vfs_dl_open(sqlite3_vfs*, const char* name) {
    return real_vfs()->xDlOpen(real_vfs(), name);
}
void vfs_dl_error(sqlite3_vfs*, int size, char* out) {
    real_vfs()->xDlError(real_vfs(), size, out);
}
void (*vfs_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
    return real_vfs()->xDlSym(real_vfs(), handle, symbol);
}
void vfs_dl_close(sqlite3_vfs*, void* handle) {
    real_vfs()->xDlClose(real_vfs(), handle);
}
int vfs_randomness(sqlite3_vfs*, int size, char* out) {
    return real_vfs()->xRandomness(real_vfs(), size, out);
}
int vfs_sleep(sqlite3_vfs*, int microseconds) {
    {
        State& s = state();
        std::lock_guard lock(s.mutex);
        ++s.sleeps;
    }
    return real_vfs()->xSleep(real_vfs(), microseconds);
}
int vfs_current_time(sqlite3_vfs*, double* out) {
    return real_vfs()->xCurrentTime(real_vfs(), out);
}
int vfs_get_last_error(sqlite3_vfs*, int size, char* out) {
    return real_vfs()->xGetLastError ? real_vfs()->xGetLastError(real_vfs(), size, out) : 0;
}
int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
    return real_vfs()->xCurrentTimeInt64(real_vfs(), out);
}
int vfs_set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr call) {
    return real_vfs()->xSetSystemCall(real_vfs(), name, call);
}
sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs*, const char* name) {
    return real_vfs()->xGetSystemCall(real_vfs(), name);
}
const char* vfs_next_system_call(sqlite3_vfs*, const char* name) {
    return real_vfs()->xNextSystemCall(real_vfs(), name);
}

// ---- Power loss ----

std::string read_whole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put(std::string& image, std::int64_t offset, const char* bytes, std::int64_t n) {
    if (n <= 0) return;
    const auto end = static_cast<std::size_t>(offset + n);
    if (image.size() < end) image.resize(end, '\0');
    std::memcpy(image.data() + offset, bytes, static_cast<std::size_t>(n));
}

void write_whole(const std::string& path, const std::string& image) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("fault_vfs reboot: cannot open " + path);
    std::size_t done = 0;
    while (done < image.size()) {
        const ssize_t n =
            ::pwrite(fd, image.data() + done, image.size() - done, static_cast<off_t>(done));
        if (n <= 0) {
            ::close(fd);
            throw std::runtime_error("fault_vfs reboot: cannot write " + path);
        }
        done += static_cast<std::size_t>(n);
    }
    const bool ok = ::ftruncate(fd, static_cast<off_t>(image.size())) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error("fault_vfs reboot: cannot truncate " + path);
}

}  // namespace

const char* to_string(IoKind kind) {
    switch (kind) {
        case IoKind::Read:
            return "read";
        case IoKind::Write:
            return "write";
        case IoKind::Sync:
            return "sync";
        case IoKind::Lock:
            return "lock";
        case IoKind::Open:
            return "open";
        case IoKind::Truncate:
            return "truncate";
        case IoKind::FileSize:
            return "file-size";
    }
    return "?";
}

FaultVfs::FaultVfs() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (s.installed) throw std::logic_error("FaultVfs: already installed");
    if (sqlite3_initialize() != SQLITE_OK) throw std::runtime_error("sqlite3_initialize failed");
    s.previous_default = sqlite3_vfs_find(nullptr);
    s.real = sqlite3_vfs_find("unix");
    if (s.real == nullptr || s.previous_default == nullptr)
        throw std::runtime_error("FaultVfs: no unix VFS");
    sqlite3_vfs& v = s.shim;
    v = sqlite3_vfs{};
    v.iVersion = std::min(s.real->iVersion, 3);
    v.szOsFile = static_cast<int>(real_offset) + s.real->szOsFile;
    v.mxPathname = s.real->mxPathname;
    v.zName = "faultvfs";
    v.xOpen = vfs_open;
    v.xDelete = vfs_delete;
    v.xAccess = vfs_access;
    v.xFullPathname = vfs_full_pathname;
    v.xDlOpen = vfs_dl_open;
    v.xDlError = vfs_dl_error;
    v.xDlSym = vfs_dl_sym;
    v.xDlClose = vfs_dl_close;
    v.xRandomness = vfs_randomness;
    v.xSleep = vfs_sleep;
    v.xCurrentTime = vfs_current_time;
    v.xGetLastError = vfs_get_last_error;
    v.xCurrentTimeInt64 = vfs_current_time_int64;
    v.xSetSystemCall = vfs_set_system_call;
    v.xGetSystemCall = vfs_get_system_call;
    v.xNextSystemCall = vfs_next_system_call;
    s.counts = {};
    s.fault_armed = false;
    s.fault_hits = 0;
    s.real_sync = true;
    s.sleeps = 0;
    s.tracking = false;
    s.cut_armed = false;
    s.cut = false;
    s.pending.clear();
    if (sqlite3_vfs_register(&s.shim, 1) != SQLITE_OK)
        throw std::runtime_error("FaultVfs: sqlite3_vfs_register failed");
    s.installed = true;
}

FaultVfs::~FaultVfs() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    sqlite3_vfs_unregister(&s.shim);
    sqlite3_vfs_register(s.previous_default, 1);
    s.installed = false;
    s.fault_armed = false;
    s.tracking = false;
    s.cut_armed = false;
    s.cut = false;
    s.pending.clear();
}

void FaultVfs::reset_counts() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.counts = {};
}

IoCounts FaultVfs::counts() const {
    State& s = state();
    std::lock_guard lock(s.mutex);
    return s.counts;
}

void FaultVfs::fail_nth(IoKind kind, std::int64_t nth, int error_code, bool persistent) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.fault_armed = true;
    s.fault_kind = kind;
    s.fault_nth = nth;
    s.fault_code = error_code;
    s.fault_persistent = persistent;
    s.fault_seen = 0;
    s.fault_hits = 0;
}

void FaultVfs::clear_fault() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.fault_armed = false;
}

std::int64_t FaultVfs::fault_hits() const {
    State& s = state();
    std::lock_guard lock(s.mutex);
    return s.fault_hits;
}

std::int64_t FaultVfs::sleeps() const {
    State& s = state();
    std::lock_guard lock(s.mutex);
    return s.sleeps;
}

void FaultVfs::set_real_sync(bool on) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.real_sync = on;
}

void FaultVfs::track_durability(bool on) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.tracking = on;
    if (!on) s.pending.clear();
}

void FaultVfs::cut_power_after(std::int64_t writes, bool at_next_write) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.cut_armed = true;
    s.writes_left = writes;
    s.cut_at_next_write = at_next_write;
}

void FaultVfs::cut_power_now() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.cut = true;
}

bool FaultVfs::power_is_cut() const {
    State& s = state();
    std::lock_guard lock(s.mutex);
    return s.cut;
}

RebootStats FaultVfs::reboot(std::mt19937_64& random) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    RebootStats stats;
    for (auto& [path, ops] : s.pending) {
        if (ops.empty() || ::access(path.c_str(), F_OK) != 0) continue;
        ++stats.files;
        // What the file held at its last sync: undo every pending op, newest first.
        std::string image = read_whole(path);
        for (auto op = ops.rbegin(); op != ops.rend(); ++op) {
            if (op->truncate) {
                image.resize(static_cast<std::size_t>(op->old_size), '\0');
                put(image, op->offset, op->old_bytes.data(),
                    static_cast<std::int64_t>(op->old_bytes.size()));
            } else {
                put(image, op->offset, op->old_bytes.data(),
                    static_cast<std::int64_t>(op->old_bytes.size()));
                image.resize(static_cast<std::size_t>(op->old_size), '\0');
            }
        }
        // Then a random subset of the pending ops, oldest first.
        std::uniform_int_distribution<int> percent(0, 99);
        for (const PendingOp& op : ops) {
            const int roll = percent(random);
            if (op.truncate) {
                if (roll < 50) {
                    image.resize(static_cast<std::size_t>(op.offset), '\0');
                    ++stats.applied;
                } else {
                    ++stats.dropped;
                }
                continue;
            }
            const auto size = static_cast<std::int64_t>(op.data.size());
            if (roll < 40) {
                put(image, op.offset, op.data.data(), size);
                ++stats.applied;
            } else if (roll < 80) {
                ++stats.dropped;
            } else {
                ++stats.torn;
                const std::int64_t end = op.offset + size;
                for (std::int64_t start = op.offset; start < end;) {
                    const std::int64_t stop = std::min(end, (start / sector + 1) * sector);
                    if (percent(random) < 50)
                        put(image, start, op.data.data() + (start - op.offset), stop - start);
                    start = stop;
                }
            }
        }
        write_whole(path, image);
    }
    s.pending.clear();
    s.cut = false;
    s.cut_armed = false;
    return stats;
}

}  // namespace checkpoint::test
