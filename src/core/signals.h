/* SPDX-License-Identifier: MIT */
/* signals.h — floor 5 (primitives): signals delivered as values on channels (signals.c;
 * the public calls are weft_signal_notify and weft_signal_stop in weft/chan.h). */
#ifndef WEFT_SIGNALS_H
#define WEFT_SIGNALS_H

/* fork.c's handler for the signal registrations, called first in PREPARE (the delivery
 * thread holds these locks while a send may reach the gate's) and last in PARENT and
 * CHILD; the child starts with no registration and the saved dispositions back. */
void weft__signal_atfork(int phase);

#endif
