/* SPDX-License-Identifier: MIT */
/* api.c — the hook library's own functions (include/weft/hook.h). */
#define _GNU_SOURCE
#include "hook.h"

#include <weft/hook.h>

#include <dlfcn.h>
#include <errno.h>

/* Whether the program's read(2) reaches this library: the read the dynamic linker gives the
 * program (dlsym(RTLD_DEFAULT): ours, or an interceptor before us, such as a sanitizer's,
 * which calls the next one) is called on descriptor -1, and the hook counts calls it sees on
 * -1 (weft__hook_probe_hits, on this thread). */
int weft_hook_active(void)
{
    ssize_t (*rd)(int, void *, size_t) =
        (ssize_t(*)(int, void *, size_t))dlsym(RTLD_DEFAULT, "read");
    if (!rd)
        return 0;
    int err = weft__hook_errno();
    unsigned before = weft__hook_probe_hits;
    char c;
    (void)rd(-1, &c, 1);
    weft__hook_set_errno(err);
    return weft__hook_probe_hits != before;
}

int weft_hook_disable(void)
{
    return weft__hook_off_add(1);
}

int weft_hook_enable(void)
{
    return weft__hook_off_add(-1);
}
