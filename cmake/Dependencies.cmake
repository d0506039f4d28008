# Every dependency comes from a Debian 12 package (see DESIGN.md).
find_package(Vulkan REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(CURL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_package(CLI11 CONFIG REQUIRED)
find_package(PNG REQUIRED)
find_package(JPEG REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)

# shaderc linked statically so that binaries run on hosts without shaderc (GPU.md): Debian's
# libshaderc_combined.a lacks glslang and SPIRV-Tools, which follow it in this order.
set(MEGANEURA_SHADERC_LIBS "")
foreach(lib shaderc_combined glslang MachineIndependent GenericCodeGen OSDependent OGLCompiler
            SPIRV HLSL SPIRV-Tools-opt SPIRV-Tools)
  find_library(MEGANEURA_LIB_${lib} NAMES lib${lib}.a REQUIRED)
  list(APPEND MEGANEURA_SHADERC_LIBS ${MEGANEURA_LIB_${lib}})
endforeach()
add_library(meganeura_shaderc INTERFACE)
target_link_libraries(meganeura_shaderc INTERFACE ${MEGANEURA_SHADERC_LIBS} Threads::Threads)
