/* queue_events.c - what a delivery pass did, told to the event log: one
 * delivered, deferred or bounced event per recipient the pass acted on,
 * with the reply that decided it; and a sending service's rule (DESIGN.md)
 * that a hard bounce from a remote server (a 5xx) puts the recipient on
 * the sending user's suppression list.  Bounces decided here (expiry,
 * an unknown local user) are not the recipient's server speaking and
 * suppress nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "queue/queue_private.h"
#include "store/event_log.h"

/* event_of - the event type of a pass mark, or -1 for none. */
static int event_of(unsigned char mark)
{
	switch (mark) {
	case PM_DELIVERED:
		return EVENT_DELIVERED;
	case PM_DEFERRED:
		return EVENT_DEFERRED;
	case PM_BOUNCED:
		return EVENT_BOUNCED;
	default:
		return -1;
	}
}

/* hard_bounce - a remote server refused recipient I for good. */
static int hard_bounce(const struct qmsg *m, size_t i)
{
	const struct envelope_rcpt *r = &m->env.rcpts[i];
	return m->rp[i].mark == PM_BOUNCED && !m->rp[i].local && !m->rp[i].status[0] &&
	       r->remote_mta && r->last_reply && r->last_reply[0] == '5';
}

void queue_record_pass(struct qmsg *m)
{
	struct queue *q = m->q;
	if (!m->rp)
		return;
	const char *user = m->env.auth_user;
	for (size_t i = 0; i < m->env.nrcpts && i < m->nrp; i++) {
		int type = event_of(m->rp[i].mark);
		if (type < 0)
			continue;
		const struct envelope_rcpt *r = &m->env.rcpts[i];
		if (q->events) {
			struct event_note n = {
				.type = (enum event_type)type,
				.message_id = m->env.id,
				.user = user,
				.recipient = r->address,
				.detail = m->rp[i].status[0] ? m->rp[i].reason : r->last_reply,
				.received = m->env.received,
			};
			event_log_emit(q->events, &n);
		}
		if (q->sending && user && user[0] && hard_bounce(m, i)) {
			char reason[300];
			snprintf(reason, sizeof reason, "hard bounce: %s", r->last_reply);
			policy_suppress(q->sending, user, r->address, reason, NULL, NULL);
		}
	}
}
