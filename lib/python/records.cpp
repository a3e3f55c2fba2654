#include "records.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include "convert.hpp"
#include "gil.hpp"

namespace checkpoint::python {

namespace {

std::string quoted(const std::string& text) {
    return py::repr(py::str(text)).cast<std::string>();
}

}  // namespace

void bind_records(py::module_& module) {
    py::class_<InputVersion>(module, "InputVersion",
                             "An upstream stage's version that a checkpoint consumed.")
        .def_readonly("stage", &InputVersion::stage)
        .def_readonly("version", &InputVersion::version)
        .def_readonly("id", &InputVersion::id, "The upstream history row's id.")
        .def("__repr__", [](const InputVersion& input) {
            return "InputVersion(stage=" + quoted(input.stage) +
                   ", version=" + std::to_string(input.version) +
                   ", id=" + std::to_string(input.id) + ")";
        });

    py::class_<StoredOutput>(module, "StoredOutput", "Where and what a stage's output is.")
        .def_readonly("size", &StoredOutput::size, "Bytes.")
        .def_readonly("sha256", &StoredOutput::sha256, "64 lower-case hexadecimal digits.")
        .def_readonly("in_database", &StoredOutput::in_database,
                      "True: in the database; False: in <outputs_directory>/<sha256>.")
        .def("__repr__", [](const StoredOutput& output) {
            return "StoredOutput(size=" + std::to_string(output.size) +
                   ", sha256=" + quoted(output.sha256) +
                   ", in_database=" + (output.in_database ? "True" : "False") + ")";
        });

    py::class_<Checkpoint>(module, "Checkpoint",
                           "One history row, or (latest, stages) the current state of a stage.")
        .def_readonly("id", &Checkpoint::id)
        .def_readonly("pipeline", &Checkpoint::pipeline)
        .def_readonly("stage", &Checkpoint::stage, "Empty only for a pipeline-wide clear.")
        .def_property_readonly(
            "status", [](const Checkpoint& row) { return std::string(to_string(row.status)); },
            "\"started\", \"completed\", \"failed\", \"cleared\" or \"incomplete\".")
        .def_readonly("version", &Checkpoint::version)
        .def_readonly("timestamp", &Checkpoint::timestamp,
                      "ISO-8601 UTC with milliseconds: \"2026-11-27T06:37:48.123Z\".")
        .def_readonly("run_id", &Checkpoint::run_id)
        .def_readonly("duration", &Checkpoint::duration,
                      "A datetime.timedelta for completed and failed rows of stages begun in the "
                      "same run; otherwise None.")
        .def_readonly("message", &Checkpoint::message, "The failure message of a failed row.")
        .def_property_readonly(
            "metadata", [](const Checkpoint& row) { return to_python(row.metadata); },
            "The dict saved with the checkpoint (empty when none).")
        .def_readonly("fingerprint", &Checkpoint::fingerprint)
        .def_readonly("lease_token", &Checkpoint::lease_token,
                      "The lease token a row written under a claim carries (else None).")
        .def_readonly("inputs", &Checkpoint::inputs)
        .def_readonly("output", &Checkpoint::output, "A StoredOutput, or None.")
        .def_readonly("stale", &Checkpoint::stale)
        .def_readonly("stale_reason", &Checkpoint::stale_reason)
        .def("__repr__", [](const Checkpoint& row) {
            return "Checkpoint(id=" + std::to_string(row.id) + ", stage=" + quoted(row.stage) +
                   ", status=" + quoted(std::string(to_string(row.status))) +
                   ", version=" + std::to_string(row.version) +
                   ", timestamp=" + quoted(row.timestamp) + (row.stale ? ", stale=True" : "") + ")";
        });

    py::class_<Run>(module, "Run", "One run: the life of one manager that wrote something.")
        .def_readonly("run_id", &Run::run_id)
        .def_readonly("pipeline", &Run::pipeline)
        .def_readonly("host", &Run::host)
        .def_readonly("pid", &Run::pid)
        .def_readonly("user", &Run::user)
        .def_readonly("started_at", &Run::started_at)
        .def_readonly("ended_at", &Run::ended_at, "None while the run has not ended.")
        .def_property_readonly(
            "outcome", [](const Run& run) { return std::string(to_string(run.outcome)); },
            "\"running\", \"finished\", \"failed\" or \"died\".")
        .def_readonly("stages_completed", &Run::stages_completed)
        .def_readonly("stages_failed", &Run::stages_failed)
        .def("__repr__", [](const Run& run) {
            return "Run(run_id=" + quoted(run.run_id) + ", host=" + quoted(run.host) +
                   ", pid=" + std::to_string(run.pid) +
                   ", outcome=" + quoted(std::string(to_string(run.outcome))) + ")";
        });

    py::class_<PruneResult>(module, "PruneResult", "What prune() deleted.")
        .def_readonly("rows_deleted", &PruneResult::rows_deleted)
        .def_readonly("runs_deleted", &PruneResult::runs_deleted)
        .def_readonly("files_deleted", &PruneResult::files_deleted)
        .def_readonly("bytes_freed", &PruneResult::bytes_freed)
        .def("__repr__", [](const PruneResult& result) {
            return "PruneResult(rows_deleted=" + std::to_string(result.rows_deleted) +
                   ", runs_deleted=" + std::to_string(result.runs_deleted) +
                   ", files_deleted=" + std::to_string(result.files_deleted) +
                   ", bytes_freed=" + std::to_string(result.bytes_freed) + ")";
        });
}

void bind_fingerprints(py::module_& module) {
    // str parts are hashed as their UTF-8 bytes; bytes-like parts as they are.
    const auto part = [](py::handle value) {
        if (PyUnicode_Check(value.ptr())) return utf8_string(value, "part");
        return bytes_arg(value, "part");
    };
    py::class_<Fingerprint>(module, "Fingerprint", R"doc(
Builds a fingerprint (SHA-256, 64 hex digits) from framed parts, in order:
Fingerprint().add("preprocess v3").add(config_text).add_file("data/raw.csv").str()
)doc")
        .def(py::init<>())
        .def(
            "add",
            [part](Fingerprint& fingerprint, py::handle value) -> Fingerprint& {
                return fingerprint.add(part(value));
            },
            py::arg("part"), py::return_value_policy::reference_internal,
            "Adds a str (as UTF-8) or bytes part; returns self.")
        .def(
            "add_file",
            [](Fingerprint& fingerprint, py::handle file) -> Fingerprint& {
                const auto path = path_arg(file, "file");
                without_gil([&] { fingerprint.add_file(path); });
                return fingerprint;
            },
            py::arg("file"), py::return_value_policy::reference_internal,
            "Adds a file's contents; returns self. Raises NotFoundError, IoError.")
        .def("str", &Fingerprint::str, "The fingerprint so far: 64 hexadecimal digits.")
        .def("__str__", &Fingerprint::str)
        .def("__repr__", [](const Fingerprint& fingerprint) {
            return "<checkpoint.Fingerprint " + fingerprint.str() + ">";
        });

    module.def(
        "fingerprint_of", [part](py::handle value) { return fingerprint_of(part(value)); },
        py::arg("data"), "The SHA-256 of a str (as UTF-8) or bytes: 64 hexadecimal digits.");
    module.def(
        "fingerprint_of_file",
        [](py::handle file) {
            const auto path = path_arg(file, "file");
            return without_gil([&] { return fingerprint_of_file(path); });
        },
        py::arg("file"),
        "The SHA-256 of a file's contents (what sha256sum prints), or None when it is missing.");
}

}  // namespace checkpoint::python
