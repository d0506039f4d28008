# Helper: a library whose sources are every .cpp in the listed src/ folders.
function(meganeura_glob_sources out)
  set(files "")
  foreach(dir ${ARGN})
    file(GLOB_RECURSE found CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${dir}/*.cpp)
    list(APPEND files ${found})
  endforeach()
  set(${out} ${files} PARENT_SCOPE)
endfunction()

set(MEGANEURA_WARNINGS -Wall -Wextra)
