# Turns the dashboard's files (tools/checkpointctl/dashboard/*.css, *.js) into C++ string
# constants, so checkpointctl serves them and inlines them into reports without reading
# any file at run time. Run as: cmake -D ASSETS="a.css;b.js" -D OUTPUT=... -P EmbedAssets.cmake
set(entries "")
foreach(file IN LISTS ASSETS)
  get_filename_component(name "${file}" NAME)
  file(READ "${file}" text)
  if(text MATCHES "\\)asset\"")
    message(FATAL_ERROR "${file} contains the raw-string delimiter )asset\"")
  endif()
  # Inlined into <script> and <style> elements of the report: they must not end them.
  string(TOLOWER "${text}" lower)
  if(lower MATCHES "</script" OR lower MATCHES "</style" OR lower MATCHES "<!--")
    message(FATAL_ERROR "${file} contains </script, </style or <!--, which would end its element when inlined")
  endif()
  string(APPEND entries "    {\"${name}\", R\"asset(${text})asset\"},\n")
endforeach()
set(content "// Generated from tools/checkpointctl/dashboard/ by cmake/EmbedAssets.cmake. Do not edit.
#include \"dashboard_pages.hpp\"

namespace checkpointctl::dashboard {

const std::map<std::string, std::string_view>& embedded_assets() {
  static const std::map<std::string, std::string_view> assets = {
${entries}  };
  return assets;
}

}  // namespace checkpointctl::dashboard
")
file(WRITE "${OUTPUT}.tmp" "${content}")
configure_file("${OUTPUT}.tmp" "${OUTPUT}" COPYONLY)
file(REMOVE "${OUTPUT}.tmp")
