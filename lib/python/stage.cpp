#include "stage.hpp"

#include <string>

#include <pybind11/eval.h>

#include "convert.hpp"
#include "manager.hpp"

namespace checkpoint::python {

namespace {

class Stage {
public:
    Stage(py::object manager, py::object name, py::object fingerprint, py::object inputs)
        : manager_object_(std::move(manager)),
          manager_(manager_object_.cast<Manager*>()),
          name_(std::move(name)),
          fingerprint_(std::move(fingerprint)),
          inputs_(std::move(inputs)) {}

    // The stage is completed and up to date (with the fingerprint, if one was given).
    bool is_done() { return has_checkpoint(*manager_, name_, fingerprint_); }
    void begin() { begin_stage(*manager_, name_); }
    void save(py::handle output) {
        save_checkpoint(*manager_, name_, output, metadata, fingerprint_, inputs_);
    }
    void fail(const std::string& message) { fail_stage(*manager_, name_, py::str(message)); }
    py::object stored_output() { return load_output(*manager_, name_, py::none()); }

    py::object enter(py::object self) {
        done = is_done();
        active_ = !done;
        if (active_) begin();
        return self;
    }

    bool exit(py::handle type, py::handle value) {
        if (!active_) return false;  // done at entry: nothing to record
        active_ = false;
        if (type.is_none()) {
            save(output);
        } else {
            fail(describe(type, value));
        }
        return false;  // an exception of the body goes on
    }

    // "ValueError: bad row" (or the type's name alone when the message is empty).
    static std::string describe(py::handle type, py::handle value) {
        std::string text = py::str(type.attr("__name__")).cast<std::string>();
        if (!value.is_none()) {
            const py::str message(value);
            if (py::len(message) > 0) {
                text += ": " + utf8_lossy(message);
            }
        }
        return text;
    }

    const py::object& name() const noexcept { return name_; }

    bool done = false;
    py::object output = py::none();
    py::object metadata = py::none();

private:
    py::object manager_object_;  // keeps the manager alive
    Manager* manager_;
    py::object name_;
    py::object fingerprint_;
    py::object inputs_;
    bool active_ = false;
};

// Calls fn(*args, **kwargs) between begin and save; a Python exception is recorded as the
// stage's failure and raised again unchanged.
py::object run_recorded(Stage& stage, py::handle fn, const py::args& args,
                        const py::kwargs& kwargs) {
    stage.begin();
    py::object result;
    try {
        result = fn(*args, **kwargs);
    } catch (py::error_already_set& error) {
        stage.fail(Stage::describe(error.type(), error.value()));
        throw;
    }
    return result;
}

bool is_bytes_like(py::handle value) {
    return PyBytes_Check(value.ptr()) || PyByteArray_Check(value.ptr()) ||
           PyMemoryView_Check(value.ptr());
}

// A Python function (so that functools.wraps can give it fn's name, docstring and
// signature) that calls stage._call(fn, *args, **kwargs).
py::object decorate() {
    static PyObject* function = [] {
        py::dict scope;
        py::exec(R"(
import functools

def decorate(call, fn):
    @functools.wraps(fn)
    def run_as_stage(*args, **kwargs):
        return call(fn, *args, **kwargs)
    return run_as_stage
)",
                 scope);
        return py::object(scope["decorate"]).release().ptr();  // lives as long as the module
    }();
    return py::reinterpret_borrow<py::object>(function);
}

}  // namespace

py::object make_stage(py::object manager, py::handle stage, py::handle fingerprint,
                      py::handle inputs) {
    utf8_view(stage, "stage name");  // a str, checked now rather than at first use
    if (!fingerprint.is_none()) utf8_view(fingerprint, "fingerprint");
    py::object list =
        inputs.is_none() ? py::none() : py::object(py::cast(string_list_arg(inputs, "inputs")));
    return py::cast(Stage(std::move(manager), py::reinterpret_borrow<py::object>(stage),
                          py::reinterpret_borrow<py::object>(fingerprint), std::move(list)));
}

bool run_now(py::handle stage_object, py::handle fn) {
    Stage& stage = stage_object.cast<Stage&>();
    if (stage.is_done()) return false;
    run_recorded(stage, fn, py::args(), py::kwargs());
    stage.save(py::none());
    return true;
}

void bind_stage(py::module_& module) {
    py::class_<Stage>(module, "Stage", R"doc(
One stage of a manager, as a context manager or a decorator (manager.stage(name)).

As a context manager, entering checks has_checkpoint: `done` tells whether the stage is
already completed and up to date. A `with` body cannot be skipped, so test `s.done`. When
not done, entering records the start; leaving records the save (with `output` and
`metadata`, if set), or, when the body raised, the failure (the exception goes on).

As a decorator, the function runs only while the stage is not done: its return value is
returned, and stored as the stage's output when it is bytes-like; once done, calls return the
stored output (or None) without running the function.
)doc")
        .def_readonly("done", &Stage::done, "True when the stage was completed at entry.")
        .def_readwrite("output", &Stage::output, "Bytes saved with the checkpoint on leaving.")
        .def_readwrite("metadata", &Stage::metadata, "A dict saved with the checkpoint.")
        .def_property_readonly("name", &Stage::name)
        .def("__enter__", [](py::object self) { return self.cast<Stage&>().enter(self); })
        .def(
            "__exit__",
            [](Stage& stage, py::handle type, py::handle value, py::handle) {
                return stage.exit(type, value);
            },
            py::arg("exc_type"), py::arg("exc_value"), py::arg("traceback"))
        .def(
            "_call",
            [](Stage& stage, py::handle fn, py::args args, py::kwargs kwargs) {
                if (stage.is_done()) return stage.stored_output();
                py::object result = run_recorded(stage, fn, args, kwargs);
                stage.save(is_bytes_like(result) ? py::handle(result) : py::handle(py::none()));
                return result;
            },
            py::arg("function"))
        .def(
            "__call__",
            [](py::object self, py::object fn) {
                if (!PyCallable_Check(fn.ptr())) {
                    throw py::type_error("Stage() decorates a function, not " +
                                         std::string(Py_TYPE(fn.ptr())->tp_name));
                }
                // Calling one only makes a coroutine or generator: the stage would be saved
                // before its body ran.
                const auto inspect = py::module_::import("inspect");
                for (const char* kind :
                     {"iscoroutinefunction", "isgeneratorfunction", "isasyncgenfunction"}) {
                    if (inspect.attr(kind)(fn).cast<bool>()) {
                        throw py::type_error(
                            "Stage() cannot decorate a coroutine or generator function: "
                            "the stage would be saved before its body ran. Use `with "
                            "manager.stage(name) as s:` inside it instead");
                    }
                }
                return decorate()(self.attr("_call"), fn);
            },
            py::arg("function"))
        .def("__repr__", [](Stage& stage) {
            return "<checkpoint.Stage " + py::repr(stage.name()).cast<std::string>() +
                   (stage.done ? " done>" : ">");
        });
}

}  // namespace checkpoint::python
