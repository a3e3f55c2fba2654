// What the history holds, as Python objects with read-only attributes: Checkpoint, Run,
// InputVersion, StoredOutput, PruneResult; and fingerprints (Fingerprint, fingerprint_of,
// fingerprint_of_file). Statuses and outcomes are strings, timestamps ISO-8601 UTC text.
#pragma once

#include <pybind11/pybind11.h>

namespace checkpoint::python {

namespace py = pybind11;

void bind_records(py::module_& module);
void bind_fingerprints(py::module_& module);

}  // namespace checkpoint::python
