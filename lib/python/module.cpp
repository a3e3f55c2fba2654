// The Python module `checkpoint`: a drop-in for the original Python CheckpointManager, over
// the C++ library's public API. See README.md, "Python", and checkpoint.pyi.
#include <checkpoint/checkpoint_manager.hpp>

#include <pybind11/pybind11.h>

#include "errors.hpp"
#include "lease.hpp"
#include "log_sink.hpp"
#include "manager.hpp"
#include "records.hpp"
#include "stage.hpp"

PYBIND11_MODULE(checkpoint, module) {
    namespace python = checkpoint::python;
    module.doc() =
        "checkpoint: durable, auditable pipeline checkpoints in SQLite.\n\n"
        "    from checkpoint import CheckpointManager\n"
        "    manager = CheckpointManager()          # ./checkpoints/checkpoints.db\n"
        "    if not manager.has_checkpoint(\"data_ingestion\"):\n"
        "        ingest()\n"
        "        manager.save_checkpoint(\"data_ingestion\")   # durable when it returns\n";
    module.attr("__version__") = CHECKPOINT_VERSION_TEXT;
    python::init_logging();
    python::register_errors(module);
    python::bind_records(module);
    python::bind_fingerprints(module);
    python::bind_stage(module);
    python::bind_lease(module);
    python::bind_manager(module);
    module.def("schema_version", &checkpoint::schema_version,
               "The schema version this library writes (PRAGMA user_version).");
    module.attr("MAX_NAME_BYTES") = checkpoint::max_name_bytes;
}
