/* SPDX-License-Identifier: MIT */
/* weft/chan.h — channels and select (included by weft.h). */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H
#ifdef __cplusplus
extern "C" {
#endif

/* A channel carries fixed-size elements (copied in and out). capacity 0 is a rendezvous
 * (unbuffered) channel. Senders and receivers may be coroutines on any worker or plain OS
 * threads (which block on a futex). FIFO per sender; no element is lost or duplicated.
 *
 * Lifetime: weft_chan_create returns a channel holding one reference; weft_chan_ref adds
 * one, weft_chan_unref drops one and frees the channel with the last. Dropping the last
 * reference while coroutines still wait on it is a programming error (abort with message);
 * after weft_run has returned, waiters of coroutines abandoned at shutdown do not count
 * (they are forgotten, never touched, by the next operation on the channel).
 * Close (Go's rule): receivers first drain buffered elements, then get WEFT_ECLOSED; a send
 * on a closed channel returns WEFT_ECLOSED and the element is not taken; a closing channel
 * wakes every waiter. Closing twice returns WEFT_ECLOSED. */
typedef struct weft_chan weft_chan;

/* Create a channel of elements of elem_size bytes with room for capacity of them (0: a
 * rendezvous channel); *out holds its one reference. 0; WEFT_EINVAL (out NULL,
 * elem_size > 1 MiB, capacity > 2^30), WEFT_ENOMEM. */
WEFT_EXTERN int weft_chan_create(weft_chan **out, size_t elem_size, size_t capacity);
/* Take another reference to ch (for another owner: a coroutine that may outlive yours). */
WEFT_EXTERN void weft_chan_ref(weft_chan *ch);
/* Drop a reference; the last one frees the channel (see "Lifetime" above). NULL: no-op. */
WEFT_EXTERN void weft_chan_unref(weft_chan *ch);
/* Close the channel (Go's rule, above): waiters wake, later sends fail, receivers drain.
 * 0, WEFT_ECLOSED if already closed, WEFT_EINVAL (NULL). */
WEFT_EXTERN int weft_chan_close(weft_chan *ch);

/* Send (copy in) or receive (copy out) one element, waiting while the channel is full
 * (empty): a coroutine parks, a plain thread blocks. The _until variants give up at the
 * deadline. 0 on success; WEFT_ECLOSED, WEFT_ETIMEDOUT, WEFT_ECANCELED, WEFT_EINVAL (ch
 * NULL, or a send's elem NULL with elem_size > 0). A receive's elem may be NULL: the element
 * is taken and discarded (as in a select's receive case). */
WEFT_EXTERN int weft_chan_send(weft_chan *ch, const void *elem);
WEFT_EXTERN int weft_chan_send_until(weft_chan *ch, const void *elem, int64_t deadline);
WEFT_EXTERN int weft_chan_recv(weft_chan *ch, void *elem);
WEFT_EXTERN int weft_chan_recv_until(weft_chan *ch, void *elem, int64_t deadline);
/* Send or receive one element only if that can be done now, never waiting: 0, WEFT_EAGAIN
 * if the operation cannot complete now, WEFT_ECLOSED, WEFT_EINVAL. */
WEFT_EXTERN int weft_chan_try_send(weft_chan *ch, const void *elem);
WEFT_EXTERN int weft_chan_try_recv(weft_chan *ch, void *elem);
/* The number of elements buffered now, and the capacity (snapshots; 0 for NULL). */
WEFT_EXTERN size_t weft_chan_len(weft_chan *ch);
WEFT_EXTERN size_t weft_chan_cap(weft_chan *ch);

/* Wait for the first of several channel operations; returns the index of the case that
 * completed; its `result` is 0 or WEFT_ECLOSED (a receive from, or a send to, a closed
 * channel completes that way). When several are ready, one is picked uniformly at random. deadline 0 makes it a select
 * with a default case (WEFT_EAGAIN if none is ready). Also WEFT_ETIMEDOUT, WEFT_ECANCELED,
 * WEFT_EINVAL (n <= 0, n > WEFT_SELECT_MAX, NULL channel; a NULL channel is allowed only
 * with op WEFT_OP_NONE, which never completes: Go's nil-channel idiom). A receive case's
 * elem may be NULL: the element is received and discarded.
 * When every case is WEFT_OP_NONE the select waits for its deadline (WEFT_ETIMEDOUT) or a
 * cancellation (WEFT_ECANCELED); with WEFT_FOREVER a coroutine waits until cancelled (Go's
 * `select {}`), and a plain thread, which nothing could wake, gets WEFT_EINVAL. */
enum { WEFT_OP_NONE = 0, WEFT_OP_SEND = 1, WEFT_OP_RECV = 2 };
#define WEFT_SELECT_MAX 64
typedef struct weft_case {
    weft_chan *ch;
    int op;
    void *elem; /* the element to send, or where to store the received one */
    int result;
} weft_case;
WEFT_EXTERN int weft_select(weft_case *cases, int n, int64_t deadline);

/* A ticker: a channel of int64_t (the tick's weft_now()) with capacity 1 that receives a
 * value every `period` ns; ticks are dropped while the previous one is unread (Go's
 * time.Ticker). Stop it with weft_ticker_stop, which closes and releases the channel. */
typedef struct weft_ticker weft_ticker;
/* Start a ticker of period ns. 0, WEFT_EINVAL (out NULL, period <= 0), WEFT_ENORUNTIME,
 * WEFT_ENOMEM. */
WEFT_EXTERN int weft_ticker_start(weft_ticker **out, int64_t period);
/* The ticker's channel, to receive ticks from (or select on); owned by the ticker. */
WEFT_EXTERN weft_chan *weft_ticker_chan(weft_ticker *t);
/* Stop the ticker, close and release its channel, and free t. 0, WEFT_EINVAL (NULL). */
WEFT_EXTERN int weft_ticker_stop(weft_ticker *t);

/* Signals as channel values (Go's signal.Notify / signal.Stop): after
 * weft_signal_notify(ch, signo), each signo the process receives is sent as an int (the
 * signal number) on ch, a channel of elem_size sizeof(int); call it once per signal, for as
 * many channels as you like. Receive from any coroutine or plain thread. The signal's
 * previous disposition (default action, ignored — as a shell leaves SIGINT for a background
 * job — or a handler) is replaced while some channel is registered for it, and restored by
 * the weft_signal_stop that removes the last; weft_signal_stop(ch) ends every registration
 * of ch. Independent of weft_run: registrations outlive a runtime (deliveries while none
 * runs are dropped).
 * Delivery never blocks (as in Go): use a buffered channel; when it is full the signal is
 * dropped, and several signals of one number that arrive close together may count as one.
 * How: a handler (on whichever thread the kernel picks) records the signal and wakes a
 * delivery thread of weft's, which try-sends; so it works whatever the threads' signal masks
 * are, and a thread that blocks the signal just does not take it (if every thread of the
 * process blocks it, it waits pending, as usual). A registration holds a reference on ch
 * until weft_signal_stop. Both calls may block the calling thread briefly (they take a
 * process-wide lock; the last stop joins the delivery thread).
 * weft_signal_notify: 0; WEFT_EINVAL (ch NULL or its elem_size not sizeof(int); signo out
 * of 1..64, SIGKILL, SIGSTOP, or a synchronous fault SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGTRAP, SIGSYS; a signal the C library reserves); WEFT_ENOMEM; a negative errno if the
 * delivery thread cannot start. weft_signal_stop: 0 (also for a channel not registered),
 * WEFT_EINVAL for NULL. */
WEFT_EXTERN int weft_signal_notify(weft_chan *ch, int signo);
WEFT_EXTERN int weft_signal_stop(weft_chan *ch);

#ifdef __cplusplus
}
#endif
#endif
