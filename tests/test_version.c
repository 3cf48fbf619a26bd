/* SPDX-License-Identifier: MIT */
/* test_version.c — the version and ABI contract: weft_version() agrees with the generated
 * weft/version.h (and with the CMake project version the build passes in), the public
 * structs that programs fill keep their reserved room and refuse a non-zero reserved word,
 * and every error code has its own text that says what happened. */
#include "harness.h"
#include <weft.h>

#include <stdio.h>
#include <string.h>

static long checks;

static void *nothing(void *arg)
{
    return arg;
}

static int abi_main(void *arg)
{
    (void)arg;
    /* A spawn option struct with a non-zero reserved word is refused; zeroed, it is fine. */
    weft_spawn_opts opts = {.name = "x"};
    opts.reserved[4] = 1;
    weft_task t;
    CHECK_EQ(weft_spawn_ex(&t, nothing, NULL, &opts), WEFT_EINVAL);
    opts.reserved[4] = 0;
    CHECK_EQ(weft_spawn_ex(&t, nothing, NULL, &opts), 0);
    CHECK_EQ(weft_join(t, NULL), 0);
    /* weft_stats_get leaves the reserved counters zero. */
    weft_stats st;
    memset(&st, 0xff, sizeof st);
    CHECK_EQ(weft_stats_get(&st), 0);
    for (size_t i = 0; i < sizeof st.reserved / sizeof st.reserved[0]; i++)
        CHECK_EQ(st.reserved[i], 0);
    return 0;
}

static int ran_main(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

int main(void)
{
    /* Version: the library's, the header's and the project's agree. */
    unsigned v = weft_version();
    CHECK_EQ(v, WEFT_VERSION);
    char want[32];
    snprintf(want, sizeof want, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
    CHECK(strcmp(weft_version_string(), want) == 0);
    CHECK(strcmp(weft_version_string(), WEFT_VERSION_STRING) == 0);
#ifdef WEFT_TEST_PROJECT_VERSION
    CHECK(strcmp(weft_version_string(), WEFT_TEST_PROJECT_VERSION) == 0);
#endif

    /* weft_config: a non-zero reserved word is refused before anything starts. */
    int ran = 0;
    weft_config cfg = {.threads = 2};
    cfg.reserved[9] = 7; /* the last word */
    CHECK_EQ(weft_run(ran_main, &ran, &cfg), WEFT_EINVAL);
    CHECK_EQ(ran, 0);
    cfg.reserved[9] = 0;
    /* The fields taken from reserved words: out-of-range values are refused; the old
     * padding before them is ignored whatever it holds. */
    cfg.stall_ms = -2;
    CHECK_EQ(weft_run(ran_main, &ran, &cfg), WEFT_EINVAL);
    cfg.stall_ms = 0;
    cfg.deadlock = 2;
    CHECK_EQ(weft_run(ran_main, &ran, &cfg), WEFT_EINVAL);
    cfg.deadlock = -2;
    CHECK_EQ(weft_run(ran_main, &ran, &cfg), WEFT_EINVAL);
    cfg.deadlock = 0;
    CHECK_EQ(ran, 0);
    cfg.padding_ = 0x5a5a5a5a;
    CHECK_EQ(weft_run(ran_main, &ran, &cfg), 0);
    CHECK_EQ(ran, 1);
    cfg.padding_ = 0;
    CHECK_EQ(weft_run(abi_main, NULL, &cfg), 0);

    /* Error texts: one per code, none "unknown", none shared; WEFT_ESTATE names the mutex
     * case too (not only tasks), as weft_mutex_unlock returns it. */
    static const int codes[] = {
#define CODE(name, value, text) WEFT_##name,
        WEFT_ERRNO_MAP(CODE)
#undef CODE
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *t = weft_strerror(codes[i]);
        CHECK(t != NULL && strcmp(t, "unknown error") != 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(t, weft_strerror(codes[j])) != 0);
    }
    CHECK(strstr(weft_strerror(WEFT_ESTATE), "mutex not locked") != NULL);
    CHECK(strcmp(weft_strerror(-4006), "unknown error") == 0); /* WEFT_EEOF is gone */
    weft_mutex m = WEFT_MUTEX_INIT;
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_ESTATE);

    TEST_PASS("test_version", checks);
    return 0;
}
