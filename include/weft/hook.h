/* SPDX-License-Identifier: MIT */
/* weft/hook.h — libweft-hook: blocking C libraries in coroutines (CMake weft::hook,
 * pkg-config weft-hook; or LD_PRELOAD=libweft-hook.so). Not included by weft.h.
 *
 * Linked into a program (before libc, which linking does) or preloaded, the library
 * interposes libc's blocking calls: read write readv writev recv recvfrom recvmsg send sendto
 * sendmsg connect accept accept4 poll ppoll select, sleep usleep nanosleep clock_nanosleep,
 * getaddrinfo gethostbyname gethostbyname_r, and the _FORTIFY_SOURCE variants (__read_chk,
 * __recv_chk, __recvfrom_chk, __poll_chk, __ppoll_chk); it follows socket socketpair pipe
 * pipe2 dup dup2 dup3 close fcntl(64) ioctl(FIONBIO) setsockopt(SO_RCVTIMEO/SO_SNDTIMEO).
 * Without it weft behaves exactly as before.
 *
 * Outside a coroutine (a plain thread, the blocking pool's threads, before weft_run) every
 * hooked function is libc's, after one test (a thread-local load and a branch). In a
 * coroutine (unless weft_hook_disable, below):
 *  - a socket, or a pipe made by pipe()/pipe2(), that the program sees as blocking parks the
 *    coroutine (not the worker) where libc would block the thread; its real O_NONBLOCK is
 *    set at its first use in a coroutine, and fcntl(F_GETFL) / ioctl(FIONBIO) keep showing
 *    and changing the program's own view (on a plain thread such a descriptor waits in
 *    libc's poll, so it still behaves as a blocking one);
 *  - a descriptor the program made non-blocking (or a call with MSG_DONTWAIT) gets EAGAIN,
 *    as from libc;
 *  - SO_RCVTIMEO / SO_SNDTIMEO are honoured: -1 with EAGAIN (connect: EINPROGRESS, as Linux)
 *    when they pass; writes move every byte as a blocking write does;
 *  - other descriptors (regular files, ttys, inherited pipes, eventfds) are libc's: a read of
 *    a regular file blocks the worker for the disk's time (use weft_blocking for slow disks);
 *  - poll/ppoll/select park until a descriptor is ready or the timeout passes; sleeps park;
 *    name resolution runs on the blocking pool (glibc's resolver is not interposable);
 *  - errno is exactly libc's, on the thread where the call returns: left as the caller had
 *    it when the call succeeds (also after it parked, or waited in libc's poll on a plain
 *    thread, and while other coroutines of the thread set errno), libc's error otherwise;
 *  - a cancelled coroutine (weft_cancel) whose call has to wait fails with errno ECANCELED
 *    (clock_nanosleep and gethostbyname_r return it; getaddrinfo returns EAI_SYSTEM with
 *    errno ECANCELED; sleep returns the seconds left, errno ECANCELED); a call that completes
 *    without waiting succeeds.
 *
 * Affinity rule: a coroutine parked inside a hooked call resumes on the worker it parked on
 * (the park is pinned), so a library call built of hooked calls (SSL_read, PQexec,
 * redisCommand) runs on one thread from start to end and the thread-local state libraries
 * keep across their system calls (errno, OpenSSL's error queue, the resolver's state) stays
 * right, under WEFT_DEBUG_MIGRATE=1 too. Between library calls coroutines move as usual.
 *
 * Hazard: a library that holds a pthread mutex across a hooked call (it parks holding it)
 * blocks the whole worker when another coroutine on that worker then waits for the mutex:
 * the holder cannot resume on that worker. weft's stall report names the worker and the
 * blocked coroutine with its backtrace (weft.h, "Stall report"). */
#ifndef WEFT_HOOK_H
#define WEFT_HOOK_H

#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the calling program's read(2) reaches libweft-hook (the library is linked or
 * preloaded, and nothing before it in the lookup order stops the call from reaching it),
 * else 0. Callable from any thread. Leaves errno as it was. */
WEFT_EXTERN int weft_hook_active(void);

/* Turn the hooks off for the calling coroutine until the matching weft_hook_enable (calls
 * nest): its hooked calls then behave as on a plain thread — libc's, blocking the worker
 * where libc blocks (a descriptor the hook already made non-blocking underneath still
 * behaves as a blocking one: the call waits in libc's poll). For code that must not park
 * between two calls (it holds a pthread mutex across its I/O: the hazard above) or that
 * measures libc itself. Other coroutines are not affected; the setting is the coroutine's
 * own and moves with it (a coroutine starts with its hooks on, whatever its spawner's).
 * Costs nothing on the calls' fast path (the test they make anyway).
 * Returns 0, or WEFT_ENOTCORO outside a coroutine. */
WEFT_EXTERN int weft_hook_disable(void);
/* Undo one weft_hook_disable of the calling coroutine: 0, WEFT_ENOTCORO outside a coroutine,
 * WEFT_ESTATE when its hooks are not disabled. */
WEFT_EXTERN int weft_hook_enable(void);

#ifdef __cplusplus
}
#endif
#endif
