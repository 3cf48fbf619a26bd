# SPDX-License-Identifier: MIT
# FindLibev.cmake — find libev (Debian/Ubuntu: libev-dev, which ships no pkg-config or CMake
# file) and provide the imported target Libev::ev.
#
# weft's build uses it, and it is installed next to weftConfig.cmake so that a program that
# links weft::weft_static finds the libev of *its* machine (find_dependency(Libev)), not the
# path of the machine weft was built on. Sets Libev_FOUND, Libev_INCLUDE_DIR, Libev_LIBRARY;
# hints: Libev_ROOT or CMAKE_PREFIX_PATH.
find_path(Libev_INCLUDE_DIR ev.h PATH_SUFFIXES libev)
find_library(Libev_LIBRARY NAMES ev)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libev REQUIRED_VARS Libev_LIBRARY Libev_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "weft needs libev (Debian/Ubuntu: apt-get install libev-dev)")
if(Libev_FOUND AND NOT TARGET Libev::ev)
  add_library(Libev::ev UNKNOWN IMPORTED)
  set_target_properties(Libev::ev PROPERTIES
    IMPORTED_LOCATION "${Libev_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${Libev_INCLUDE_DIR}")
endif()
mark_as_advanced(Libev_INCLUDE_DIR Libev_LIBRARY)
