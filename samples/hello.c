/* SPDX-License-Identifier: MIT */
/* hello.c — main hands out naps over a channel; three coroutines take them and sleep. */
#include <stdio.h>
#include <weft.h>
static void *napper(void *ch)
{
    for (int ms; weft_chan_recv(ch, &ms) == 0;) { /* until main closes the channel */
        weft_sleep(WEFT_MSEC(ms));                /* parks this coroutine, not its thread */
        printf("coroutine %d slept %d ms\n", (int)weft_self_id(), ms);
    }
    return NULL;
}
static int hello(void *arg)
{
    weft_chan *ch;
    weft_task t[3];
    (void)arg;
    if (weft_chan_create(&ch, sizeof(int), 0) != 0)
        return 1;
    for (int i = 0; i < 3; i++)
        if (weft_spawn(&t[i], napper, ch) != 0)
            return 1;
    for (int ms = 100; ms <= 600; ms += 100)
        weft_chan_send(ch, &ms); /* waits for a taker */
    weft_chan_close(ch);         /* no more naps */
    for (int i = 0; i < 3; i++)
        weft_join(t[i], NULL);
    weft_chan_unref(ch);
    return 0;
}
int main(void)
{
    return weft_run(hello, NULL, NULL);
}
