/* queue_private.h - the queue's insides, shared by its files: queue.c
 * (messages, the schedule, resolution, local delivery), relay_pass.c (the
 * remote half of a pass: relay requests, results, bounces and the durable
 * record of it all) and relay_control.c (the queue commands of ternctl).
 * Not a contract: nothing else includes it.
 *
 * A pass over one message, all on the loop except the [worker] steps:
 *   start_pass: resolve the due recipients (local, remote by domain)
 *   [worker] open the body once, deliver the local recipients
 *   pass_remote: one relay request per domain; results as they come
 *   pass_decide: expiry, bounces, success and delay reports
 *   [worker] compose the DSNs; spool_commit them, queue_add them
 *   [worker] write the envelope (or remove the message when all is final)
 *   end_pass: wait for the next due recipient, or for nothing.
 * One pass at a time per message, and only its steps write its spool file,
 * so the file has a single writer.  The envelope is changed on the loop
 * only; the worker steps read it while the loop leaves it alone. */
#ifndef TERN_QUEUE_QUEUE_PRIVATE_H
#define TERN_QUEUE_QUEUE_PRIVATE_H

#include <stddef.h>
#include <time.h>

#include "queue/dsn.h"
#include "queue/queue.h"
#include "queue/relay.h"
#include "queue/retry.h"
#include "spool/envelope.h"

#define QUEUE_TARGET_MAX 320

struct control_request;
struct dir_target;
struct evbuffer;
struct event;

enum msg_where {
	M_READY,   /* waiting for a pass slot */
	M_RUNNING, /* a pass (or an operator's change) is under way */
	M_TIMER,   /* waiting for the next due recipient */
	M_PARKED,  /* nothing to do until something changes */
	M_HELD,	   /* on hold by an operator */
	M_WHERE_COUNT
};

/* What this pass did to a recipient. */
enum pass_mark {
	PM_NONE,
	PM_DELIVERED, /* delivered now: maybe a success report */
	PM_BOUNCED,   /* failed now: in the failure report */
	PM_DEFERRED,  /* tried, failed for now */
};

struct rcpt_pass {
	unsigned char mark;	     /* enum pass_mark */
	unsigned char local;	     /* the result was made here, not by a server */
	unsigned char relayed;	     /* delivered to a server without DSN */
	unsigned char local_mbox;    /* delivered into a Maildir here */
	char status[DSN_STATUS_MAX]; /* a status that overrides the reply's, or "" */
	const char *reason;	     /* static text for the report, or NULL */
};

/* One local delivery: recipient RCPT into TARGET's Maildir. */
struct delivery {
	size_t rcpt;
	char target[QUEUE_TARGET_MAX];
	int err; /* set by the worker: 0 delivered, else errno */
};

/* One relay request: recipients IDX[0..N) of the message, all at DOMAIN. */
struct rpart {
	struct qmsg *m;
	char domain[MX_NAME_MAX + 1];
	size_t *idx, n;
	struct smtp_client_rcpt *rc;
	struct relay_req *req;
};

/* A DSN made in this pass: its envelope and body until committed. */
struct pass_dsn {
	struct qmsg *m;
	enum dsn_kind kind;
	int sender_local;
	struct envelope env;
	struct evbuffer *body;
	int composed, committed;
};

enum admin_op { ADMIN_NONE, ADMIN_DELETE, ADMIN_HOLD, ADMIN_RELEASE };

/* A message the queue holds; owned by the queue (linked in q->msgs). */
struct qmsg {
	struct queue *q;
	struct envelope env;
	struct qmsg *prev, *next; /* q->msgs */
	struct qmsg *ready_next;  /* q->ready FIFO */
	enum msg_where where;
	struct event *timer;
	unsigned passes;
	/* The current pass. */
	time_t now;
	struct delivery *dl;
	size_t ndl;
	struct rpart *parts;
	size_t nparts, parts_left;
	struct rcpt_pass *rp; /* nrp >= env.nrcpts entries */
	size_t nrp;
	char source[RELAY_SOURCE_MAX];
	int fd; /* the body, -1 when not open */
	long off;
	size_t size;
	struct pass_dsn dsn[3];
	size_t ndsn, dsn_waiting;
	unsigned jobs; /* worker jobs and spool commits that will call back */
	int dirty;     /* envelope changed: must be written or removed */
	int store_err; /* the spool could not be written (errno) */
	int gone;      /* the spool file vanished */
	int removed;   /* every recipient final, spool file removed */
	int flush;     /* "queue flush" came during the pass */
	/* An operator's change waiting for the pass to end. */
	enum admin_op op;
	struct control_request *op_req;
};

struct queue {
	char *data_dir, *hostname;
	struct spool *sp;
	struct workers *pool;
	struct event_base *base;
	struct directory *dir;
	struct relay *relay;
	struct retry_policy policy;
	unsigned *intervals;
	struct qmsg *msgs;
	struct qmsg *ready_head, *ready_tail;
	size_t count[M_WHERE_COUNT]; /* messages in each place */
	unsigned jobs;		     /* of all messages */
	unsigned busy;		     /* messages in their local step */
	int closing, pumping;
	struct dir_target *targets; /* reused by every resolution */
	time_t retry_first, retry_max;
	struct event_log *events; /* lent, or NULL */
	struct policy *sending; /* lent, or NULL */
};

/* queue.c */
void qmsg_free(struct qmsg *m);
void qmsg_set_where(struct qmsg *m, enum msg_where w);
void qmsg_schedule(struct qmsg *m, time_t delay);
void qmsg_unschedule(struct qmsg *m); /* off the ready list or timer: M_PARKED */
void qmsg_end_pass(struct qmsg *m);
/* qmsg_submit - run WORK on the pool, then DONE on the loop; -1 when the
 * pool refuses.  qmsg_job_end - first thing in every DONE (and spool
 * commit callback): 1 when the queue is closing and M is gone. */
int qmsg_submit(struct qmsg *m, void (*work)(void *), void (*done)(void *));
void qmsg_job_begin(struct qmsg *m);
int qmsg_job_end(struct qmsg *m);
void queue_pump(struct queue *q);
int qmsg_all_final(const struct envelope *env);
const char *queue_safe(char *buf, size_t len, const char *s);
int queue_sender_is_local(const struct queue *q, const char *sender);

/* queue_events.c: record the pass's results (events, suppression). */
void queue_record_pass(struct qmsg *m);

/* relay_pass.c */
int pass_group(struct qmsg *m, const size_t *remote, size_t n); /* 0 or -1 */
void pass_remote(struct qmsg *m);
void pass_decide(struct qmsg *m);
void pass_release(struct qmsg *m); /* free the pass's parts and DSNs, close the body */
void pass_cut(struct qmsg *m);	   /* stop the relay requests still running */

/* relay_control.c */
void admin_run(struct qmsg *m);	    /* carry out m->op now (M is not in a pass) */
void admin_abandon(struct qmsg *m); /* M leaves the queue: answer its operator */

#endif
