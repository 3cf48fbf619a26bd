/* SPDX-License-Identifier: MIT */
/* resp_server.c — a small Redis-compatible server (RESP2): one coroutine per connection and
 * one in-memory store shared by all workers, split into shards, each behind a weft_mutex.
 *
 *   resp_server [PORT [TIMEOUT_SECONDS]]   (default 6380, 300 s)
 *                                     try: redis-cli -p 6380 set k v
 *                                          redis-benchmark -p 6380 -t ping,set,get -q
 *
 * Commands: PING [msg], ECHO, GET, SET key value, DEL key..., EXISTS key..., INCR, DECR,
 * INCRBY, DECRBY, DBSIZE, FLUSHDB/FLUSHALL, SELECT 0, CONFIG GET save|appendonly (what
 * redis-benchmark asks at start-up), COMMAND (empty), QUIT. Requests are multibulk arrays
 * or inline lines ("PING\r\n"). Pipelining: every complete command received is executed and
 * the replies go out together, one write per read.
 * Hostile clients: a connection's query buffer grows as data arrives, never ahead of it (an
 * announced bulk length reserves nothing), up to MAX_QUERY (64 MiB; a bulk longer than that
 * is refused at its header: protocol error, then close); a command must arrive whole within
 * TIMEOUT of the previous reply, and every reply write must progress within TIMEOUT (idle
 * and slow clients are closed). SIGINT/SIGTERM: a clean shutdown (tcp_server.c). */
#define _GNU_SOURCE
#include <weft.h>

#include "tcp_server.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ARGS 4096
/* Redis caps a bulk at 512 MB and a client's query buffer at 1 GB; a sample caps lower. */
#define MAX_QUERY ((size_t)64 << 20)
#define MAX_BULK ((long long)MAX_QUERY - 1024) /* a bulk, its header and CRLF fit the buffer */
#define MAX_INLINE (64 << 10)
#define OUT_FLUSH (64 << 10) /* write out replies early past this much */

/* ---- the store: NSHARDS hash tables, each with its own mutex ------------------------------- */
#define NSHARDS 64
struct entry {
    struct entry *next;
    uint64_t hash;
    char *val;
    size_t vlen, vcap, klen;
    char key[];
};
static struct shard {
    weft_mutex mu;
    struct entry **tab;
    size_t mask, count;
} __attribute__((aligned(64))) shards[NSHARDS];

static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    return h ^ (h >> 32);
}

static struct shard *shard_of(uint64_t h)
{
    return &shards[h >> 58]; /* top 6 bits pick the shard, low bits the bucket */
}

/* The entry's link, in a shard the caller has locked. */
static struct entry **find(struct shard *s, uint64_t h, const char *k, size_t n)
{
    if (!s->tab)
        return NULL;
    struct entry **p = &s->tab[h & s->mask];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->klen == n && memcmp((*p)->key, k, n) == 0)
            return p;
    return p;
}

static int grow(struct shard *s)
{
    size_t nb = s->tab ? (s->mask + 1) * 2 : 64;
    struct entry **t = calloc(nb, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; s->tab && i <= s->mask; i++)
        for (struct entry *e = s->tab[i], *next; e; e = next) {
            next = e->next;
            e->next = t[e->hash & (nb - 1)];
            t[e->hash & (nb - 1)] = e;
        }
    free(s->tab);
    s->tab = t;
    s->mask = nb - 1;
    return 0;
}

static int set_value(struct entry *e, const char *v, size_t n)
{
    if (!e->val || n > e->vcap) { /* val NULL: no value yet ("" is a value: 1 byte) */
        char *nv = realloc(e->val, n ? n : 1);
        if (!nv)
            return -1;
        e->val = nv;
        e->vcap = n;
    }
    memcpy(e->val, v, n);
    e->vlen = n;
    return 0;
}

/* The entry for key, created empty if absent (NULL: out of memory). Shard locked. */
static struct entry *upsert(struct shard *s, uint64_t h, const char *k, size_t n)
{
    if ((!s->tab || s->count > s->mask) && grow(s) < 0)
        return NULL;
    struct entry **p = find(s, h, k, n);
    if (*p)
        return *p;
    struct entry *e = calloc(1, sizeof *e + n);
    if (!e)
        return NULL;
    e->hash = h;
    e->klen = n;
    memcpy(e->key, k, n);
    *p = e;
    s->count++;
    return e;
}

/* ---- replies: one output buffer per connection ------------------------------------------- */
struct client {
    int fd;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_cap;
    int oom;
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
};

static char *reserve(struct client *c, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap;
        while (cap < c->out_len + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) {
            c->oom = 1;
            return NULL;
        }
        c->out = o;
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

static void reply(struct client *c, const char *s, size_t n)
{
    char *p = reserve(c, n);
    if (p) {
        memcpy(p, s, n);
        c->out_len += n;
    }
}
#define REPLY(c, lit) reply(c, lit, sizeof lit - 1)

/* "<type><v>\r\n" at p (room for 24 bytes); the length. No printf on the hot path. */
static size_t format_header(char *p, char type, long long v)
{
    char digits[20];
    int n = 0;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    size_t len = 0;
    p[len++] = type;
    if (v < 0)
        p[len++] = '-';
    while (n > 0)
        p[len++] = digits[--n];
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

static void reply_int(struct client *c, char type, long long v)
{
    char *p = reserve(c, 24);
    if (p)
        c->out_len += format_header(p, type, v);
}

static void reply_bulk(struct client *c, const char *s, size_t n)
{
    char *p = reserve(c, n + 26);
    if (p) {
        size_t h = format_header(p, '$', (long long)n);
        memcpy(p + h, s, n);
        memcpy(p + h + n, "\r\n", 2);
        c->out_len += h + n + 2;
    }
}

static void reply_error(struct client *c, const char *fmt, const char *arg, size_t n)
{
    char tmp[160], name[64];
    if (n > sizeof name - 1)
        n = sizeof name - 1;
    for (size_t i = 0; i < n; i++) /* an error line must not contain CR/LF */
        name[i] = arg[i] == '\r' || arg[i] == '\n' ? ' ' : arg[i];
    name[n] = 0;
    int len = snprintf(tmp, sizeof tmp, fmt, name);
    reply(c, tmp, len < (int)sizeof tmp ? (size_t)len : sizeof tmp - 1);
}

/* Redis's string2ll: an optional '-', digits, no leading zero or spaces, no overflow. */
static int parse_ll(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return -1;
    int neg = s[0] == '-';
    size_t i = neg;
    if (i == n || (s[i] == '0' && n > i + 1))
        return -1;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (ULLONG_MAX - (unsigned)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
        return -1;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

/* ---- commands ------------------------------------------------------------------------------ */
static int is(const char *a, size_t n, const char *cmd)
{
    return strlen(cmd) == n && strncasecmp(a, cmd, n) == 0;
}

static void cmd_incrby(struct client *c, const char *k, size_t kl, long long by)
{
    uint64_t h = hash_key(k, kl);
    struct shard *s = shard_of(h);
    tcp_lock(&s->mu);
    struct entry *e = upsert(s, h, k, kl);
    long long v = 0;
    char tmp[24];
    if (!e) {
        c->oom = 1;
    } else if (e->val && parse_ll(e->val, e->vlen, &v) < 0) { /* "" too, as in Redis */
        REPLY(c, "-ERR value is not an integer or out of range\r\n");
    } else if (by > 0 ? v > LLONG_MAX - by : v < LLONG_MIN - by) {
        REPLY(c, "-ERR increment or decrement would overflow\r\n");
    } else {
        v += by;
        if (set_value(e, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", v)) < 0)
            c->oom = 1;
        else
            reply_int(c, ':', v);
    }
    weft_mutex_unlock(&s->mu);
}

/* Execute one command; 1 if the connection should close after the replies (QUIT). */
static int execute(struct client *c, int argc)
{
    const char *cmd = c->argv[0], **argv = c->argv;
    size_t n = c->argl[0], *argl = c->argl;
#define ARITY(test)                                                                                \
    if (!(test)) {                                                                                 \
        reply_error(c, "-ERR wrong number of arguments for '%s' command\r\n", cmd, n);             \
        return 0;                                                                                  \
    }
    if (is(cmd, n, "GET")) {
        ARITY(argc == 2);
        uint64_t h = hash_key(argv[1], argl[1]);
        struct shard *s = shard_of(h);
        tcp_lock(&s->mu);
        struct entry **p = find(s, h, argv[1], argl[1]);
        if (p && *p && (*p)->val)
            reply_bulk(c, (*p)->val, (*p)->vlen); /* copied under the lock */
        else
            REPLY(c, "$-1\r\n");
        weft_mutex_unlock(&s->mu);
    } else if (is(cmd, n, "SET")) {
        ARITY(argc >= 3);
        if (argc > 3) { /* options (EX, NX, ...) are not supported */
            REPLY(c, "-ERR syntax error\r\n");
            return 0;
        }
        uint64_t h = hash_key(argv[1], argl[1]);
        struct shard *s = shard_of(h);
        tcp_lock(&s->mu);
        struct entry *e = upsert(s, h, argv[1], argl[1]);
        if (!e || set_value(e, argv[2], argl[2]) < 0)
            c->oom = 1;
        weft_mutex_unlock(&s->mu);
        REPLY(c, "+OK\r\n");
    } else if (is(cmd, n, "PING")) {
        ARITY(argc <= 2);
        if (argc == 2)
            reply_bulk(c, argv[1], argl[1]);
        else
            REPLY(c, "+PONG\r\n");
    } else if (is(cmd, n, "DEL") || is(cmd, n, "EXISTS")) {
        ARITY(argc >= 2);
        int del = n == 3;
        long long count = 0;
        for (int i = 1; i < argc; i++) {
            uint64_t h = hash_key(argv[i], argl[i]);
            struct shard *s = shard_of(h);
            tcp_lock(&s->mu);
            struct entry **p = find(s, h, argv[i], argl[i]);
            if (p && *p) {
                count++;
                if (del) {
                    struct entry *e = *p;
                    *p = e->next;
                    s->count--;
                    free(e->val);
                    free(e);
                }
            }
            weft_mutex_unlock(&s->mu);
        }
        reply_int(c, ':', count);
    } else if (is(cmd, n, "INCR") || is(cmd, n, "DECR")) {
        ARITY(argc == 2);
        cmd_incrby(c, argv[1], argl[1], cmd[0] == 'I' || cmd[0] == 'i' ? 1 : -1);
    } else if (is(cmd, n, "INCRBY") || is(cmd, n, "DECRBY")) {
        ARITY(argc == 3);
        long long by;
        if (parse_ll(argv[2], argl[2], &by) < 0 ||
            ((cmd[0] == 'D' || cmd[0] == 'd') && by == LLONG_MIN)) {
            REPLY(c, "-ERR value is not an integer or out of range\r\n");
            return 0;
        }
        cmd_incrby(c, argv[1], argl[1], cmd[0] == 'I' || cmd[0] == 'i' ? by : -by);
    } else if (is(cmd, n, "ECHO")) {
        ARITY(argc == 2);
        reply_bulk(c, argv[1], argl[1]);
    } else if (is(cmd, n, "CONFIG")) {
        ARITY(argc >= 2);
        if (!is(argv[1], argl[1], "GET") || argc != 3) {
            REPLY(c, "-ERR only CONFIG GET parameter is supported\r\n");
        } else if (is(argv[2], argl[2], "save")) {
            REPLY(c, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
        } else if (is(argv[2], argl[2], "appendonly")) {
            REPLY(c, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
        } else {
            REPLY(c, "*0\r\n");
        }
    } else if (is(cmd, n, "DBSIZE")) {
        long long total = 0;
        for (int i = 0; i < NSHARDS; i++) {
            tcp_lock(&shards[i].mu);
            total += (long long)shards[i].count;
            weft_mutex_unlock(&shards[i].mu);
        }
        reply_int(c, ':', total);
    } else if (is(cmd, n, "FLUSHDB") || is(cmd, n, "FLUSHALL")) {
        for (int i = 0; i < NSHARDS; i++) {
            struct shard *s = &shards[i];
            tcp_lock(&s->mu);
            for (size_t b = 0; s->tab && b <= s->mask; b++)
                for (struct entry *e = s->tab[b], *next; e; e = next) {
                    next = e->next;
                    free(e->val);
                    free(e);
                }
            free(s->tab);
            s->tab = NULL;
            s->mask = s->count = 0;
            weft_mutex_unlock(&s->mu);
        }
        REPLY(c, "+OK\r\n");
    } else if (is(cmd, n, "SELECT")) {
        ARITY(argc == 2);
        if (is(argv[1], argl[1], "0"))
            REPLY(c, "+OK\r\n");
        else
            REPLY(c, "-ERR DB index is out of range\r\n");
    } else if (is(cmd, n, "COMMAND")) {
        REPLY(c, "*0\r\n");
    } else if (is(cmd, n, "QUIT")) {
        REPLY(c, "+OK\r\n");
        return 1;
    } else {
        reply_error(c, "-ERR unknown command '%s'\r\n", cmd, n);
    }
    return 0;
}

/* ---- the protocol ---------------------------------------------------------------------------- */
/* Parse a decimal after a type byte up to CRLF at p (end e): 1 parsed, 0 need more, -1 bad. */
static int parse_header(const char *p, const char *e, long long *v, const char **next)
{
    const char *cr = memchr(p, '\r', (size_t)(e - p));
    if (!cr || cr + 1 >= e)
        return (e - p) > 32 ? -1 : 0;
    if (cr[1] != '\n' || parse_ll(p + 1, (size_t)(cr - p - 1), v) < 0)
        return -1;
    *next = cr + 2;
    return 1;
}

/* One command from buf[0..len): > 0 bytes consumed (argc in *argc, 0 for an empty one),
 * 0 incomplete, < 0 a protocol error (*why: Redis's text for it). */
static long parse_command(struct client *c, const char *buf, size_t len, int *argc,
                          const char **why)
{
    const char *p = buf, *e = buf + len;
    *argc = 0;
    if (*p != '*') { /* inline command: words separated by spaces, up to LF */
        const char *nl = memchr(p, '\n', len);
        if (!nl)
            return len > MAX_INLINE ? -1 : 0;
        const char *end = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p == end)
                break;
            if (*argc == MAX_ARGS)
                return -1;
            const char *w = p;
            while (p < end && *p != ' ' && *p != '\t')
                p++;
            c->argv[*argc] = w;
            c->argl[(*argc)++] = (size_t)(p - w);
        }
        return nl + 1 - buf;
    }
    long long n;
    int r = parse_header(p, e, &n, &p);
    if (r <= 0)
        return r;
    if (n > MAX_ARGS) {
        *why = "invalid multibulk length";
        return -1;
    }
    for (long long i = 0; i < n; i++) {
        if (p == e)
            return 0;
        long long bl;
        if (*p != '$')
            return -1;
        if ((r = parse_header(p, e, &bl, &p)) <= 0)
            return r;
        if (bl < 0 || bl > MAX_BULK) {
            *why = "invalid bulk length"; /* refused at the header: nothing reserved */
            return -1;
        }
        if ((size_t)(e - p) < (size_t)bl + 2)
            return 0; /* the buffer grows as the bytes arrive (resp_session) */
        if (p[bl] != '\r' || p[bl + 1] != '\n')
            return -1;
        c->argv[i] = p;
        c->argl[i] = (size_t)bl;
        p += bl + 2;
    }
    *argc = n > 0 ? (int)n : 0;
    return p - buf;
}

static void resp_session(struct client *c, int64_t timeout)
{
    int closing = 0;
    /* The next command must be complete by then: idle and slow clients are closed. */
    int64_t deadline = tcp_deadline(timeout);
    while (!closing) {
        /* Wait for input when nothing is buffered (cheaper than a read that says EAGAIN). */
        if (c->in_len == 0 && weft_wait_fd(c->fd, WEFT_READABLE, deadline) < 0)
            return;
        if (c->in_len == c->in_cap) { /* full, and no command complete in it: grow */
            size_t cap = c->in_cap * 2 < MAX_QUERY ? c->in_cap * 2 : MAX_QUERY;
            char *in = cap > c->in_cap ? realloc(c->in, cap) : NULL;
            if (!in) {
                REPLY(c, "-ERR Protocol error: query buffer limit reached\r\n");
                weft_write_all(c->fd, c->out, c->out_len, tcp_deadline(timeout));
                return;
            }
            c->in = in;
            c->in_cap = cap;
        }
        ssize_t got = weft_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len, deadline);
        if (got <= 0)
            return;
        c->in_len += (size_t)got;
        /* Execute every complete command; their replies go out in one write. */
        size_t pos = 0;
        while (pos < c->in_len && !closing) {
            int argc;
            const char *why = NULL;
            long used = parse_command(c, c->in + pos, c->in_len - pos, &argc, &why);
            if (used < 0) {
                if (why)
                    reply_error(c, "-ERR Protocol error: %s\r\n", why, strlen(why));
                else
                    REPLY(c, "-ERR Protocol error\r\n");
                closing = 1;
                break;
            }
            if (used == 0)
                break;
            pos += (size_t)used;
            if (argc > 0)
                closing = execute(c, argc);
            if (c->oom) {
                REPLY(c, "-OOM out of memory\r\n");
                c->oom = closing = 1;
            }
            if (c->out_len >= OUT_FLUSH) { /* a long pipeline: do not hoard replies */
                if (weft_write_all(c->fd, c->out, c->out_len, tcp_deadline(timeout)) < 0)
                    return;
                c->out_len = 0;
            }
        }
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
        if (c->out_len && weft_write_all(c->fd, c->out, c->out_len, tcp_deadline(timeout)) < 0)
            return;
        c->out_len = 0;
        if (pos > 0) /* commands were served: the next one gets a fresh deadline */
            deadline = tcp_deadline(timeout);
    }
}

static void serve(int fd, int64_t timeout)
{
    struct client *c = malloc(sizeof *c);
    if (!c)
        return;
    c->fd = fd;
    c->in_len = c->out_len = 0;
    c->in_cap = c->out_cap = 16384;
    c->oom = 0;
    c->in = malloc(c->in_cap);
    c->out = malloc(c->out_cap);
    if (c->in && c->out)
        resp_session(c, timeout);
    free(c->in);
    free(c->out);
    free(c);
}

int main(int argc, char **argv)
{
    tcp_server s = {.name = "resp_server", .port = 6380, .timeout_sec = 300, .serve = serve};
    return tcp_server_main(&s, argc, argv);
}
