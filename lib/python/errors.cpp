#include "errors.hpp"

#include <checkpoint/error.hpp>

#include <cstring>
#include <map>
#include <string_view>

namespace checkpoint::python {

namespace {

// code -> the Python class raised for it. Filled once at import, read with the GIL held.
std::map<std::string, PyObject*, std::less<>>& classes_by_code() {
    static auto* classes = new std::map<std::string, PyObject*, std::less<>>();  // never freed:
    return *classes;  // the classes live as long as the interpreter
}

PyObject* error_base = nullptr;

// Creates checkpoint.<name>(bases...) with the class attribute `code` and a docstring.
PyObject* make_class(py::module_& module, const char* name, py::tuple bases, const char* code,
                     const char* doc) {
    const std::string qualified = std::string("checkpoint.") + name;
    py::dict attributes;
    attributes["code"] = code == nullptr ? py::object(py::none()) : py::object(py::str(code));
    PyObject* type =
        PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), attributes.ptr());
    if (type == nullptr) throw py::error_already_set();
    module.add_object(name, py::reinterpret_borrow<py::object>(type));
    if (code != nullptr) classes_by_code()[code] = type;
    return type;  // one reference kept for the map
}

// Sets the Python error for `code` (an exception translator's job: set it, do not throw).
void set_error(std::string_view code, const char* message) {
    const auto found = classes_by_code().find(code);
    PyObject* type = found == classes_by_code().end() ? error_base : found->second;
    try {
        // A message may quote a path that is not UTF-8: show those bytes escaped.
        PyObject* text = PyUnicode_DecodeUTF8(
            message, static_cast<Py_ssize_t>(std::strlen(message)), "backslashreplace");
        if (text == nullptr) throw py::error_already_set();
        py::object error =
            py::reinterpret_borrow<py::object>(type)(py::reinterpret_steal<py::str>(text));
        error.attr("code") = py::str(code.data(), code.size());
        PyErr_SetObject(type, error.ptr());
    } catch (py::error_already_set& e) {
        e.restore();  // e.g. MemoryError while making the exception: raise that
    }
}

}  // namespace

void register_errors(py::module_& module) {
    const auto base_of = [](PyObject* type) {
        return py::make_tuple(py::reinterpret_borrow<py::object>(type));
    };
    const auto exception = py::reinterpret_borrow<py::object>(PyExc_Exception);
    error_base = make_class(module, "Error", py::make_tuple(exception), nullptr,
                            "Raised by every failing call of checkpoint. `code` is a stable "
                            "lower-case string (\"invalid_argument\", \"busy\", ...); str(error) "
                            "names the database file and says what to do.");
    make_class(module, "InvalidArgumentError",
               py::make_tuple(py::reinterpret_borrow<py::object>(error_base),
                              py::reinterpret_borrow<py::object>(PyExc_ValueError)),
               "invalid_argument",
               "A stage name, pipeline name, option or value was refused; nothing was written. "
               "Also a ValueError.");
    make_class(module, "NotFoundError", base_of(error_base), "not_found",
               "A read-only open found no database (or a file to fingerprint is missing).");
    PyObject* database = make_class(module, "DatabaseError", base_of(error_base), nullptr,
                                    "The file cannot be used as a checkpoint database as it is: "
                                    "the base of NotADatabaseError, CorruptError, "
                                    "SchemaTooNewError and SchemaTooOldError.");
    make_class(module, "NotADatabaseError", base_of(database), "not_a_database",
               "The file is not SQLite, or another application's database (left unchanged).");
    make_class(module, "CorruptError", base_of(database), "corrupt",
               "The database is truncated or damaged (left unchanged).");
    make_class(module, "SchemaTooNewError", base_of(database), "schema_too_new",
               "The database was written by a newer version of checkpoint; nothing is written.");
    make_class(module, "SchemaTooOldError", base_of(database), "schema_too_old",
               "A read-only open of a database that needs a migration.");
    PyObject* io = make_class(module, "IoError", base_of(error_base), "io",
                              "The operating system refused a read, write, sync or open.");
    make_class(module, "DiskFullError", base_of(io), "disk_full",
               "The disk is full; nothing of the failed call was written. Also an IoError.");
    make_class(module, "BusyError", base_of(error_base), "busy",
               "Another process held the database locked longer than busy_timeout.");
    make_class(module, "ReadOnlyError", base_of(error_base), "read_only",
               "A write on a read-only manager, or on a read-only file.");
    make_class(module, "InternalError", base_of(error_base), "internal",
               "A bug in checkpoint: please report it.");
    make_class(module, "UnsafeError", base_of(error_base), "unsafe",
               "The database is a symbolic link, or its directory is writable by every user.");
    make_class(module, "OutputDamagedError", base_of(error_base), "output_damaged",
               "A stored output is missing, truncated or altered (its SHA-256 differs).");
    make_class(module, "UnavailableError", base_of(error_base), "unavailable",
               "PostgreSQL: the server could not be reached (or none came back within "
               "reconnect_timeout); the message names host:port, never the password.");
    make_class(module, "LeaseLostError", base_of(error_base), "lease_lost",
               "The stage's lease lapsed or another worker took the stage over; nothing was "
               "written.");
    make_class(module, "KeyRequiredError", base_of(error_base), "key_required",
               "The database was written with a key (key_file) and none was given.");
    make_class(module, "WrongKeyError", base_of(error_base), "wrong_key",
               "The key file given is not the database's key; nothing was written.");
    make_class(module, "ClosedError", base_of(error_base), "closed",
               "The manager was closed (close(), or the end of its `with` block).");
    make_class(module, "ForkedError", base_of(error_base), "forked",
               "The manager was opened by the parent process, before os.fork(): a child "
               "process must open its own CheckpointManager.");

    py::register_exception_translator([](std::exception_ptr thrown) {
        try {
            if (thrown) std::rethrow_exception(thrown);
        } catch (const Error& e) {
            set_error(to_string(e.code()), e.what());
        } catch (const BindingError& e) {
            set_error(e.code(), e.what());
        }
    });
}

}  // namespace checkpoint::python
