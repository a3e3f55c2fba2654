// checkpoint.Lease: a claim on one stage (manager.claim_stage), for parallel workers.
//
//     lease = manager.claim_stage("train")      # None: the stage is completed already
//     if lease:
//         with lease:                           # released on leaving
//             manager.begin_stage("train")      # fenced: LeaseLostError once the claim
//             train()                           # lapsed and another worker took it
//             manager.save_checkpoint("train")
//
// A Lease is owned by its manager's run: closing the manager (close(), `with`, garbage
// collection, interpreter exit) releases its live leases first, as the C++ API requires.
// In a child process after os.fork() the parent's leases are never touched.
#pragma once

#include <checkpoint/lease.hpp>

#include <pybind11/pybind11.h>

namespace checkpoint::python {

namespace py = pybind11;

// Seconds (int, float, timedelta) or None (wait for ever) as claim_stage's `wait`.
LeaseOptions lease_options(py::handle ttl, py::handle wait, bool heartbeat);

// manager.claim_stage(stage, ...): a checkpoint.Lease, or None when the stage is completed.
py::object claim_stage(py::object manager, py::handle stage, const LeaseOptions& options);

// run_stage's `lease` argument: True (the defaults) or a LeaseOptions.
LeaseOptions lease_arg(py::handle lease);

// manager.run_stage(name, fn, lease=...): claim; None -> False without calling fn; else
// begin, fn(), save (both fenced), release, True; when fn raises, the failure is recorded
// (fenced), the claim released and the exception goes on.
bool run_leased(py::object manager, py::handle stage, py::handle fn, const LeaseOptions& options);

void bind_lease(py::module_& module);

}  // namespace checkpoint::python
