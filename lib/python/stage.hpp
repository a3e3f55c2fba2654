// checkpoint.Stage: run_stage as a context manager and as a decorator.
//
//     with manager.stage("train") as s:     # done: has_checkpoint("train") at entry
//         if not s.done:                    # a `with` body cannot be skipped: test s.done
//             s.output = train()            # optional: saved with the checkpoint
//     # on leaving: begun -> saved (completed), or failed with the exception, which goes on
//
//     @manager.stage("ingest")
//     def ingest(path): ...                 # runs once; later calls return the stored output
#pragma once

#include <pybind11/pybind11.h>

namespace checkpoint::python {

namespace py = pybind11;

// A new Stage of `manager` (a checkpoint.CheckpointManager).
py::object make_stage(py::object manager, py::handle stage, py::handle fingerprint,
                      py::handle inputs);

// manager.run_stage(name, fn): False when the stage is done (fn not called); otherwise
// begin, fn(), save, True; when fn raises: the failure is recorded and the exception goes on.
bool run_now(py::handle stage, py::handle fn);

void bind_stage(py::module_& module);

}  // namespace checkpoint::python
