/* SPDX-License-Identifier: MIT */
/* fuzz_sched.c — a fuzzing harness for the single-worker scheduler and channels.
 *
 * One input (a byte string) is one program, run in its own weft_run with
 * weft_config.threads = 1:
 *
 *   byte 0      channel setup: capacity of channel i = {0, 1, 2, 4}[(b >> 2i) & 3] for the
 *               three channels; bit 6: channel 2 carries 40-byte elements (else 8 bytes)
 *   bytes 1..   the main coroutine's operations, one byte each (op = b & 15, arg = b >> 4);
 *               some take the following bytes as a spawned task's script:
 *     0 spawn    a task running the next 1 + (arg & 7) bytes as its script (joinable;
 *                detached when arg & 8)          8 send_until (deadline 0..15 us)
 *     1 try_send  2 try_recv  3 select, deadline 0   9 recv_until (deadline 0..15 us)
 *     4 yield     5 sleep(0)  6 close                10 join_until a task (0..150 us)
 *     7 cancel a task (or main itself)               11 detach a task
 *     12 select with a deadline  13 len/cap checks  14 mutex lock, yield, unlock
 *     15 spawn a burst of 1 + arg trivial detached tasks
 *   A task's script byte (op = b % 12, arg = b >> 4): 0 send, 1 recv (blocking), 2 try_send,
 *     3 try_recv, 4 blocking select (1..3 cases), 5 select with default, 6 sleep(0..arg us),
 *     7 yield, 8 close, 9 cancel (self, main, or another task), 10 send_until / recv_until,
 *     11 mutex lock, yield, unlock (in a shield when arg & 8).
 *   Main never blocks without a deadline, so its script always ends; then it closes every
 *   channel (waking every blocked task with WEFT_ECLOSED), joins each joinable task and
 *   waits for the detached ones.
 *
 * Invariants checked (abort on violation, so the fuzzer records a crash):
 *   - every return code is one the API documents for that call and situation (no ECLOSED
 *     before a close, no EAGAIN from a blocking call, ECLOSED for a send after the close...);
 *   - cancellation is sticky (a yield reports exactly a pending request, which stays) and a
 *     shield keeps it from being reported (a shielded lock succeeds; main's shutdown runs in
 *     a shield);
 *   - messages: each send carries a unique tag (and a payload derived from it); a receive
 *     must return an intact element whose tag was never received before; at the end, after
 *     draining the channels, exactly the sends that returned 0 were received;
 *   - select completes exactly the case it returns (other receive buffers untouched);
 *   - a closed channel: close again gives ECLOSED, len <= cap, a drained closed channel
 *     gives ECLOSED;
 *   - every task ran to its end: spawned == finished; the runtime ends with only main alive;
 *   - no hang: a watchdog aborts if one input runs for more than 30 s (libFuzzer has its own
 *     -timeout).
 *
 * Builds:
 *   - plain (no FUZZING): a standalone driver, used by the test suite (test_fuzz_replay):
 *       fuzz_sched [--seed N] [--runs N] [--max-len N] [-v] [FILE|DIR ...]
 *     runs the built-in regression inputs, then the given files (a directory: every file in
 *     it), or else N pseudo-random inputs from the seed.
 *   - -DFUZZING with clang -fsanitize=fuzzer: libFuzzer's LLVMFuzzerTestOneInput.
 *   - -DFUZZING with afl-clang-fast/afl-clang-lto: AFL++ persistent mode (shared-memory
 *     test cases) when available, else one input from stdin.
 * scripts/fuzz.sh builds and runs these; tests/fuzz/README.md explains. */
#define _GNU_SOURCE
#include <weft.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NCH 3
#define MAXT 32             /* joinable task slots */
#define FUZZ_MAX_INPUT 1024 /* bytes of an input that are used */
#define BIG_ELEM 40

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            fuzz_fail(__LINE__, #c);                                                               \
    } while (0)

static const uint8_t *cur_data;
static size_t cur_size;

static void dump_input(FILE *f)
{
    fprintf(f, "input (%zu bytes):", cur_size);
    for (size_t i = 0; i < cur_size && i < FUZZ_MAX_INPUT; i++)
        fprintf(f, "%s%02x", i % 32 ? "" : "\n  ", cur_data[i]);
    fputc('\n', f);
}

static void fuzz_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz_sched.c:%d: invariant violated: %s\n", line, what);
    dump_input(stderr);
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------------------------------------
 * The state of one run. Everything runs on the one worker thread, but tasks interleave at
 * every blocking call, so state is shared with care (no atomics needed: one thread). */

struct elem {
    uint32_t tag;
    uint32_t check;
    uint8_t pad[BIG_ELEM - 8];
};

struct run {
    const uint8_t *p;
    size_t n;
    weft_chan *ch[NCH];
    size_t cap[NCH];
    size_t esize[NCH];
    bool closed[NCH]; /* close() returned 0 (or ECLOSED) */
    weft_task main;
    weft_task tasks[MAXT];
    bool live[MAXT]; /* handle not yet joined or detached */
    int ntasks;
    weft_wg detached;
    weft_mutex mu;
    int mu_holder;
    /* message accounting */
    uint32_t ntags, tag_cap;
    uint8_t *sent; /* 1: a send of this tag returned 0 */
    uint8_t *recvd;
    long spawned, finished;
};

static struct run R;

static void make_elem(struct elem *e, uint32_t tag, size_t size)
{
    memset(e, 0, sizeof *e);
    e->tag = tag;
    e->check = tag ^ 0xa5a5a5a5u;
    if (size > 8)
        for (size_t i = 0; i < size - 8; i++)
            e->pad[i] = (uint8_t)(tag * 31 + i);
}

static uint32_t new_tag(void)
{
    CHECK(R.ntags < R.tag_cap);
    return R.ntags++;
}

static void got(int c, const struct elem *e)
{
    CHECK(e->check == (e->tag ^ 0xa5a5a5a5u));
    CHECK(e->tag < R.ntags);
    for (size_t i = 0; i + 8 < R.esize[c]; i++)
        CHECK(e->pad[i] == (uint8_t)(e->tag * 31 + i));
    CHECK(!R.recvd[e->tag]); /* exactly once */
    R.recvd[e->tag] = 1;
}

static const int64_t FOREVER = WEFT_FOREVER;

/* Result-code sets. */
static bool send_ok(int c, int r, bool blocking, bool deadline)
{
    if (r == 0 || r == WEFT_ECLOSED)
        return r == 0 || R.closed[c];
    if (r == WEFT_EAGAIN)
        return !blocking;
    if (r == WEFT_ETIMEDOUT)
        return blocking && deadline;
    if (r == WEFT_ECANCELED)
        return blocking;
    return false;
}

static bool recv_ok(int c, int r, bool blocking, bool deadline)
{
    return send_ok(c, r, blocking, deadline);
}

static void do_send(int c, int how, int64_t deadline)
{
    struct elem e;
    uint32_t tag = new_tag();
    make_elem(&e, tag, R.esize[c]);
    bool was_closed = R.closed[c];
    int r = how == 0   ? weft_chan_send(R.ch[c], &e)
            : how == 1 ? weft_chan_try_send(R.ch[c], &e)
                       : weft_chan_send_until(R.ch[c], &e, deadline);
    CHECK(send_ok(c, r, how != 1, how == 2));
    if (was_closed)
        CHECK(r == WEFT_ECLOSED); /* checked before any blocking: no cancel, no timeout */
    if (r == 0)
        R.sent[tag] = 1;
}

static void do_recv(int c, int how, int64_t deadline)
{
    struct elem e;
    memset(&e, 0xee, sizeof e);
    int r = how == 0   ? weft_chan_recv(R.ch[c], &e)
            : how == 1 ? weft_chan_try_recv(R.ch[c], &e)
                       : weft_chan_recv_until(R.ch[c], &e, deadline);
    CHECK(recv_ok(c, r, how != 1, how == 2));
    if (r == 0)
        got(c, &e);
    else
        CHECK(e.tag == 0xeeeeeeeeu); /* a failed receive writes nothing */
}

/* A select over 1..3 cases picked by the bits of `sel`; deadline 0, small, or forever. */
static void do_select(uint8_t sel, uint8_t sel2, int64_t deadline)
{
    weft_case cs[3];
    struct elem bufs[3];
    uint32_t tags[3];
    int n = 1 + sel % 3;
    int nact = 0;
    for (int i = 0; i < n; i++) {
        int c = (sel2 >> (2 * i)) % NCH;
        int kind = ((sel >> (2 + 2 * i)) & 3); /* 0,1 recv, 2 send, 3 none */
        if (kind == 3 && deadline != FOREVER) {
            cs[i] = (weft_case){NULL, WEFT_OP_NONE, NULL, 0};
            tags[i] = UINT32_MAX;
            continue;
        }
        nact++;
        if (kind == 2) {
            tags[i] = new_tag();
            make_elem(&bufs[i], tags[i], R.esize[c]);
            cs[i] = (weft_case){R.ch[c], WEFT_OP_SEND, &bufs[i], 0};
        } else {
            tags[i] = UINT32_MAX;
            memset(&bufs[i], 0xee, sizeof bufs[i]);
            cs[i] = (weft_case){R.ch[c], WEFT_OP_RECV, &bufs[i], 0};
        }
    }
    int r = weft_select(cs, n, deadline);
    if (r >= 0) {
        CHECK(r < n && cs[r].op != WEFT_OP_NONE);
        int c = -1;
        for (int i = 0; i < NCH; i++)
            if (R.ch[i] == cs[r].ch)
                c = i;
        CHECK(c >= 0);
        CHECK(cs[r].result == 0 || (cs[r].result == WEFT_ECLOSED && R.closed[c]));
        if (cs[r].op == WEFT_OP_SEND) {
            if (cs[r].result == 0)
                R.sent[tags[r]] = 1;
        } else if (cs[r].result == 0) {
            got(c, &bufs[r]);
        } else {
            CHECK(bufs[r].tag == 0xeeeeeeeeu);
        }
        for (int i = 0; i < n; i++)
            if (i != r && cs[i].op == WEFT_OP_RECV)
                CHECK(bufs[i].tag == 0xeeeeeeeeu); /* only the chosen case completed */
        return;
    }
    if (nact == 0 && deadline == FOREVER)
        CHECK(r == WEFT_EINVAL);
    else if (deadline == 0)
        CHECK(r == WEFT_EAGAIN || r == WEFT_ECANCELED);
    else if (deadline == FOREVER)
        CHECK(r == WEFT_ECANCELED);
    else
        CHECK(r == WEFT_ETIMEDOUT || r == WEFT_ECANCELED);
    for (int i = 0; i < n; i++)
        if (cs[i].op == WEFT_OP_RECV)
            CHECK(bufs[i].tag == 0xeeeeeeeeu);
}

static void do_close(int c)
{
    int r = weft_chan_close(R.ch[c]);
    CHECK(r == 0 ? !R.closed[c] : r == WEFT_ECLOSED && R.closed[c]);
    R.closed[c] = true;
    CHECK(weft_chan_close(R.ch[c]) == WEFT_ECLOSED);
}

/* weft_yield is a cancellation point: it reports a pending request (and only then), and
 * the request stays (sticky). One worker: nothing can cancel us between the question and
 * the yield (a yield that does not report may let a task cancel us). */
static void check_yield(void)
{
    int pending = weft_cancelled();
    int r = weft_yield();
    CHECK(r == (pending ? WEFT_ECANCELED : 0));
    CHECK(weft_cancelled() == 1 || !pending);
}

/* Lock, yield, unlock; `shielded`: inside a shield, where the lock cannot be cancelled (the
 * holder only holds it for a yield, so it always comes) and a request stays pending. */
static void do_mutex(int who, bool shielded)
{
    int pending = weft_cancelled();
    if (shielded)
        CHECK(weft_shield_begin() == 0);
    int r = weft_mutex_lock(&R.mu);
    CHECK(r == 0 || (r == WEFT_ECANCELED && !shielded));
    if (shielded) {
        CHECK(weft_shield_end() == 0);
        CHECK(weft_cancelled() >= pending); /* never cleared */
    }
    if (r != 0)
        return;
    CHECK(R.mu_holder == -2);
    R.mu_holder = who;
    weft_yield();
    CHECK(R.mu_holder == who);
    R.mu_holder = -2;
    CHECK(weft_mutex_unlock(&R.mu) == 0);
}

static int64_t small_deadline(int arg)
{
    return weft_after(WEFT_USEC(arg));
}

static weft_task pick_task(int arg)
{
    if (R.ntasks == 0 || arg % (R.ntasks + 1) == R.ntasks)
        return R.main;
    return R.tasks[arg % (R.ntasks + 1)];
}

/* ------------------------------------------------------------------------------------------
 * Tasks. */

struct script {
    const uint8_t *p;
    int n;
    int index; /* slot, or -1 when detached */
};

static void *task_fn(void *arg)
{
    struct script *s = arg;
    for (int i = 0; i < s->n; i++) {
        uint8_t b = s->p[i];
        int op = b % 12, a = b >> 4, c = a % NCH;
        switch (op) {
        case 0:
            do_send(c, 0, FOREVER);
            break;
        case 1:
            do_recv(c, 0, FOREVER);
            break;
        case 2:
            do_send(c, 1, 0);
            break;
        case 3:
            do_recv(c, 1, 0);
            break;
        case 4:
            do_select((uint8_t)(b >> 2), (uint8_t)(b * 7 + i), FOREVER);
            break;
        case 5:
            do_select((uint8_t)(b >> 2), (uint8_t)(b * 5 + i), 0);
            break;
        case 6: {
            int64_t dl = weft_after(WEFT_USEC(a & 3));
            int r = weft_sleep_until(dl);
            CHECK(r == 0 || r == WEFT_ECANCELED);
            if (r == 0)
                CHECK(weft_now() >= dl);
            break;
        }
        case 7:
            check_yield();
            break;
        case 8:
            do_close(c);
            break;
        case 9: {
            weft_task t = a < 4 ? weft_self() : pick_task(a);
            int r = weft_cancel(t);
            CHECK(r == 0 || r == WEFT_ESTATE);
            if (t.id == weft_self_id())
                CHECK(r == 0 && weft_cancelled() == 1);
            break;
        }
        case 10:
            if (a & 8)
                do_send(c, 2, small_deadline(a & 7));
            else
                do_recv(c, 2, small_deadline(a & 7));
            break;
        default:
            do_mutex(s->index, a & 8);
            break;
        }
    }
    R.finished++;
    int idx = s->index;
    free(s);
    if (idx < 0)
        CHECK(weft_wg_done(&R.detached) == 0);
    return (void *)(intptr_t)(idx + 1000);
}

static void *trivial_fn(void *arg)
{
    (void)arg;
    R.finished++;
    CHECK(weft_wg_done(&R.detached) == 0);
    return NULL;
}

static void spawn_script(const uint8_t *p, int n, bool detach)
{
    if (!detach && R.ntasks >= MAXT)
        detach = true;
    struct script *s = malloc(sizeof *s);
    CHECK(s);
    s->p = p;
    s->n = n;
    s->index = detach ? -1 : R.ntasks;
    if (detach)
        CHECK(weft_wg_add(&R.detached, 1) == 0);
    weft_task t;
    int r = weft_spawn(detach ? NULL : &t, task_fn, s);
    CHECK(r == 0);
    R.spawned++;
    if (!detach) {
        R.tasks[R.ntasks] = t;
        R.live[R.ntasks] = true;
        R.ntasks++;
    }
}

static void join_slot(int i, int64_t deadline)
{
    void *res = NULL;
    int r = weft_join_until(R.tasks[i], &res, deadline);
    if (!R.live[i]) {
        CHECK(r == WEFT_ESTATE);
        return;
    }
    CHECK(r == 0 || r == WEFT_ETIMEDOUT || r == WEFT_ECANCELED);
    CHECK(r != WEFT_ETIMEDOUT || deadline != FOREVER);
    if (r == 0) {
        CHECK(res == (void *)(intptr_t)(i + 1000));
        R.live[i] = false;
    }
}

/* ------------------------------------------------------------------------------------------
 * The main coroutine: interpret, then shut everything down and check the books. */

static int fuzz_main(void *unused)
{
    (void)unused;
    R.main = weft_self();
    const uint8_t *p = R.p + 1, *end = R.p + R.n;
    while (p < end) {
        uint8_t b = *p++;
        int op = b & 15, a = b >> 4, c = a % NCH;
        switch (op) {
        case 0: {
            int len = 1 + (a & 7);
            if (end - p < len)
                len = (int)(end - p);
            if (len > 0)
                spawn_script(p, len, a & 8);
            p += len;
            break;
        }
        case 1:
            do_send(c, 1, 0);
            break;
        case 2:
            do_recv(c, 1, 0);
            break;
        case 3:
            do_select((uint8_t)(b >> 1), p < end ? *p : 0, 0);
            break;
        case 4:
            check_yield();
            break;
        case 5: {
            int r = weft_sleep(0);
            CHECK(r == 0 || r == WEFT_ECANCELED);
            break;
        }
        case 6:
            do_close(c);
            break;
        case 7: {
            weft_task t = pick_task(a);
            int r = weft_cancel(t);
            CHECK(r == 0 || r == WEFT_ESTATE);
            break;
        }
        case 8:
            do_send(c, 2, small_deadline(a));
            break;
        case 9:
            do_recv(c, 2, small_deadline(a));
            break;
        case 10:
            if (R.ntasks)
                join_slot(a % R.ntasks, weft_after(WEFT_USEC(a * 10)));
            break;
        case 11:
            if (R.ntasks) {
                int i = a % R.ntasks;
                int r = weft_detach(R.tasks[i]);
                CHECK(R.live[i] ? r == 0 : r == WEFT_ESTATE);
                R.live[i] = false;
            }
            break;
        case 12:
            do_select((uint8_t)(b >> 1), p < end ? *p : 0, small_deadline(a));
            break;
        case 13:
            for (int i = 0; i < NCH; i++) {
                CHECK(weft_chan_cap(R.ch[i]) == R.cap[i]);
                CHECK(weft_chan_len(R.ch[i]) <= R.cap[i]);
            }
            break;
        case 14:
            do_mutex(-1, false);
            break;
        default:
            for (int i = 0; i <= a; i++) {
                CHECK(weft_wg_add(&R.detached, 1) == 0);
                CHECK(weft_spawn(NULL, trivial_fn, NULL) == 0);
                R.spawned++;
            }
            break;
        }
    }

    /* Shut down: close (waking every blocked task), join, wait for the detached — in a
     * shield: a task may have cancelled main, and the request is sticky. */
    CHECK(weft_shield_begin() == 0);
    for (int i = 0; i < NCH; i++)
        if (!R.closed[i])
            do_close(i);
    for (int i = 0; i < R.ntasks; i++) {
        if (R.live[i])
            join_slot(i, FOREVER);
        CHECK(!R.live[i]); /* shielded: the join cannot be cancelled */
    }
    int r = weft_wg_wait(&R.detached);
    CHECK(r == 0);
    /* Tasks whose handle was detached (op 11) are not waited for by anything else. */
    for (long spin = 0; R.spawned != R.finished; spin++) {
        CHECK(spin < 200000);
        r = weft_sleep(WEFT_USEC(50));
        CHECK(r == 0);
    }

    /* Drain: closed channels hand out what they buffered, then ECLOSED. */
    for (int i = 0; i < NCH; i++) {
        struct elem e;
        size_t left = weft_chan_len(R.ch[i]);
        CHECK(left <= R.cap[i]);
        for (size_t k = 0; k < left; k++) {
            memset(&e, 0xee, sizeof e);
            CHECK(weft_chan_try_recv(R.ch[i], &e) == 0);
            got(i, &e);
        }
        CHECK(weft_chan_try_recv(R.ch[i], &e) == WEFT_ECLOSED);
        CHECK(weft_chan_len(R.ch[i]) == 0);
        CHECK(weft_chan_try_send(R.ch[i], &e) == WEFT_ECLOSED);
    }
    for (uint32_t t = 0; t < R.ntags; t++)
        if (R.sent[t] != R.recvd[t]) {
            fprintf(stderr, "tag %u: sent %d received %d\n", t, R.sent[t], R.recvd[t]);
            CHECK(R.sent[t] == R.recvd[t]);
        }
    /* Only main is left (the detached ones may still be on their way out: yield). */
    weft_stats st;
    for (int spin = 0;; spin++) {
        CHECK(weft_stats_get(&st) == 0);
        if (st.alive == 1)
            break;
        CHECK(spin < 200000);
        r = weft_sleep(WEFT_USEC(50));
        CHECK(r == 0);
    }
    CHECK(weft_shield_end() == 0);
    return 0;
}

static _Atomic unsigned long run_seq;

static void run_one(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    if (size > FUZZ_MAX_INPUT)
        size = FUZZ_MAX_INPUT;
    cur_data = data;
    cur_size = size;
    memset(&R, 0, sizeof R);
    R.p = data;
    R.n = size;
    R.mu_holder = -2;
    R.tag_cap = (uint32_t)size * 3 + 16;
    R.sent = calloc(R.tag_cap, 1);
    R.recvd = calloc(R.tag_cap, 1);
    CHECK(R.sent && R.recvd);
    static const size_t caps[4] = {0, 1, 2, 4};
    for (int i = 0; i < NCH; i++) {
        R.cap[i] = caps[(data[0] >> (2 * i)) & 3];
        R.esize[i] = i == 2 && (data[0] & 0x40) ? BIG_ELEM : 8;
    }
    weft_wg_init(&R.detached);
    weft_mutex_init(&R.mu);
    /* Channels made outside the runtime: allowed (they are plain objects). */
    for (int i = 0; i < NCH; i++)
        CHECK(weft_chan_create(&R.ch[i], R.esize[i], R.cap[i]) == 0);
    weft_config cfg = {.threads = 1};
    int r = weft_run(fuzz_main, NULL, &cfg);
    CHECK(r == 0);
    for (int i = 0; i < NCH; i++)
        weft_chan_unref(R.ch[i]);
    free(R.sent);
    free(R.recvd);
    atomic_fetch_add(&run_seq, 1);
}

/* ------------------------------------------------------------------------------------------
 * Drivers. */

#if defined(FUZZING) && !defined(__AFL_COMPILER)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_one(data, size);
    return 0;
}

#elif defined(FUZZING) /* AFL++ */

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

int main(void)
{
#ifdef __AFL_FUZZ_TESTCASE_LEN
    __AFL_INIT();
    unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(10000)) {
        size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
        run_one(buf, len);
    }
#else
    static uint8_t buf[FUZZ_MAX_INPUT];
    size_t len = fread(buf, 1, sizeof buf, stdin);
    run_one(buf, len);
#endif
    return 0;
}

#else /* standalone: regression inputs, files, or seeded random inputs */

/* Inputs worth keeping (found by fuzzing or written by hand), as hex. */
static const char *const regressions[] = {
    "00",                         /* nothing */
    "0010",                       /* spawn with an empty tail */
    "00 10 01 01 06",             /* task sends on a rendezvous channel; close */
    "15 20 11 10 21 02 06 16 26", /* buffered send/recv, then closes */
    "00 70 00 01 04 08 0b 09 0c 07 22 02 04 0e 0e 0e", /* a task that cancels itself */
    "3f 40 41 40 41 04 04 07 f7 0a 0b", /* tasks blocked on recv, main cancels, joins */
    "55 80 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f", /* detached, every op */
    "00 f0 00 00 00 00 00 00 00 00 c4 c4 0e 0e",             /* sends blocked then closed */
    "2a 0f 3f 6e 0d 0c fc 1c 8c", /* selects with deadlines, mutex, bursts */
};

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s && n < cap; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

static int run_file(const char *path, int verbose)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static uint8_t buf[FUZZ_MAX_INPUT];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (verbose)
        fprintf(stderr, "fuzz_sched: %s (%zu bytes)\n", path, n);
    run_one(buf, n);
    return 0;
}

static int run_path(const char *path, int verbose, long *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path, verbose);
    }
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return 1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        rc |= run_path(sub, verbose, count);
    }
    closedir(d);
    return rc;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *watchdog(void *arg)
{
    (void)arg;
    unsigned long last = (unsigned long)-1;
    int still = 0;
    for (;;) {
        sleep(1);
        unsigned long now = atomic_load(&run_seq);
        if (now != last) {
            last = now;
            still = 0;
        } else if (++still >= 30) {
            fprintf(stderr, "fuzz_sched: HANG: one input has run for 30 s\n");
            dump_input(stderr);
            weft_dump(stderr);
            fflush(stderr);
            abort();
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t seed = 1;
    long runs = 1000, max_len = 96;
    int verbose = 0, nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--max-len") && i + 1 < argc)
            max_len = atol(argv[++i]);
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--seed N] [--runs N] [--max-len N] [-v] [FILE|DIR ...]\n",
                    argv[0]);
            return 2;
        } else
            nfiles++;
    }
    if (max_len < 1 || max_len > FUZZ_MAX_INPUT)
        max_len = FUZZ_MAX_INPUT;
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);

    static uint8_t buf[FUZZ_MAX_INPUT];
    for (size_t i = 0; i < sizeof regressions / sizeof regressions[0]; i++) {
        size_t n = unhex(regressions[i], buf, sizeof buf);
        if (verbose)
            fprintf(stderr, "fuzz_sched: regression %zu (%zu bytes)\n", i, n);
        run_one(buf, n);
    }
    long count = 0;
    if (nfiles) {
        int rc = 0;
        for (int i = 1; i < argc; i++) {
            if (argv[i][0] == '-') {
                if (strcmp(argv[i], "-v"))
                    i++;
                continue;
            }
            rc |= run_path(argv[i], verbose, &count);
        }
        printf("fuzz_sched: %zu regression inputs and %ld files passed\n",
               sizeof regressions / sizeof regressions[0], count);
        return rc;
    }
    uint64_t s = seed;
    for (long k = 0; k < runs; k++) {
        size_t n = 1 + rng_next(&s) % (uint64_t)max_len;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rng_next(&s);
        if (verbose)
            fprintf(stderr, "fuzz_sched: random input %ld (%zu bytes)\n", k, n);
        run_one(buf, n);
    }
    printf("fuzz_sched: %zu regression inputs and %ld random inputs (seed %llu, up to %ld "
           "bytes) passed\n",
           sizeof regressions / sizeof regressions[0], runs, (unsigned long long)seed, max_len);
    return 0;
}

#endif
