// Running C++ code with the GIL released.
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <Python.h>

namespace checkpoint::python {

// True while the interpreter shuts down (threads other than the main one may then no longer
// take the GIL). Public from Python 3.13 on, private before.
inline bool interpreter_finalizing() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// Calls fn() with the GIL released and returns its result, or rethrows its exception, once
// the GIL is held again. Unlike pybind11's gil_scoped_release, the GIL is taken back in
// ordinary code, not in a destructor: a daemon thread that takes it back while the
// interpreter shuts down is ended by Python (pthread_exit), whose unwinding must not pass
// through a noexcept destructor (that would abort the process). fn must not touch Python.
template <typename Fn>
auto without_gil(Fn&& fn) -> std::invoke_result_t<Fn> {
    using Result = std::invoke_result_t<Fn>;
    std::exception_ptr error;
    PyThreadState* state = PyEval_SaveThread();
    if constexpr (std::is_void_v<Result>) {
        try {
            std::forward<Fn>(fn)();
        } catch (...) {
            error = std::current_exception();
        }
        PyEval_RestoreThread(state);
        if (error) std::rethrow_exception(error);
    } else {
        std::optional<Result> result;
        try {
            result.emplace(std::forward<Fn>(fn)());
        } catch (...) {
            error = std::current_exception();
        }
        PyEval_RestoreThread(state);
        if (error) std::rethrow_exception(error);
        return std::move(*result);
    }
}

}  // namespace checkpoint::python
