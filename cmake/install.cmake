# `cmake --install`: libcaveat for agency systems to build against. The
# public header caveat.h with caveat/error.h and the report schema's
# caveat/report.pb-c.h, libcaveat.so.MAJOR and libcaveat.a, caveat.pc for
# pkg-config and a CMake package (find_package(caveat): caveat::caveat,
# caveat::caveat_static). The command line and caveatd are installed too.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(FILES ${PROJECT_SOURCE_DIR}/client/caveat.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/proto/caveat/error.h ${CAVEAT_REPORT_HEADER}
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/caveat)

# An installed program finds the headers under include/; the static
# library's dependencies are the ones caveatConfig.cmake looks up, under
# names of its own so as not to clash with the application's.
foreach(target caveat_shared caveat_static)
  target_include_directories(${target} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
target_link_libraries(caveat_shared INTERFACE $<INSTALL_INTERFACE:PkgConfig::caveat_PROTOBUFC>)
target_link_libraries(
  caveat_static
  INTERFACE $<INSTALL_INTERFACE:PkgConfig::caveat_PROTOBUFC>
            $<INSTALL_INTERFACE:PkgConfig::caveat_FYAML> $<INSTALL_INTERFACE:PkgConfig::caveat_SODIUM>
            $<INSTALL_INTERFACE:PkgConfig::caveat_CZMQ> $<INSTALL_INTERFACE:PkgConfig::caveat_ZMQ>
            $<INSTALL_INTERFACE:Threads::Threads>)

install(TARGETS caveat_shared caveat_static EXPORT caveatTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS caveat caveatd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(CAVEAT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/caveat)
install(EXPORT caveatTargets NAMESPACE caveat:: DESTINATION ${CAVEAT_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/caveatConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/caveatConfig.cmake
                              INSTALL_DESTINATION ${CAVEAT_CMAKE_DIR})
# 0.x: a new minor version may change the API, so only the same minor matches
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/caveatConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/caveatConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/caveatConfigVersion.cmake
        DESTINATION ${CAVEAT_CMAKE_DIR})

# pkg-config: caveat.h includes protobuf-c's header, so libprotobuf-c is a
# public requirement; the rest only matters when linking statically.
# Its prefix is found from where the file is, so the tree can be installed
# anywhere (cmake --install --prefix DIR) after configuring.
file(RELATIVE_PATH CAVEAT_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
configure_file(${PROJECT_SOURCE_DIR}/cmake/caveat.pc.in ${CMAKE_CURRENT_BINARY_DIR}/caveat.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/caveat.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
