/* SPDX-License-Identifier: MIT */
/* error.c — floor 0 (platform): weft_strerror and the always-on panic. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if WEFT_TSAN
_Atomic int weft__fence_word;
#endif

const char *weft_strerror(int code)
{
    switch (code) {
#define WEFT__ERRCASE(name, value, text)                                                           \
    case WEFT_##name:                                                                              \
        return text;
        WEFT_ERRNO_MAP(WEFT__ERRCASE)
#undef WEFT__ERRCASE
    case 0:
        return "success";
    default:
        if (code < 0 && code > -4000)
            return strerror(-code); /* an OS error passed through */
        return "unknown error";
    }
}

void weft__panic(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", buf);
    fflush(stderr);
    abort();
}
