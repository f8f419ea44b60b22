/* event.h - one entry of a message's record: accepted, delivered, deferred,
 * bounced or rejected (DESIGN.md "HTTP API v1", event types).
 *
 * Events are per recipient: a message to three recipients is accepted
 * three times and delivered or bounced three times.  Their ids increase
 * in the order the daemon saw them, so an id is also a cursor.
 *
 * Ownership: a struct event_record owns its strings (event_record_clear
 * frees them); event_json returns a new reference. */
#ifndef TERN_STORE_EVENT_H
#define TERN_STORE_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum event_type {
	EVENT_ACCEPTED = 0, /* the message was committed for this recipient */
	EVENT_DELIVERED, /* a Maildir or a remote MX took it */
	EVENT_DEFERRED, /* a temporary failure; it will be tried again */
	EVENT_BOUNCED, /* a permanent failure or expiry; a DSN went to the sender */
	EVENT_REJECTED, /* refused at SMTP or API time (policy, unknown user...) */
	EVENT_NTYPES
};

/* Bit for a set of types (webhooks, filters): 1u << type. */
#define EVENT_MASK(t) (1u << (unsigned)(t))
#define EVENT_MASK_ALL ((1u << EVENT_NTYPES) - 1u)

struct event_record {
	int64_t id; /* > 0, increasing */
	int64_t time_ms; /* milliseconds since the epoch, UTC */
	enum event_type type;
	char *message_id; /* queue id; "" when refused before one existed */
	char *user; /* sending user; "" for none (inbound mail, relay_from) */
	char *recipient; /* "" when the event is about no one recipient */
	char *detail; /* the remote reply or the reason; "" */
};

/* event_type_name - "accepted", "delivered", ... */
const char *event_type_name(enum event_type t);

/* event_type_parse - the type named NAME, or -1. */
int event_type_parse(const char *name);

/* event_record_set - fill EV (its old strings freed) with copies; NULL
 * strings become "".  Returns 0 or -1 (ENOMEM, EV left cleared). */
int event_record_set(struct event_record *ev, int64_t id, int64_t time_ms, enum event_type type,
		     const char *message_id, const char *user, const char *recipient,
		     const char *detail);

/* event_record_clear - free EV's strings and zero it. */
void event_record_clear(struct event_record *ev);

/* event_records_free - clear N records and free the array; clears *EVS. */
void event_records_free(struct event_record **evs, size_t n);

/* event_time_format - "2026-11-29T08:30:00.123Z" into OUT (at least
 * EVENT_TIME_MAX bytes). */
#define EVENT_TIME_MAX 32
void event_time_format(int64_t time_ms, char *out);

/* event_json - {"id", "time", "type", "message_id", "recipient", "user",
 * "detail"}: the one JSON form of an event, for the API, the live stream
 * and webhooks.  NULL when out of memory. */
json_t *event_json(const struct event_record *ev);

#endif
