# Install rules and a CMake package so other projects can find_package(meganeura) and link
# meganeura::meganeura.
include(CMakePackageConfigHelpers)
get_property(MEGANEURA_EXPORTED GLOBAL PROPERTY MEGANEURA_LIBRARIES)
install(TARGETS ${MEGANEURA_EXPORTED} meganeura_shaderc EXPORT meganeuraTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS meganeura_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/meganeura DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT meganeuraTargets NAMESPACE meganeura::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/meganeura)
configure_package_config_file(cmake/meganeuraConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/meganeuraConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/meganeura)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/meganeuraConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/meganeuraConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/meganeuraConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/meganeura)
