#include "convert.hpp"

#include <checkpoint/error.hpp>

#include <cmath>
#include <limits>

namespace checkpoint::python {

namespace {

// Deeper nesting than this is refused (a cycle would otherwise recurse forever).
constexpr int max_json_depth = 200;

std::string type_name(py::handle value) {
    return Py_TYPE(value.ptr())->tp_name;
}

[[noreturn]] void invalid(const std::string& message) {
    throw Error(ErrorCode::InvalidArgument, message);
}

nlohmann::json to_json(py::handle value, const std::string& where, int depth) {
    if (depth > max_json_depth) {
        invalid(where + " is nested more than " + std::to_string(max_json_depth) +
                " levels deep (or refers to itself); nothing was written");
    }
    if (value.is_none()) return nullptr;
    if (PyBool_Check(value.ptr())) return value.ptr() == Py_True;
    if (PyLong_Check(value.ptr())) {
        int overflow = 0;
        const long long number = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
        if (overflow == 0) {
            if (number == -1 && PyErr_Occurred()) throw py::error_already_set();
            return static_cast<std::int64_t>(number);
        }
        if (overflow > 0) {
            const unsigned long long big = PyLong_AsUnsignedLongLong(value.ptr());
            if (!(big == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
                return static_cast<std::uint64_t>(big);
            }
            PyErr_Clear();
        }
        invalid(where +
                " is an int outside the 64-bit range; store it as a string. Nothing "
                "was written");
    }
    if (PyFloat_Check(value.ptr())) {
        const double number = PyFloat_AS_DOUBLE(value.ptr());
        if (!std::isfinite(number)) {
            invalid(where + " is " + py::str(value).cast<std::string>() +
                    ", which JSON cannot hold; nothing was written");
        }
        return number;
    }
    if (PyUnicode_Check(value.ptr())) return std::string(utf8_view(value, where.c_str()));
    if (PyDict_Check(value.ptr())) {
        nlohmann::json object = nlohmann::json::object();
        for (const auto& [key, item] : py::reinterpret_borrow<py::dict>(value)) {
            if (!PyUnicode_Check(key.ptr())) {
                invalid(where + " has a key of type " + type_name(key) +
                        ": JSON object keys must be str; nothing was written");
            }
            std::string name(utf8_view(key, (where + " key").c_str()));
            object[name] = to_json(item, where + "['" + name + "']", depth + 1);
        }
        return object;
    }
    if (PyList_Check(value.ptr()) || PyTuple_Check(value.ptr())) {
        nlohmann::json array = nlohmann::json::array();
        std::size_t index = 0;
        for (const auto item : value) {
            array.push_back(to_json(item, where + "[" + std::to_string(index++) + "]", depth + 1));
        }
        return array;
    }
    invalid(where + " is of type " + type_name(value) +
            ", which JSON cannot hold (use dict, list, str, int, float, bool or None); nothing "
            "was written");
}

}  // namespace

std::string_view utf8_view(py::handle value, const char* what) {
    if (!PyUnicode_Check(value.ptr())) {
        throw py::type_error(std::string(what) + " must be str, not " + type_name(value));
    }
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(value.ptr(), &size);
    if (data == nullptr) {
        PyErr_Clear();  // UnicodeEncodeError: a lone surrogate
        invalid(std::string("invalid ") + what +
                ": it holds a lone surrogate (U+D800 to U+DFFF), which is not valid UTF-8; "
                "nothing was written");
    }
    return {data, static_cast<std::size_t>(size)};
}

std::string utf8_string(py::handle value, const char* what) {
    return std::string(utf8_view(value, what));
}

std::string utf8_lossy(py::handle text) {
    Py_ssize_t size = 0;
    if (const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size)) {
        return {data, static_cast<std::size_t>(size)};
    }
    PyErr_Clear();  // a lone surrogate: encode code point by code point
    std::string result;
    const Py_ssize_t length = PyUnicode_GetLength(text.ptr());
    for (Py_ssize_t i = 0; i < length; ++i) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text.ptr(), i);
        if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
        if (c < 0x80) {
            result += static_cast<char>(c);
        } else if (c < 0x800) {
            result += static_cast<char>(0xC0 | (c >> 6));
            result += static_cast<char>(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            result += static_cast<char>(0xE0 | (c >> 12));
            result += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            result += static_cast<char>(0x80 | (c & 0x3F));
        } else {
            result += static_cast<char>(0xF0 | (c >> 18));
            result += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
            result += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
            result += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return result;
}

std::filesystem::path path_arg(py::handle value, const char* what) {
    py::object path;
    try {
        path = py::module_::import("os").attr("fspath")(value);
    } catch (py::error_already_set& e) {
        if (!e.matches(PyExc_TypeError)) throw;
        throw py::type_error(std::string(what) + " must be str, bytes or os.PathLike, not " +
                             type_name(value));
    }
    if (PyUnicode_Check(path.ptr())) {
        path = py::module_::import("os").attr("fsencode")(path);
    }
    const auto bytes = path.cast<py::bytes>();
    std::string text = bytes;
    if (text.find('\0') != std::string::npos) {
        invalid(std::string("invalid ") + what + ": it holds a NUL character");
    }
    return std::filesystem::path(std::move(text));
}

py::str path_to_python(const std::filesystem::path& path) {
    return py::module_::import("os").attr("fsdecode")(py::bytes(path.native()));
}

std::string bytes_arg(py::handle value, const char* what) {
    if (PyBytes_Check(value.ptr())) {
        return std::string(PyBytes_AS_STRING(value.ptr()),
                           static_cast<std::size_t>(PyBytes_GET_SIZE(value.ptr())));
    }
    if (PyUnicode_Check(value.ptr()) || !PyObject_CheckBuffer(value.ptr())) {
        throw py::type_error(std::string(what) +
                             " must be bytes-like (bytes, bytearray, "
                             "memoryview), not " +
                             type_name(value) +
                             (PyUnicode_Check(value.ptr()) ? "; encode text first" : ""));
    }
    Py_buffer view;
    if (PyObject_GetBuffer(value.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
        throw py::error_already_set();
    }
    std::string copy;
    try {
        copy.assign(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
    } catch (...) {
        PyBuffer_Release(&view);
        throw;
    }
    PyBuffer_Release(&view);
    return copy;
}

std::chrono::milliseconds duration_arg(py::handle value, const char* what) {
    double seconds = 0;
    const auto timedelta = py::module_::import("datetime").attr("timedelta");
    if (py::isinstance(value, timedelta)) {
        seconds = value.attr("total_seconds")().cast<double>();
    } else if ((PyLong_Check(value.ptr()) || PyFloat_Check(value.ptr())) &&
               !PyBool_Check(value.ptr())) {
        seconds = PyFloat_AsDouble(value.ptr());
        if (seconds == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    } else {
        throw py::type_error(std::string(what) +
                             " must be seconds (int or float) or a datetime.timedelta, not " +
                             type_name(value));
    }
    // Beyond ±100 years the library refuses the value anyway; keep the conversion defined.
    constexpr double limit = 100.0 * 365 * 24 * 3600;
    if (!std::isfinite(seconds) || seconds > limit || seconds < -limit) {
        invalid(std::string("invalid ") + what + ": " + py::str(value).cast<std::string>() +
                " seconds");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::floor(seconds * 1000.0)));
}

std::vector<std::string> string_list_arg(py::handle value, const char* what) {
    if (PyUnicode_Check(value.ptr()) || PyBytes_Check(value.ptr())) {
        throw py::type_error(std::string(what) + " must be a list of str, not a single " +
                             type_name(value) + " (write [name])");
    }
    if (!py::isinstance<py::iterable>(value)) {
        throw py::type_error(std::string(what) + " must be a list of str, not " + type_name(value));
    }
    std::vector<std::string> names;
    for (const auto item : value) names.push_back(utf8_string(item, what));
    return names;
}

nlohmann::json json_object_arg(py::handle value, const char* what) {
    if (value.is_none()) return nlohmann::json::object();
    if (!PyDict_Check(value.ptr())) {
        throw py::type_error(std::string(what) + " must be a dict, not " + type_name(value));
    }
    return to_json(value, what, 0);
}

py::object to_python(const nlohmann::json& value) {
    switch (value.type()) {
        case nlohmann::json::value_t::null:
        case nlohmann::json::value_t::discarded:
            return py::none();
        case nlohmann::json::value_t::boolean:
            return py::bool_(value.get<bool>());
        case nlohmann::json::value_t::number_integer:
            return py::int_(value.get<std::int64_t>());
        case nlohmann::json::value_t::number_unsigned:
            return py::int_(value.get<std::uint64_t>());
        case nlohmann::json::value_t::number_float:
            return py::float_(value.get<double>());
        case nlohmann::json::value_t::string:
            return py::str(value.get_ref<const std::string&>());
        case nlohmann::json::value_t::binary:
            return py::bytes(std::string(value.get_binary().begin(), value.get_binary().end()));
        case nlohmann::json::value_t::array: {
            py::list list;
            for (const auto& item : value) list.append(to_python(item));
            return std::move(list);
        }
        case nlohmann::json::value_t::object: {
            py::dict dict;
            for (const auto& [key, item] : value.items()) dict[py::str(key)] = to_python(item);
            return std::move(dict);
        }
    }
    return py::none();
}

}  // namespace checkpoint::python
