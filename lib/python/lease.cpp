#include "lease.hpp"

#include <optional>
#include <string>

#include "convert.hpp"
#include "manager.hpp"
#include "stage.hpp"

namespace checkpoint::python {

namespace {

class PyLease {
public:
    PyLease(py::object manager, std::shared_ptr<std::optional<Lease>> slot)
        : manager_object_(std::move(manager)),
          manager_(manager_object_.cast<Manager*>()),
          slot_(std::move(slot)),
          stage_((*slot_)->stage()),
          token_((*slot_)->token()) {}

    // Releases the claim if the manager still holds it (never raises: a failure is logged
    // by the library, and the claim then lapses after its ttl).
    ~PyLease() {
        try {
            manager_->drop_lease(slot_);
        } catch (...) {  // closed or forked: nothing of ours to release
        }
    }
    PyLease(const PyLease&) = delete;
    PyLease& operator=(const PyLease&) = delete;

    const std::string& stage() const noexcept { return stage_; }
    std::int64_t token() const noexcept { return token_; }

    bool lost() {
        if (manager_->closed()) return true;
        return manager_->call([&](CheckpointManager&) { return !*slot_ || (*slot_)->lost(); });
    }
    void renew() {
        manager_->call([&](CheckpointManager&) {
            if (!*slot_) throw_released();
            (*slot_)->renew();
        });
    }
    void release() {
        manager_->call([&](CheckpointManager&) {
            if (*slot_) (*slot_)->release();
        });
    }

private:
    [[noreturn]] void throw_released() const {
        throw Error(ErrorCode::LeaseLost, "the lease on stage '" + stage_ + "' (token " +
                                              std::to_string(token_) +
                                              ") was released when its manager closed");
    }

    py::object manager_object_;  // keeps the manager alive
    Manager* manager_;
    std::shared_ptr<std::optional<Lease>> slot_;  // emptied when the manager closes
    std::string stage_;
    std::int64_t token_;
};

std::string quoted(const std::string& text) {
    return py::repr(py::str(text)).cast<std::string>();
}

}  // namespace

LeaseOptions lease_options(py::handle ttl, py::handle wait, bool heartbeat) {
    LeaseOptions options;
    options.ttl = duration_arg(ttl, "ttl");
    if (!wait.is_none()) options.wait = duration_arg(wait, "wait");
    options.heartbeat = heartbeat;
    return options;
}

py::object claim_stage(py::object manager, py::handle stage, const LeaseOptions& options) {
    Manager& m = manager.cast<Manager&>();
    const std::string_view name = utf8_view(stage, "stage name");
    auto slot =
        m.call([&](CheckpointManager& c) { return m.adopt_lease(c.claim_stage(name, options)); });
    if (!slot) return py::none();
    return py::cast(std::make_unique<PyLease>(std::move(manager), std::move(slot)));
}

LeaseOptions lease_arg(py::handle lease) {
    if (PyBool_Check(lease.ptr())) {
        if (lease.ptr() == Py_True) return LeaseOptions{};
    } else if (py::isinstance<LeaseOptions>(lease)) {
        return lease.cast<LeaseOptions>();
    }
    throw py::type_error("lease must be True or a checkpoint.LeaseOptions, not " +
                         std::string(Py_TYPE(lease.ptr())->tp_name));
}

bool run_leased(py::object manager, py::handle stage, py::handle fn, const LeaseOptions& options) {
    py::object claimed = claim_stage(manager, stage, options);
    if (claimed.is_none()) return false;
    PyLease& lease = claimed.cast<PyLease&>();
    bool ran = false;
    try {
        ran = run_now(make_stage(std::move(manager), stage, py::none(), py::none()), fn);
    } catch (...) {
        try {
            lease.release();
        } catch (...) {  // fn's exception goes on; the claim lapses after its ttl
        }
        throw;
    }
    lease.release();
    return ran;
}

void bind_lease(py::module_& module) {
    py::class_<LeaseOptions>(module, "LeaseOptions", R"doc(
How a claim behaves (manager.run_stage(name, fn, lease=LeaseOptions(...))).

ttl: seconds (or a timedelta) after which an unrenewed claim lapses (default 30).
wait: how long to wait while another live claim holds the stage (None: for ever; 0: try once).
heartbeat: renew in the background every ttl/3 (default True).
)doc")
        .def(py::init(&lease_options), py::kw_only(), py::arg("ttl") = 30.0,
             py::arg("wait") = py::none(), py::arg("heartbeat") = true)
        .def_property_readonly("ttl", [](const LeaseOptions& o) { return o.ttl.count() / 1000.0; })
        .def_property_readonly("wait",
                               [](const LeaseOptions& o) -> py::object {
                                   if (o.wait == std::chrono::milliseconds::max())
                                       return py::none();
                                   return py::float_(o.wait.count() / 1000.0);
                               })
        .def_readonly("heartbeat", &LeaseOptions::heartbeat)
        .def("__repr__", [](const LeaseOptions& o) {
            return "LeaseOptions(ttl=" +
                   py::repr(py::float_(o.ttl.count() / 1000.0)).cast<std::string>() + ", wait=" +
                   (o.wait == std::chrono::milliseconds::max()
                        ? std::string("None")
                        : py::repr(py::float_(o.wait.count() / 1000.0)).cast<std::string>()) +
                   ", heartbeat=" + (o.heartbeat ? "True" : "False") + ")";
        });

    py::class_<PyLease>(module, "Lease", R"doc(
A claim on one stage (manager.claim_stage): while it is held, the manager's begin_stage,
save_checkpoint and fail_stage of the stage are fenced — once the claim has lapsed (not renewed
within its ttl) or another worker took the stage over, they raise LeaseLostError and write
nothing. A background heartbeat renews it every ttl/3 unless claimed with heartbeat=False.
Leaving a `with` block, release(), garbage collection or closing the manager releases it.
)doc")
        .def_property_readonly("stage", &PyLease::stage, "The stage claimed.")
        .def_property_readonly("token", &PyLease::token,
                               "The fencing token: strictly increasing per stage, over every "
                               "holder ever; the rows written under the claim carry it.")
        .def_property_readonly("lost", &PyLease::lost,
                               "True once the claim is known to be lost (or was released "
                               "with its manager).")
        .def("renew", &PyLease::renew,
             "Extends the claim to ttl from now; raises LeaseLostError when it was lost.")
        .def("release", &PyLease::release,
             "Releases the claim now, so that another worker may take the stage at once.")
        .def("__enter__", [](py::object self) { return self; })
        .def(
            "__exit__",
            [](PyLease& lease, py::handle, py::handle, py::handle) {
                lease.release();
                return false;
            },
            py::arg("exc_type"), py::arg("exc_value"), py::arg("traceback"))
        .def("__repr__", [](PyLease& lease) {
            return "<checkpoint.Lease stage=" + quoted(lease.stage()) +
                   " token=" + std::to_string(lease.token()) + ">";
        });

    py::class_<StageLease>(module, "StageLease", "A stage's current claim (manager.leases()).")
        .def_readonly("stage", &StageLease::stage)
        .def_readonly("token", &StageLease::token)
        .def_readonly("run_id", &StageLease::run_id, "The holder's run.")
        .def_readonly("host", &StageLease::host)
        .def_readonly("pid", &StageLease::pid)
        .def_readonly("claimed_at", &StageLease::claimed_at)
        .def_readonly("expires_at", &StageLease::expires_at,
                      "When it lapses unless renewed (the database's clock).")
        .def_readonly("live", &StageLease::live, "False: it lapsed; the next claim takes over.")
        .def("__repr__", [](const StageLease& lease) {
            return "StageLease(stage=" + quoted(lease.stage) +
                   ", token=" + std::to_string(lease.token) + ", host=" + quoted(lease.host) +
                   ", pid=" + std::to_string(lease.pid) +
                   ", expires_at=" + quoted(lease.expires_at) +
                   ", live=" + (lease.live ? "True" : "False") + ")";
        });
}

}  // namespace checkpoint::python
