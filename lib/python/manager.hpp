// checkpoint.CheckpointManager: one checkpoint::CheckpointManager, shared safely by Python
// threads, closed by close() or a `with` block, and refused in a child process after fork.
#pragma once

#include <checkpoint/checkpoint_manager.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <pybind11/pybind11.h>
#include <sys/types.h>

#include "errors.hpp"
#include "gil.hpp"
#include "log_sink.hpp"

namespace checkpoint::python {

namespace py = pybind11;

// Counts the fork()s that made this process (a pthread_atfork handler adds one in every
// child), so a manager knows it was opened by another process without a system call.
std::uint64_t fork_generation() noexcept;
void install_fork_handler();

class Manager {
public:
    Manager(py::object checkpoint_dir, Options options);
    ~Manager();
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    // Runs fn(checkpoint::CheckpointManager&) with the GIL released (so that other Python
    // threads run, and saves from several threads share one commit) under a shared lock
    // (close() takes it exclusively, so it waits for calls in flight). Raises ForkedError in
    // a child process, ClosedError after close(). fn must not touch Python objects.
    // A closed manager raises before the GIL is released.
    template <typename Fn>
    auto call(Fn&& fn) -> std::invoke_result_t<Fn, CheckpointManager&> {
        check_process();
        if (closed_) throw_closed();
        sync_log_level();
        return without_gil([&] {
            std::shared_lock lock(mutex_);
            if (!manager_) throw_closed();
            return std::forward<Fn>(fn)(*manager_);
        });
    }

    // Ends the run (records its end and outcome), after the calls in flight. Idempotent. In
    // a child process after fork() it only forgets the parent's manager, touching nothing.
    void close();
    bool closed() const noexcept { return closed_; }

    // Closes every open manager: at interpreter exit (atexit), while Python's logging still
    // works and before daemon threads are stopped, so that each run is recorded as ended.
    static void close_all();
    const py::object& checkpoint_dir() const noexcept { return checkpoint_dir_; }

    // Leases (lease.cpp). adopt_lease keeps a claim the manager made (call it inside call());
    // close() releases the claims still held before the manager goes, as the C++ API
    // requires, and empties their slots. drop_lease releases one claim now (the Python Lease
    // went away); in a child process after fork() it forgets it, touching nothing.
    using LeaseSlot = std::shared_ptr<std::optional<Lease>>;
    LeaseSlot adopt_lease(std::optional<Lease> lease);
    void drop_lease(const LeaseSlot& slot);

private:
    void check_process() const;
    std::vector<Lease> take_leases();  // empties every slot; with mutex_ held exclusively
    [[noreturn]] void throw_closed() const;

    py::object checkpoint_dir_;  // as given, like the original class's attribute
    std::string database_path_;  // for messages once closed
    std::uint64_t fork_generation_;
    pid_t pid_;
    bool closed_ = false;      // written with the GIL held: read with it
    std::shared_mutex mutex_;  // shared: calls; exclusive: close()
    std::unique_ptr<CheckpointManager> manager_;
    std::mutex leases_mutex_;  // guards leases_ (adopt_lease runs under the shared lock)
    std::vector<std::weak_ptr<std::optional<Lease>>> leases_;
};

// The calls the Stage helper (stage.cpp) shares with the methods of the same names.
void save_checkpoint(Manager& manager, py::handle stage, py::handle output, py::handle metadata,
                     py::handle fingerprint, py::handle inputs);
bool has_checkpoint(Manager& manager, py::handle stage, py::handle fingerprint);
py::object load_output(Manager& manager, py::handle stage, py::handle version);
void begin_stage(Manager& manager, py::handle stage);
void fail_stage(Manager& manager, py::handle stage, py::handle message);

void bind_manager(py::module_& module);

}  // namespace checkpoint::python
