/* SPDX-License-Identifier: MIT */
/* trace.c — the execution trace: per-worker event buffers, written to a file in blocks
 * (weft/trace.h for the contract, trace.h for the hook and the event kinds).
 *
 * Why a binary file and a converter (scripts/weft-trace.py), not JSON written here: a
 * worker writes its buffer out itself when it fills, in the middle of the schedule it
 * records; a raw block is one write() of 64 KiB (~20 us), where formatting the same 2,048
 * events as JSON would take the worker away for about a millisecond and show up in the
 * trace as a stall of its own. Correlation (wake arrows, runnable-to-running latency) needs
 * every worker's events in one time order, which exists only after the run. So the run
 * writes 32 bytes an event and the tool (like `go tool trace`) does the rest.
 *
 * File format (little-endian, as the machine writes it):
 *   header  "WEFTTRC1", uint32 version (1), uint32 record size (32), int64 t0 (ticks)
 *   blocks  { "BLK2", int32 worker (-1: a thread that is no worker), uint32 count,
 *             uint32 0, int64 ticks, int64 CLOCK_MONOTONIC ns (both read as the block is
 *             written) } then `count` 32-byte records (struct rec).
 *   A SPAWN or NAME record is followed by a name block (one record's room): the coroutine's name
 *   (NUL-terminated), or, for an unnamed one, byte 0 = 0, byte 1 = 1, bytes 8..15 = its
 *   entry function's address. At the end, FNAME records (a = an address, then a name block
 *   with its symbol) name every such address, so the hot path never calls dladdr.
 *
 * Time. Records carry the CPU's tick counter (clock.h weft__ticks — x86-64: rdtsc,
 * invariant on the machines Linux keeps it synchronised on; aarch64: cntvct_el0; elsewhere
 * CLOCK_MONOTONIC ns), not clock_gettime: here a vDSO clock_gettime costs ~90 ns under a hypervisor against ~30 for
 * rdtsc, and it was most of an event's cost. The META record (first), every block header
 * and the END record (last) each pair the ticks with CLOCK_MONOTONIC ns; the reader
 * converts linearly between the first and the last pair (Go's trace does the same with
 * cputicks), so a trace cut short by a crash still has its full blocks in ns.
 *
 * Ownership and ordering.
 *   - trace_mu guards the session pointers (cur, pending, retired) and run_workers: start,
 *     stop and weft_run's seams take it; the hook never does.
 *   - A session's worker buffer i is written only by worker i's thread (the hook's `worker`
 *     argument says so): it fills records, then publishes the count with a release store of
 *     `len`. Its flush (when full) takes the session's mu, writes [done, len) and resets
 *     done and len under mu. A stopper takes mu, reads len with acquire and writes
 *     [done, len), then sets done = len: it reads only records the owner published and the
 *     owner never rewrites them before taking mu itself — no record is read while written.
 *   - The foreign buffer (any other thread) is touched only under mu.
 *   - A stopped session is closed (mu, `closed`): a late event — one whose thread saw the
 *     flag just before the stop — lands in a buffer nobody writes out again. Its memory is
 *     kept until weft_run ends (every worker joined, no plain thread inside the gate), so a
 *     late writer never touches freed memory. */
#define _GNU_SOURCE
#include "trace.h"
#include "clock.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WEFT__TR_FNAME 17 /* file only: a = address, then its name block (see the top) */
#define BUF_RECS 2048     /* 64 KiB a worker */

struct rec {
    int64_t t;     /* CLOCK_MONOTONIC, ns */
    uint32_t kind; /* enum weft__trace_kind */
    int32_t x;
    uint64_t a, b;
};
_Static_assert(sizeof(struct rec) == 32, "trace records are 32 bytes (the file format)");

struct tbuf {
    _Atomic uint32_t len; /* owner: relaxed load, release store; others: acquire under mu */
    uint32_t done;        /* records already written out (under mu) */
    int32_t worker;
    struct rec r[BUF_RECS];
};

struct session {
    pthread_mutex_t mu; /* the file, `closed`, `err`, every buffer's `done`, `foreign` */
    int fd;
    bool closed;
    int err; /* the first write error (negative errno), 0 */
    char *path;
    int nbufs; /* 0 until the run's workers are known */
    struct tbuf **bufs;
    struct tbuf *foreign;
    struct session *retired_next;
};

_Atomic bool weft__trace_on;
static _Atomic(struct session *) cur; /* the recording session (release/acquire) */
static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static struct session *pending; /* started before a run (trace_mu) */
static struct session *retired; /* stopped during a run, freed at its end (trace_mu) */
static int run_workers;         /* workers of the running weft_run, 0: none (trace_mu) */

/* Under s->mu. */
static void write_all(struct session *s, const void *p, size_t n)
{
    const char *c = p;
    while (n && !s->err) {
        ssize_t k = write(s->fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            s->err = k < 0 ? -errno : -EIO;
            fprintf(stderr, "weft: trace: writing %s failed: %s; the trace is incomplete\n",
                    s->path, strerror(-s->err));
            return;
        }
        c += k;
        n -= (size_t)k;
    }
}

/* A block's header (see the top). */
struct blk {
    char magic[4];
    int32_t worker;
    uint32_t count, zero;
    int64_t ticks, ns;
};

/* Under s->mu: write records [from, to) of b as one block. */
static void write_block(struct session *s, struct tbuf *b, uint32_t from, uint32_t to)
{
    if (s->closed || to <= from)
        return;
    struct blk h = {{'B', 'L', 'K', '2'}, b->worker,         to - from, 0,
                    weft__ticks(),        weft__clock_real()};
    write_all(s, &h, sizeof h);
    write_all(s, &b->r[from], (size_t)(to - from) * sizeof(struct rec));
}

/* The owner of b (or anyone, for the foreign buffer, under mu): write everything out and
 * start the buffer over. */
static void flush_locked(struct session *s, struct tbuf *b)
{
    uint32_t n = atomic_load_explicit(&b->len, memory_order_relaxed); /* owner or under mu */
    write_block(s, b, b->done, n);
    b->done = 0;
    atomic_store_explicit(&b->len, 0, memory_order_relaxed); /* read by others under mu only */
}

static void put(struct session *s, struct tbuf *b, const struct rec *r, uint32_t n, bool locked)
{
    uint32_t len = atomic_load_explicit(&b->len, memory_order_relaxed);
    if (len + n > BUF_RECS) {
        if (!locked)
            pthread_mutex_lock(&s->mu);
        flush_locked(s, b);
        if (!locked)
            pthread_mutex_unlock(&s->mu);
        len = 0;
    }
    memcpy(&b->r[len], r, n * sizeof *r);
    /* release: a stopper that reads the count (acquire) sees the records. */
    atomic_store_explicit(&b->len, len + n, memory_order_release);
}

/* The time is taken after the session is loaded: an event never predates its file's t0. */
static void emit_recs(int worker, struct rec *r, uint32_t n)
{
    struct session *s = atomic_load_explicit(&cur, memory_order_acquire);
    if (!s)
        return;
    r->t = weft__ticks();
    if (worker >= 0 && worker < s->nbufs) {
        put(s, s->bufs[worker], r, n, false);
        return;
    }
    pthread_mutex_lock(&s->mu);
    put(s, s->foreign, r, n, true);
    pthread_mutex_unlock(&s->mu);
}

void weft__trace_emit(int worker, uint32_t kind, uint64_t a, uint64_t b, int32_t x)
{
    struct rec r = {.kind = kind, .x = x, .a = a, .b = b};
    emit_recs(worker, &r, 1);
}

/* An event with a name block (see the top). */
static void emit_named(int worker, uint32_t kind, uint64_t a, uint64_t b, const char *name,
                       const void *fn)
{
    struct rec r[2] = {{.kind = kind, .a = a, .b = b}};
    char *nb = (char *)&r[1];
    if (name && name[0]) {
        snprintf(nb, sizeof r[1], "%.31s", name);
    } else {
        nb[1] = 1;
        memcpy(nb + 8, &fn, sizeof fn);
    }
    emit_recs(worker, r, 2);
}

void weft__trace_spawn(int worker, uint64_t child, uint64_t parent, const char *name,
                       const void *fn)
{
    emit_named(worker, WEFT__TR_SPAWN, child, parent, name, fn);
}

void weft__trace_name(int worker, uint64_t co, const char *name, const void *fn)
{
    emit_named(worker, WEFT__TR_NAME, co, 0, name, fn);
}

int weft__trace_wait_kind(const char *what)
{
    static const struct {
        const char *prefix;
        int kind;
    } k[] = {{"chan", WEFT__TW_CHAN},
             {"mutex", WEFT__TW_MUTEX},
             {"cond", WEFT__TW_COND},
             {"semaphore", WEFT__TW_SEMAPHORE},
             {"sleep", WEFT__TW_SLEEP},
             {"select", WEFT__TW_SELECT},
             {"fd", WEFT__TW_FD},
             {"join", WEFT__TW_JOIN},
             {"blocking", WEFT__TW_BLOCKING},
             {"group", WEFT__TW_GROUP}};
    if (what)
        for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
            if (strncmp(what, k[i].prefix, strlen(k[i].prefix)) == 0)
                return k[i].kind;
    return WEFT__TW_OTHER;
}

/* ---- sessions (trace_mu) ------------------------------------------------------------- */

static struct tbuf *buf_new(int worker)
{
    /* its own cache lines (aligned_alloc wants a size that is a multiple of the alignment) */
    struct tbuf *b = aligned_alloc(WEFT_CACHELINE, (sizeof *b + WEFT_CACHELINE - 1) &
                                                       ~(size_t)(WEFT_CACHELINE - 1));
    if (b) {
        atomic_init(&b->len, 0);
        b->done = 0;
        b->worker = worker;
    }
    return b;
}

static void session_free(struct session *s)
{
    for (int i = 0; i < s->nbufs; i++)
        free(s->bufs[i]);
    free(s->bufs);
    free(s->foreign);
    free(s->path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int session_open(const char *path, struct session **out)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return WEFT_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = -1;
    if (!(s->path = strdup(path)) || !(s->foreign = buf_new(-1))) {
        session_free(s);
        return WEFT_ENOMEM;
    }
    /* O_RDWR: the end of the trace reads it back for the names of entry functions. */
    s->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = -errno;
        session_free(s);
        return e;
    }
    struct {
        char magic[8];
        uint32_t version, recsize;
        int64_t t0;
    } h = {{'W', 'E', 'F', 'T', 'T', 'R', 'C', '1'}, 1, sizeof(struct rec), weft__ticks()};
    write_all(s, &h, sizeof h);
    *out = s;
    return 0;
}

/* trace_mu held, a run going: give s its worker buffers and make it the recording one. */
static int session_go(struct session *s, int nworkers)
{
    s->bufs = calloc((size_t)nworkers, sizeof *s->bufs);
    if (!s->bufs)
        return WEFT_ENOMEM;
    s->nbufs = nworkers; /* session_free frees the ones allocated, if one fails */
    for (int i = 0; i < nworkers; i++)
        if (!(s->bufs[i] = buf_new(i)))
            return WEFT_ENOMEM;
    struct rec meta = {.t = weft__ticks(),
                       .kind = WEFT__TR_META,
                       .x = nworkers,
                       .a = (uint64_t)weft__clock_real()};
    put(s, s->foreign, &meta, 1, true); /* nobody else knows s yet */
    atomic_store_explicit(&cur, s, memory_order_release);
    atomic_store_explicit(&weft__trace_on, true, memory_order_relaxed);
    return 0;
}

/* An entry function's name: its symbol, or "module+0x1234" (a static function: addr2line,
 * or weft-trace.py --exe, finds it), or its address. Not debug.c's weft__addr_name: this
 * file sits on a low floor of the core and names nothing above it. */
static void fn_name(const void *fn, char *buf, size_t cap)
{
    Dl_info info;
    if (dladdr(fn, &info) && info.dli_sname && info.dli_saddr == fn) {
        snprintf(buf, cap, "%s", info.dli_sname);
    } else if (dladdr(fn, &info) && info.dli_fname && info.dli_fbase) {
        const char *base = strrchr(info.dli_fname, '/');
        snprintf(buf, cap, "%s+%#lx", base ? base + 1 : info.dli_fname,
                 (unsigned long)((const char *)fn - (const char *)info.dli_fbase));
    } else {
        snprintf(buf, cap, "%p", fn);
    }
}

/* The addresses of unnamed coroutines' entry functions in the file (read back), each named
 * once in an FNAME record. Under s->mu, the file complete. */
static void name_functions(struct session *s)
{
    enum { SLOTS = 4096 };
    const void **seen = calloc(SLOTS, sizeof *seen);
    struct rec *chunk = malloc(BUF_RECS * sizeof *chunk);
    struct tbuf *names = buf_new(-1); /* on the heap: 64 KiB, and this may run on a coroutine */
    if (!seen || !chunk || !names)
        goto out;
    off_t at = 24; /* after the header */
    for (;;) {
        struct blk h;
        if (pread(s->fd, &h, sizeof h, at) != (ssize_t)sizeof h || h.count > BUF_RECS)
            break;
        at += (off_t)sizeof h;
        size_t bytes = (size_t)h.count * sizeof(struct rec);
        if (pread(s->fd, chunk, bytes, at) != (ssize_t)bytes)
            break;
        at += (off_t)bytes;
        for (uint32_t i = 0; i + 1 < h.count; i++) {
            if (chunk[i].kind != WEFT__TR_SPAWN && chunk[i].kind != WEFT__TR_NAME)
                continue;
            const char *nb = (const char *)&chunk[++i];
            const void *fn;
            memcpy(&fn, nb + 8, sizeof fn);
            if (nb[0] || nb[1] != 1 || !fn)
                continue;
            size_t j = ((uintptr_t)fn >> 4) % SLOTS, probes = 0;
            while (seen[j] && seen[j] != fn && ++probes < SLOTS)
                j = (j + 1) % SLOTS;
            if (seen[j] || probes == SLOTS)
                continue; /* named already (or the table is full: left unnamed) */
            seen[j] = fn;
            struct rec r[2] = {{.kind = WEFT__TR_FNAME, .a = (uint64_t)(uintptr_t)fn}};
            char name[256];
            fn_name(fn, name, sizeof name);
            snprintf((char *)&r[1], sizeof r[1], "%.31s", name);
            uint32_t len = atomic_load_explicit(&names->len, memory_order_relaxed);
            if (len + 2 > BUF_RECS)
                break;
            memcpy(&names->r[len], r, sizeof r);
            atomic_store_explicit(&names->len, len + 2, memory_order_relaxed);
        }
    }
    write_block(s, names, 0, atomic_load_explicit(&names->len, memory_order_relaxed));
out:
    free(seen);
    free(chunk);
    free(names);
}

/* trace_mu held: stop recording s and write everything out. 0 or the write error. */
static int session_finish(struct session *s)
{
    if (atomic_load_explicit(&cur, memory_order_relaxed) == s) {
        atomic_store_explicit(&weft__trace_on, false, memory_order_relaxed);
        atomic_store_explicit(&cur, NULL, memory_order_release);
    }
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nbufs; i++) {
        struct tbuf *b = s->bufs[i];
        /* acquire: pairs with the owner's release store (see the top) */
        uint32_t n = atomic_load_explicit(&b->len, memory_order_acquire);
        write_block(s, b, b->done, n);
        b->done = n;
    }
    if (s->nbufs) { /* the second tick/ns pair (see the top) */
        struct rec end = {
            .t = weft__ticks(), .kind = WEFT__TR_END, .a = (uint64_t)weft__clock_real()};
        put(s, s->foreign, &end, 1, true);
    }
    flush_locked(s, s->foreign);
    if (!s->err && s->nbufs)
        name_functions(s);
    s->closed = true;
    int err = s->err;
    if (close(s->fd) != 0 && !err)
        err = -errno;
    s->fd = -1;
    pthread_mutex_unlock(&s->mu);
    return err;
}

int weft_trace_start(const char *path)
{
    if (!path || !path[0])
        return WEFT_EINVAL;
    pthread_mutex_lock(&trace_mu);
    int r = WEFT_ESTATE;
    if (!atomic_load_explicit(&cur, memory_order_relaxed) && !pending) {
        struct session *s;
        r = session_open(path, &s);
        if (r == 0 && run_workers) {
            if ((r = session_go(s, run_workers)) != 0) {
                close(s->fd);
                session_free(s);
            }
        } else if (r == 0) {
            pending = s; /* its buffers come with the run (weft__trace_run_begin) */
        }
    }
    pthread_mutex_unlock(&trace_mu);
    return r;
}

int weft_trace_stop(void)
{
    pthread_mutex_lock(&trace_mu);
    int r = WEFT_ESTATE;
    struct session *s = atomic_load_explicit(&cur, memory_order_relaxed);
    if (s) {
        r = session_finish(s);
        s->retired_next = retired; /* late writers may still hold it: freed at the run's end */
        retired = s;
    } else if (pending) {
        r = session_finish(pending);
        session_free(pending);
        pending = NULL;
    }
    pthread_mutex_unlock(&trace_mu);
    return r;
}

void weft__trace_run_begin(int nworkers)
{
    pthread_mutex_lock(&trace_mu);
    run_workers = nworkers;
    /* A session still recording here was copied by fork() from a traced parent (every run's
     * end clears `cur`): the file is the parent's, this process must not write to it. */
    struct session *inherited = atomic_load_explicit(&cur, memory_order_relaxed);
    if (inherited) {
        atomic_store_explicit(&weft__trace_on, false, memory_order_relaxed);
        atomic_store_explicit(&cur, NULL, memory_order_relaxed);
        close(inherited->fd); /* our copy of the descriptor; its memory is left alone */
    }
    struct session *s = pending;
    pending = NULL;
    const char *env = getenv("WEFT_TRACE");
    if (!s && env && env[0]) {
        int r = session_open(env, &s);
        if (r != 0) {
            fprintf(stderr, "weft: WEFT_TRACE=%s: cannot open the trace file: %s; not tracing\n",
                    env, weft_strerror(r));
            s = NULL;
        }
    }
    if (s && session_go(s, nworkers) != 0) {
        fprintf(stderr, "weft: trace %s: out of memory for the buffers; not tracing\n", s->path);
        close(s->fd);
        session_free(s);
    }
    pthread_mutex_unlock(&trace_mu);
}

void weft__trace_run_end(void)
{
    pthread_mutex_lock(&trace_mu);
    struct session *s = atomic_load_explicit(&cur, memory_order_relaxed);
    if (s) {
        session_finish(s); /* a write error was printed */
        session_free(s);
    }
    /* No worker is left and no plain thread is inside the gate: nobody holds these. */
    while (retired) {
        struct session *n = retired->retired_next;
        session_free(retired);
        retired = n;
    }
    run_workers = 0;
    pthread_mutex_unlock(&trace_mu);
}
