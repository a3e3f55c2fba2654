// Python values <-> the C++ API's types: names, paths, bytes, durations, metadata (JSON).
// Every function here needs the GIL. A value of the wrong type raises TypeError (as Python
// does); a value of the right type that the library cannot take raises
// checkpoint.InvalidArgumentError (a ValueError) through checkpoint::Error.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <nlohmann/json.hpp>

namespace checkpoint::python {

namespace py = pybind11;

// The UTF-8 text of a str, without copying: the view stays valid while `value` lives (a
// str caches its UTF-8 form and is immutable), so it may be used with the GIL released.
// `what` names the argument in messages ("stage name"). A str holding a lone surrogate
// (not encodable as UTF-8) raises InvalidArgumentError; anything but a str, TypeError.
std::string_view utf8_view(py::handle value, const char* what);
std::string utf8_string(py::handle value, const char* what);

// Any str as UTF-8, a lone surrogate becoming U+FFFD (for failure messages: never refused).
std::string utf8_lossy(py::handle text);

// A file system path: str, bytes or os.PathLike (str paths are encoded like os.fsencode).
std::filesystem::path path_arg(py::handle value, const char* what);

// A path as str, decoded like os.fsdecode (bytes that are not UTF-8 survive the round trip).
py::str path_to_python(const std::filesystem::path& path);

// bytes, bytearray, memoryview or any C-contiguous buffer, copied. str raises TypeError.
std::string bytes_arg(py::handle value, const char* what);

// int or float seconds, or datetime.timedelta, in milliseconds (rounded down).
std::chrono::milliseconds duration_arg(py::handle value, const char* what);

// A list, tuple or other iterable of str (but not a str itself).
std::vector<std::string> string_list_arg(py::handle value, const char* what);

// A JSON object from a dict of str keys and values of dict, list, tuple, str, int, float
// (finite), bool and None. Raises InvalidArgumentError for anything else, naming where.
nlohmann::json json_object_arg(py::handle value, const char* what);

// The inverse: dict, list, str, int, float, bool, None.
py::object to_python(const nlohmann::json& value);

}  // namespace checkpoint::python
