#include "log_sink.hpp"

#include <string>

#include <spdlog/sinks/sink.h>
#include <unistd.h>

#include "gil.hpp"

namespace checkpoint::python {

namespace {

namespace py = pybind11;

// logging.getLogger("checkpoint") and its bound method `log`: new references, never
// released (they live as long as the interpreter; releasing them at exit would need the
// GIL when it may be gone).
PyObject* py_logger = nullptr;
PyObject* py_logger_log = nullptr;
PyObject* py_get_effective_level = nullptr;

int python_level(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return 10;  // logging.DEBUG
        case spdlog::level::info:
            return 20;
        case spdlog::level::warn:
            return 30;
        case spdlog::level::err:
            return 40;
        default:
            return 50;  // logging.CRITICAL
    }
}

spdlog::level::level_enum spdlog_level(long python) {
    if (python <= 10) return spdlog::level::debug;
    if (python <= 20) return spdlog::level::info;
    if (python <= 30) return spdlog::level::warn;
    if (python <= 40) return spdlog::level::err;
    if (python <= 50) return spdlog::level::critical;
    return spdlog::level::off;
}

// While the interpreter shuts down (a manager closed by the module's teardown): what
// logging.lastResort would print, straight to stderr.
void to_stderr(int level, const std::string& text) {
    if (level < 30) return;
    const char* name = level >= 50 ? "CRITICAL" : level >= 40 ? "ERROR" : "WARNING";
    const std::string line = std::string("checkpoint: ") + name + ": " + text + "\n";
    const ssize_t written = ::write(STDERR_FILENO, line.data(), line.size());
    (void)written;  // nowhere left to report a failed write to stderr
}

class PythonLoggingSink final : public spdlog::sinks::sink {
public:
    void log(const spdlog::details::log_msg& message) override {
        const int level = python_level(message.level);
        std::string text(message.payload.data(), message.payload.size());
        if (py_logger_log == nullptr || !Py_IsInitialized() || interpreter_finalizing()) {
            to_stderr(level, text);
            return;
        }
        // Takes the GIL if this thread does not hold it (the API releases it around the
        // library's calls). No lock of the library is held while it logs, so this cannot
        // deadlock with a thread that holds the GIL and waits for the library.
        const PyGILState_STATE state = PyGILState_Ensure();
        PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
        PyErr_Fetch(&type, &value, &traceback);  // keep an exception being raised intact
        PyObject* line = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()),
                                              "backslashreplace");
        PyObject* result = nullptr;
        if (line != nullptr) {
            result = PyObject_CallFunction(py_logger_log, "iO", level, line);
            Py_DECREF(line);
        }
        if (result == nullptr) {
            // The handlers failed (logging's own handlers report and swallow their errors,
            // so this is rare): the line must not be lost, nor the caller's call fail.
            PyErr_Clear();
            to_stderr(level, text);
        }
        Py_XDECREF(result);
        PyErr_Restore(type, value, traceback);
        PyGILState_Release(state);
    }
    void flush() override {}
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
};

}  // namespace

void init_logging() {
    if (py_logger != nullptr) return;
    py::object logger = py::module_::import("logging").attr("getLogger")("checkpoint");
    py::object log = logger.attr("log");
    py::object effective = logger.attr("getEffectiveLevel");
    py_logger = logger.release().ptr();
    py_logger_log = log.release().ptr();
    py_get_effective_level = effective.release().ptr();
}

std::shared_ptr<spdlog::logger> python_logger() {
    static const auto logger = [] {
        auto made =
            std::make_shared<spdlog::logger>("checkpoint", std::make_shared<PythonLoggingSink>());
        made->set_level(spdlog::level::info);
        return made;
    }();
    return logger;
}

void sync_log_level() {
    PyObject* level = PyObject_CallNoArgs(py_get_effective_level);
    if (level == nullptr) throw py::error_already_set();
    const long value = PyLong_AsLong(level);
    Py_DECREF(level);
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    python_logger()->set_level(spdlog_level(value));
}

}  // namespace checkpoint::python
