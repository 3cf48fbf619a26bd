#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# missing.sh TEST PACKAGE — stands in for a hook proof whose library was not found when the
# tree was configured: skipped (exit 77) with WEFT_NO_INSTALL=1, else a failure that says
# what to install (scripts/deps.sh hook installs it; CI does).
if [ "${WEFT_NO_INSTALL:-0}" = 1 ]; then
    echo "$1: skipped: $2 is not installed (WEFT_NO_INSTALL=1)"
    exit 77
fi
echo "$1: $2 is not installed: run scripts/deps.sh hook, then reconfigure" >&2
exit 1
