// checkpoint.Error and its subclasses, and the translation of C++ exceptions into them.
#pragma once

#include <stdexcept>
#include <string>

#include <pybind11/pybind11.h>

namespace checkpoint::python {

namespace py = pybind11;

// Errors of the binding itself, raised as checkpoint.Error subclasses with these codes:
//   "closed"  the manager was closed (close(), or the end of a `with` block): ClosedError
//   "forked"  the manager was opened by the parent of this process (os.fork()): ForkedError
// Thrown from code that may run with the GIL released; translated once it is held again.
class BindingError : public std::runtime_error {
public:
    BindingError(std::string code, const std::string& message)
        : std::runtime_error(message), code_(std::move(code)) {}
    const std::string& code() const noexcept { return code_; }

private:
    std::string code_;
};

// Creates checkpoint.Error and its subclasses in `module` and registers the translation of
// checkpoint::Error and BindingError into them.
void register_errors(py::module_& module);

}  // namespace checkpoint::python
