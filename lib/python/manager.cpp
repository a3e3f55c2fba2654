#include "manager.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <unordered_set>
#include <vector>

#include <pthread.h>
#include <unistd.h>

#include "convert.hpp"
#include "lease.hpp"
#include "stage.hpp"

namespace checkpoint::python {

namespace {

std::atomic<std::uint64_t> forks{0};

// Every Manager not yet destroyed, for close_all() at exit. Changed with the GIL held.
std::mutex open_managers_mutex;
std::unordered_set<Manager*>& open_managers() {
    static auto* managers = new std::unordered_set<Manager*>();  // used until the very end
    return *managers;
}

void count_fork() noexcept {
    forks.fetch_add(1, std::memory_order_relaxed);
}

Durability durability_arg(py::handle value) {
    const std::string text = utf8_string(value, "durability");
    if (text == "full") return Durability::Full;
    if (text == "normal") return Durability::Normal;
    throw Error(ErrorCode::InvalidArgument,
                "invalid durability '" + text + "': give \"full\" or \"normal\"");
}

// "mysql://user:secret@host/db" and the like: a URL of a database the library has no
// backend for (postgresql:// and postgres:// go to the PostgreSQL backend). Named by its
// scheme only, never quoted whole (it may hold a password).
void refuse_url(py::handle checkpoint_dir) {
    if (!PyUnicode_Check(checkpoint_dir.ptr())) return;
    const std::string text = utf8_string(checkpoint_dir, "checkpoint_dir");
    static const std::regex url("^([A-Za-z][A-Za-z0-9+.-]*)://");
    std::smatch match;
    if (std::regex_search(text, match, url) && match[1].str() != "postgresql" &&
        match[1].str() != "postgres") {
        throw Error(ErrorCode::InvalidArgument,
                    "checkpoint_dir is a " + match[1].str() +
                        ":// URL, but checkpoint stores checkpoints in SQLite (give a "
                        "directory) or PostgreSQL (a postgresql:// URL) only");
    }
}

std::int64_t int64_arg(py::handle value, const char* what) {
    if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr())) {
        throw py::type_error(std::string(what) + " must be int, not " +
                             Py_TYPE(value.ptr())->tp_name);
    }
    int overflow = 0;
    const long long number = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
    if (overflow != 0) {
        throw Error(ErrorCode::InvalidArgument,
                    std::string("invalid ") + what + ": outside the 64-bit range");
    }
    if (number == -1 && PyErr_Occurred()) throw py::error_already_set();
    return number;
}

// A HistoryFilter time bound: ISO-8601 text (a prefix of the stored form), or an aware
// datetime (converted to UTC text with milliseconds).
std::string time_bound_arg(py::handle value, const char* what) {
    if (PyUnicode_Check(value.ptr())) return utf8_string(value, what);
    const auto datetime = py::module_::import("datetime");
    if (py::isinstance(value, datetime.attr("datetime"))) {
        if (value.attr("utcoffset")().is_none()) {
            throw Error(ErrorCode::InvalidArgument,
                        std::string("invalid ") + what +
                            ": a naive datetime has no time zone; give an aware one "
                            "(datetime.now(timezone.utc)) or ISO-8601 UTC text");
        }
        const py::object utc = value.attr("astimezone")(datetime.attr("timezone").attr("utc"));
        const auto text = utc.attr("strftime")("%Y-%m-%dT%H:%M:%S").cast<std::string>();
        const auto micro = utc.attr("microsecond").cast<int>();
        char millis[16];
        std::snprintf(millis, sizeof millis, ".%03dZ", micro / 1000);
        return text + millis;
    }
    throw py::type_error(std::string(what) + " must be str (ISO-8601 UTC) or datetime, not " +
                         Py_TYPE(value.ptr())->tp_name);
}

std::unique_ptr<Manager> make_manager(py::object checkpoint_dir, py::object pipeline,
                                      py::object durability, py::object busy_timeout,
                                      bool read_only, py::object database_file,
                                      py::object file_mode, py::object max_inline_output,
                                      py::object key_file, py::object reconnect_timeout) {
    refuse_url(checkpoint_dir);
    Options options;
    options.pipeline = utf8_string(pipeline, "pipeline");
    options.durability = durability_arg(durability);
    options.busy_timeout = duration_arg(busy_timeout, "busy_timeout");
    options.read_only = read_only;
    options.database_file = utf8_string(database_file, "database_file");
    const std::int64_t mode = int64_arg(file_mode, "file_mode");
    if (mode < 0 || mode > 07777) {
        throw Error(ErrorCode::InvalidArgument, "invalid file_mode " + std::to_string(mode) +
                                                    ": give permission bits "
                                                    "such as 0o600");
    }
    options.file_mode = static_cast<unsigned>(mode);
    const std::int64_t inline_limit = int64_arg(max_inline_output, "max_inline_output");
    if (inline_limit < 0) {
        throw Error(ErrorCode::InvalidArgument, "invalid max_inline_output " +
                                                    std::to_string(inline_limit) +
                                                    ": give a number of bytes (at most 512 MiB)");
    }
    options.max_inline_output = static_cast<std::size_t>(inline_limit);
    if (!key_file.is_none()) options.key_file = path_arg(key_file, "key_file");
    options.reconnect_timeout = duration_arg(reconnect_timeout, "reconnect_timeout");
    return std::make_unique<Manager>(std::move(checkpoint_dir), std::move(options));
}

PruneOptions prune_options(py::handle older_than, py::handle keep_last, py::handle orphan_grace) {
    PruneOptions options;
    const auto seconds = [](py::handle value, const char* what) {
        return std::chrono::duration_cast<std::chrono::seconds>(duration_arg(value, what));
    };
    if (!older_than.is_none()) options.older_than = seconds(older_than, "older_than");
    if (!keep_last.is_none()) options.keep_last = int64_arg(keep_last, "keep_last");
    options.orphan_grace = seconds(orphan_grace, "orphan_grace");
    return options;
}

HistoryFilter history_filter(py::handle stage, py::handle run_id, py::handle status,
                             py::handle since, py::handle until, py::handle limit,
                             bool all_pipelines) {
    HistoryFilter filter;
    if (!stage.is_none()) filter.stage = utf8_string(stage, "stage");
    if (!run_id.is_none()) filter.run_id = utf8_string(run_id, "run_id");
    if (!status.is_none()) {
        const std::string text = utf8_string(status, "status");
        filter.status = status_from_string(text);
        if (!filter.status) {
            throw Error(ErrorCode::InvalidArgument,
                        "invalid status '" + text +
                            "': give started, completed, failed, cleared or incomplete");
        }
    }
    if (!since.is_none()) filter.since = time_bound_arg(since, "since");
    if (!until.is_none()) filter.until = time_bound_arg(until, "until");
    if (!limit.is_none()) filter.limit = int64_arg(limit, "limit");
    filter.all_pipelines = all_pipelines;
    return filter;
}

std::string repr(Manager& manager) {
    if (manager.closed()) return "<checkpoint.CheckpointManager (closed)>";
    const auto [path, pipeline] = manager.call(
        [](CheckpointManager& m) { return std::make_pair(m.location(), m.pipeline()); });
    return "<checkpoint.CheckpointManager " + py::repr(path_to_python(path)).cast<std::string>() +
           " pipeline=" + py::repr(py::str(pipeline)).cast<std::string>() + ">";
}

}  // namespace

std::uint64_t fork_generation() noexcept {
    return forks.load(std::memory_order_relaxed);
}

void install_fork_handler() {
    static const int installed = pthread_atfork(nullptr, nullptr, count_fork);
    if (installed != 0) throw std::runtime_error("pthread_atfork failed");
}

Manager::Manager(py::object checkpoint_dir, Options options)
    : checkpoint_dir_(std::move(checkpoint_dir)),
      fork_generation_(fork_generation()),
      pid_(::getpid()) {
    std::filesystem::path directory = path_arg(checkpoint_dir_, "checkpoint_dir");
    options.logger = python_logger();
    sync_log_level();
    manager_ = without_gil([&] {
        return std::make_unique<CheckpointManager>(std::move(directory), std::move(options));
    });
    database_path_ = manager_->location();  // no password: safe in messages
    std::lock_guard lock(open_managers_mutex);
    open_managers().insert(this);
}

Manager::~Manager() {
    {
        std::lock_guard lock(open_managers_mutex);
        open_managers().erase(this);
    }
    if (fork_generation_ != fork_generation()) {
        // A child process after fork(): the parent's SQLite connection and run must not be
        // touched (closing it could delete the parent's WAL or record the parent's run as
        // ended). Forgotten on purpose: its memory is the child's copy of the parent's.
        static_cast<void>(manager_.release());
        return;
    }
    // Destroyed by garbage collection, with the GIL held: no call can be in flight (each
    // holds a reference), and closing the run is one short write. The GIL is kept: taking it
    // back in a destructor is what a daemon thread must not do while the interpreter exits.
    // (No Lease can be alive: each holds a reference to this manager.)
    take_leases().clear();
    manager_.reset();
}

void Manager::check_process() const {
    if (fork_generation_ == fork_generation()) return;
    throw BindingError(
        "forked", "this CheckpointManager (" + database_path_ + ") was opened by process " +
                      std::to_string(pid_) + ", not by this process " + std::to_string(::getpid()) +
                      " (made by os.fork() since); it cannot be used here, because an SQLite "
                      "connection must not cross fork(). Open a new CheckpointManager in the "
                      "child process");
}

void Manager::throw_closed() const {
    throw BindingError("closed", "this CheckpointManager (" + database_path_ +
                                     ") is closed; open a new one to go on");
}

void Manager::close() {
    if (closed_) return;
    closed_ = true;
    if (fork_generation_ != fork_generation()) {
        static_cast<void>(manager_.release());  // see ~Manager
        return;
    }
    sync_log_level();
    // The GIL is released while waiting: a call in flight may need it to log.
    std::vector<Lease> leases;
    std::unique_ptr<CheckpointManager> closing = without_gil([&] {
        std::unique_lock lock(mutex_);  // waits for the calls in flight
        leases = take_leases();
        return std::move(manager_);
    });
    without_gil([&] {
        leases.clear();   // releases the claims still held (before their manager goes)
        closing.reset();  // records the end of the run (and may log)
    });
}

std::vector<Lease> Manager::take_leases() {
    std::vector<Lease> taken;
    std::lock_guard lock(leases_mutex_);
    for (const auto& weak : leases_) {
        if (const LeaseSlot slot = weak.lock(); slot && *slot) {
            taken.push_back(std::move(**slot));
            slot->reset();
        }
    }
    leases_.clear();
    return taken;
}

Manager::LeaseSlot Manager::adopt_lease(std::optional<Lease> lease) {
    if (!lease) return nullptr;
    auto slot = std::make_shared<std::optional<Lease>>(std::move(lease));
    std::lock_guard lock(leases_mutex_);
    // Forget the slots of Lease objects gone, so the list stays as long as the live ones.
    leases_.erase(std::remove_if(leases_.begin(), leases_.end(),
                                 [](const auto& weak) { return weak.expired(); }),
                  leases_.end());
    leases_.push_back(slot);
    return slot;
}

void Manager::drop_lease(const LeaseSlot& slot) {
    if (closed_) return;  // released with the manager already
    if (fork_generation_ != fork_generation() || _Py_IsFinalizing()) {
        // Another process's claim (see ~Manager), or an interpreter too far gone to release
        // the GIL: forgotten, never released here (the claim lapses after its ttl).
        std::lock_guard guard(leases_mutex_);
        if (*slot) static_cast<void>(new std::optional<Lease>(std::move(*slot)));
        return;
    }
    std::optional<Lease> lease;
    without_gil([&] {
        std::shared_lock lock(mutex_);  // the manager stays while the claim is released
        if (!manager_) return;
        {
            std::lock_guard guard(leases_mutex_);
            lease = std::move(*slot);
            slot->reset();
        }
        lease.reset();  // releases the claim (never throws; a failure is logged)
    });
}

void Manager::close_all() {
    std::vector<Manager*> managers;
    {
        std::lock_guard lock(open_managers_mutex);
        managers.assign(open_managers().begin(), open_managers().end());
    }
    for (Manager* manager : managers) {
        {
            // Destroyed meanwhile (another thread ran while a close released the GIL)?
            std::lock_guard lock(open_managers_mutex);
            if (open_managers().count(manager) == 0) continue;
        }
        // A reference to its Python object keeps it alive while close() releases the GIL.
        const py::object alive = py::cast(manager, py::return_value_policy::reference);
        manager->close();
    }
}

void save_checkpoint(Manager& manager, py::handle stage, py::handle output, py::handle metadata,
                     py::handle fingerprint, py::handle inputs) {
    const std::string_view name = utf8_view(stage, "stage name");
    if (output.is_none() && metadata.is_none() && fingerprint.is_none() && inputs.is_none()) {
        manager.call([&](CheckpointManager& m) { m.save_checkpoint(name); });
        return;
    }
    SaveOptions options;
    if (!output.is_none()) options.output = bytes_arg(output, "output");
    options.metadata = json_object_arg(metadata, "metadata");
    if (!fingerprint.is_none()) options.fingerprint = utf8_string(fingerprint, "fingerprint");
    if (!inputs.is_none()) options.inputs = string_list_arg(inputs, "inputs");
    manager.call([&](CheckpointManager& m) { m.save_checkpoint(name, options); });
}

bool has_checkpoint(Manager& manager, py::handle stage, py::handle fingerprint) {
    const std::string_view name = utf8_view(stage, "stage name");
    if (fingerprint.is_none()) {
        return manager.call([&](CheckpointManager& m) { return m.has_checkpoint(name); });
    }
    const std::string_view expected = utf8_view(fingerprint, "fingerprint");
    return manager.call([&](CheckpointManager& m) { return m.has_checkpoint(name, expected); });
}

py::object load_output(Manager& manager, py::handle stage, py::handle version) {
    const std::string_view name = utf8_view(stage, "stage name");
    std::optional<std::string> output;
    if (version.is_none()) {
        output = manager.call([&](CheckpointManager& m) { return m.load_output(name); });
    } else {
        const std::int64_t number = int64_arg(version, "version");
        output = manager.call([&](CheckpointManager& m) { return m.load_output(name, number); });
    }
    if (!output) return py::none();
    return py::bytes(*output);
}

void begin_stage(Manager& manager, py::handle stage) {
    const std::string_view name = utf8_view(stage, "stage name");
    manager.call([&](CheckpointManager& m) { m.begin_stage(name); });
}

void fail_stage(Manager& manager, py::handle stage, py::handle message) {
    const std::string_view name = utf8_view(stage, "stage name");
    // Any text: a lone surrogate becomes U+FFFD, as invalid UTF-8 from C++ does.
    std::string text;
    if (PyUnicode_Check(message.ptr())) {
        text = utf8_lossy(message);
    } else {
        text = bytes_arg(message, "message");
    }
    manager.call([&](CheckpointManager& m) { m.fail_stage(name, text); });
}

void bind_manager(py::module_& module) {
    install_fork_handler();
    py::module_::import("atexit").attr("register")(py::cpp_function(&Manager::close_all));
    py::class_<Manager>(module, "CheckpointManager", R"doc(
Records the stages of one pipeline in <checkpoint_dir>/checkpoints.db (SQLite).

The original class's names and defaults: CheckpointManager(checkpoint_dir="checkpoints"),
save_checkpoint(stage_name), has_checkpoint(stage_name), clear_checkpoints(). Every write is
one transaction, durable when it returns (durability="full"); a failed write raises
checkpoint.Error and wrote nothing. Safe to share between threads; a child process made with
os.fork() must open its own manager (the parent's raises ForkedError there). One manager is one
run: close() (or the end of a `with` block, or garbage collection) records its end.
)doc")
        .def(py::init(&make_manager), py::arg("checkpoint_dir") = "checkpoints", py::kw_only(),
             py::arg("pipeline") = "default", py::arg("durability") = "full",
             py::arg("busy_timeout") = 30.0, py::arg("read_only") = false,
             py::arg("database_file") = "checkpoints.db", py::arg("file_mode") = 0600,
             py::arg("max_inline_output") = 1536 * 1024, py::arg("key_file") = py::none(),
             py::arg("reconnect_timeout") = 30.0)
        .def(
            "save_checkpoint",
            [](Manager& m, py::handle stage, py::handle output, py::handle metadata,
               py::handle fingerprint, py::handle inputs) {
                save_checkpoint(m, stage, output, metadata, fingerprint, inputs);
            },
            py::arg("stage_name"), py::kw_only(), py::arg("output") = py::none(),
            py::arg("metadata") = py::none(), py::arg("fingerprint") = py::none(),
            py::arg("inputs") = py::none(),
            "Records the stage as completed (a new version), durably; with its output (bytes), "
            "metadata (a JSON-able dict), fingerprint and inputs (upstream stage names).")
        .def("has_checkpoint", &has_checkpoint, py::arg("stage_name"),
             py::arg("fingerprint") = py::none(),
             "True when the stage is completed and up to date (and saved with this "
             "fingerprint, when one is given).")
        .def(
            "clear_checkpoints",
            [](Manager& m) { m.call([](CheckpointManager& c) { c.clear_checkpoints(); }); },
            "Atomically resets every stage of this pipeline (one history row).")
        .def(
            "clear_checkpoint",
            [](Manager& m, py::handle stage, bool downstream) {
                const std::string_view name = utf8_view(stage, "stage name");
                return m.call([&](CheckpointManager& c) {
                    return c.clear_checkpoint(
                        name, downstream ? ClearScope::WithDownstream : ClearScope::StageOnly);
                });
            },
            py::arg("stage"), py::kw_only(), py::arg("downstream") = false,
            "Resets one stage (and, with downstream=True, every stage that consumed it, "
            "transitively) in one transaction; returns the stages cleared.")
        .def("load_output", &load_output, py::arg("stage"), py::arg("version") = py::none(),
             "The bytes saved with the stage's current (or given) completed version, SHA-256 "
             "checked; None when there is none.")
        .def("begin_stage", &begin_stage, py::arg("stage"))
        .def("fail_stage", &fail_stage, py::arg("stage"), py::arg("message"))
        .def(
            "latest",
            [](Manager& m, py::handle stage) {
                const std::string_view name = utf8_view(stage, "stage name");
                return m.call([&](CheckpointManager& c) { return c.latest(name); });
            },
            py::arg("stage"), "The stage's current state (a Checkpoint), or None.")
        .def(
            "stages",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.stages(); }); },
            "The current state of every stage, by name.")
        .def(
            "history",
            [](Manager& m, py::handle stage, py::handle run_id, py::handle status, py::handle since,
               py::handle until, py::handle limit, bool all_pipelines) {
                const HistoryFilter filter =
                    history_filter(stage, run_id, status, since, until, limit, all_pipelines);
                return m.call([&](CheckpointManager& c) { return c.history(filter); });
            },
            py::kw_only(), py::arg("stage") = py::none(), py::arg("run_id") = py::none(),
            py::arg("status") = py::none(), py::arg("since") = py::none(),
            py::arg("until") = py::none(), py::arg("limit") = py::none(),
            py::arg("all_pipelines") = false, "History rows (Checkpoint), oldest first.")
        .def(
            "runs",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.runs(); }); },
            "Every run of this pipeline (Run), oldest first.")
        .def(
            "prune",
            [](Manager& m, py::handle older_than, py::handle keep_last, py::handle orphan_grace) {
                const PruneOptions options = prune_options(older_than, keep_last, orphan_grace);
                return m.call([&](CheckpointManager& c) { return c.prune(options); });
            },
            py::kw_only(), py::arg("older_than") = py::none(), py::arg("keep_last") = py::none(),
            py::arg("orphan_grace") = 3600,
            "Deletes old history rows, runs left without rows and unreferenced output files.")
        .def(
            "verify",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.verify(); }); },
            "Checks the whole database; returns one line per problem (empty when sound).")
        .def(
            "import_checkpoint",
            [](Manager& m, py::handle stage, py::handle timestamp, py::handle source) {
                const std::string_view name = utf8_view(stage, "stage name");
                const std::string_view when = utf8_view(timestamp, "timestamp");
                const std::string_view from = utf8_view(source, "source");
                return m.call(
                    [&](CheckpointManager& c) { return c.import_checkpoint(name, when, from); });
            },
            py::arg("stage"), py::arg("timestamp"), py::arg("source"))
        .def(
            "stage",
            [](py::object self, py::handle stage, py::handle fingerprint, py::handle inputs) {
                return make_stage(std::move(self), stage, fingerprint, inputs);
            },
            py::arg("stage"), py::kw_only(), py::arg("fingerprint") = py::none(),
            py::arg("inputs") = py::none(),
            "A Stage: `with manager.stage(name) as s: if not s.done: ...` or a decorator.")
        .def(
            "run_stage",
            [](py::object self, py::handle stage, py::handle fn, py::handle fingerprint,
               py::handle inputs, py::handle lease) -> py::object {
                if (!lease.is_none() && !(PyBool_Check(lease.ptr()) && lease.ptr() == Py_False)) {
                    const LeaseOptions options = lease_arg(lease);
                    if (fn.is_none() || !fingerprint.is_none() || !inputs.is_none()) {
                        throw Error(ErrorCode::InvalidArgument,
                                    "run_stage with a lease takes a function and no fingerprint "
                                    "or inputs; for those, claim_stage() and save_checkpoint("
                                    "..., fingerprint=..., inputs=...) under the lease");
                    }
                    return py::bool_(run_leased(std::move(self), stage, fn, options));
                }
                py::object scope = make_stage(self, stage, fingerprint, inputs);
                if (fn.is_none()) return scope;
                return py::bool_(run_now(scope, fn));
            },
            py::arg("stage"), py::arg("fn") = py::none(), py::kw_only(),
            py::arg("fingerprint") = py::none(), py::arg("inputs") = py::none(),
            py::arg("lease") = py::none(),
            "run_stage(name, fn): skips fn if the stage is done (returns False), else runs it "
            "between begin and save (True), or records the failure and re-raises. Without "
            "fn: the same Stage as stage(name). With lease=True (or a LeaseOptions): claims "
            "the stage first, so that among parallel workers one runs it (False when it is "
            "completed, also by another worker meanwhile).")
        .def(
            "claim_stage",
            [](py::object self, py::handle stage, py::handle ttl, py::handle wait, bool heartbeat) {
                return claim_stage(std::move(self), stage, lease_options(ttl, wait, heartbeat));
            },
            py::arg("stage"), py::kw_only(), py::arg("ttl") = 30.0, py::arg("wait") = py::none(),
            py::arg("heartbeat") = true,
            "Claims the stage for this manager: a Lease when this caller may run it now, None "
            "when it is completed (also by another worker while waiting). Waits while another "
            "live claim holds it, for at most `wait` seconds (None: for ever), then raises "
            "BusyError. While the lease is held, this manager's begin_stage, save_checkpoint and "
            "fail_stage of the stage raise LeaseLostError once the claim was lost.")
        .def(
            "leases",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.leases(); }); },
            "The unreleased claims of this pipeline's stages (StageLease), by stage.")
        .def("close", &Manager::close, "Ends the run. Further calls raise ClosedError.")
        .def_property_readonly("closed", &Manager::closed)
        .def("__enter__", [](py::object self) { return self; })
        .def(
            "__exit__",
            [](Manager& m, py::handle, py::handle, py::handle) {
                m.close();
                return false;
            },
            py::arg("exc_type"), py::arg("exc_value"), py::arg("traceback"))
        .def_property_readonly("checkpoint_dir", &Manager::checkpoint_dir)
        .def_property_readonly(
            "run_id",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.run_id(); }); })
        .def_property_readonly(
            "pipeline",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.pipeline(); }); })
        .def_property_readonly("database_path",
                               [](Manager& m) {
                                   return path_to_python(m.call(
                                       [](CheckpointManager& c) { return c.database_path(); }));
                               })
        .def_property_readonly(
            "location",
            [](Manager& m) { return m.call([](CheckpointManager& c) { return c.location(); }); })
        .def_property_readonly("outputs_directory",
                               [](Manager& m) {
                                   return path_to_python(m.call(
                                       [](CheckpointManager& c) { return c.outputs_directory(); }));
                               })
        .def("__repr__", &repr);
}

}  // namespace checkpoint::python
