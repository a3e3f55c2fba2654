# Turns <MIGRATIONS_DIR>/NNNN_name.sql into a C++ table returned by
# checkpoint::detail::<FUNCTION>() (declared in lib/migrations.hpp), so the library never
# reads them at run time. Run as:
#   cmake -D MIGRATIONS_DIR=... -D OUTPUT=... -D FUNCTION=... -P EmbedMigrations.cmake
file(GLOB files RELATIVE "${MIGRATIONS_DIR}" "${MIGRATIONS_DIR}/*.sql")
list(SORT files)
set(entries "")
set(expected 1)
foreach(name IN LISTS files)
  if(NOT name MATCHES "^([0-9][0-9][0-9][0-9])_[a-z0-9_]+\\.sql$")
    message(FATAL_ERROR "${MIGRATIONS_DIR}/${name}: name must be NNNN_lower_snake_case.sql")
  endif()
  math(EXPR number "${CMAKE_MATCH_1}")
  if(NOT number EQUAL expected)
    message(FATAL_ERROR "${MIGRATIONS_DIR}/${name}: expected migration number ${expected}; numbers must start at 1 with no gaps")
  endif()
  file(READ "${MIGRATIONS_DIR}/${name}" sql)
  if(sql MATCHES "\\)migration\"")
    message(FATAL_ERROR "${MIGRATIONS_DIR}/${name} contains the raw-string delimiter )migration\"")
  endif()
  string(APPEND entries "    {${number}, \"${name}\", R\"migration(${sql})migration\"},\n")
  math(EXPR expected "${expected} + 1")
endforeach()
if(expected EQUAL 1)
  message(FATAL_ERROR "no migrations found in ${MIGRATIONS_DIR}")
endif()
set(content "// Generated from ${MIGRATIONS_DIR}/*.sql by cmake/EmbedMigrations.cmake. Do not edit.
#include \"migrations.hpp\"

namespace checkpoint::detail {

const std::vector<Migration>& ${FUNCTION}() {
  static const std::vector<Migration> migrations = {
${entries}  };
  return migrations;
}

}  // namespace checkpoint::detail
")
file(WRITE "${OUTPUT}.tmp" "${content}")
configure_file("${OUTPUT}.tmp" "${OUTPUT}" COPYONLY)
file(REMOVE "${OUTPUT}.tmp")
