# SPDX-License-Identifier: MIT
# toolchain-aarch64.cmake — cross-build weft for aarch64 Linux (glibc) and run its tests under
# qemu-user.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
#   cmake --build build-aarch64 && ctest --test-dir build-aarch64
#
# Needs (Debian): gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user (scripts/test-aarch64.sh
# installs them) and, for the whole project, the target's libev: libev-dev:arm64 (see below).
# ctest runs every test executable through CMAKE_CROSSCOMPILING_EMULATOR, i.e.
# `qemu-aarch64 -L /usr/aarch64-linux-gnu <test>`; -L points qemu at the aarch64 dynamic loader
# and libraries. Timing under qemu means nothing.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(WEFT_AARCH64_TRIPLE aarch64-linux-gnu CACHE STRING "GNU triple of the aarch64 cross tools")
set(WEFT_AARCH64_SYSROOT /usr/${WEFT_AARCH64_TRIPLE} CACHE PATH
    "Where the aarch64 libc lives (qemu -L and the find root)")

set(CMAKE_C_COMPILER ${WEFT_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${WEFT_AARCH64_TRIPLE}-g++)
set(CMAKE_ASM_COMPILER ${WEFT_AARCH64_TRIPLE}-gcc)

# Look for libraries and headers of the target only; programs (cmake helpers) on the host.
# Two roots: the cross libc (libc6-dev-arm64-cross) and / for Debian multiarch packages of
# the target (`dpkg --add-architecture arm64; apt-get install libev-dev:arm64` puts libev.so
# in /usr/lib/aarch64-linux-gnu, which CMAKE_LIBRARY_ARCHITECTURE makes CMake search; host
# libraries live in /usr/lib/x86_64-linux-gnu and are not searched).
set(CMAKE_LIBRARY_ARCHITECTURE ${WEFT_AARCH64_TRIPLE})
set(CMAKE_FIND_ROOT_PATH ${WEFT_AARCH64_SYSROOT} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(WEFT_QEMU_AARCH64 qemu-aarch64)
if(NOT WEFT_QEMU_AARCH64)
  # Still configure (a build without running tests is useful); ctest will then fail loudly.
  message(WARNING "qemu-aarch64 not found: install qemu-user to run the tests (ctest)")
  set(WEFT_QEMU_AARCH64 qemu-aarch64)
endif()
# A list: the emulator and its arguments. add_test(NAME ... COMMAND <target>) prepends it.
# LD_LIBRARY_PATH keeps libc with the dynamic loader it was built with: -L makes qemu load
# the cross package's ld-linux-aarch64.so.1 from the sysroot, but that loader searches the
# multiarch /lib/aarch64-linux-gnu first, where libev-dev:arm64 brings Debian's libc6:arm64 —
# another build of glibc. The pair of two builds hung in the first pthread_create (a
# loader-private list walked with the other build's layout). The sysroot's lib comes first
# now; libev is still found in the multiarch directory.
set(CMAKE_CROSSCOMPILING_EMULATOR ${WEFT_QEMU_AARCH64} -L ${WEFT_AARCH64_SYSROOT}
    -E LD_LIBRARY_PATH=${WEFT_AARCH64_SYSROOT}/lib)

# pkg-config (samples and hook proofs: OpenSSL, hiredis, libcurl, libpq) sees the target's
# multiarch .pc files only, not the host's: a library not installed for arm64 is then
# missing (its sample or test is skipped) instead of linked from the host's x86-64 copy.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${WEFT_AARCH64_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
