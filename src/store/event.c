/* event.c - event types, records and their JSON form (see event.h). */
#include "store/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const type_names[EVENT_NTYPES] = {
	[EVENT_ACCEPTED] = "accepted", [EVENT_DELIVERED] = "delivered",
	[EVENT_DEFERRED] = "deferred", [EVENT_BOUNCED] = "bounced",
	[EVENT_REJECTED] = "rejected",
};

const char *event_type_name(enum event_type t)
{
	return (unsigned)t < EVENT_NTYPES ? type_names[t] : "unknown";
}

int event_type_parse(const char *name)
{
	for (int t = 0; t < EVENT_NTYPES; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return -1;
}

void event_record_clear(struct event_record *ev)
{
	free(ev->message_id);
	free(ev->user);
	free(ev->recipient);
	free(ev->detail);
	memset(ev, 0, sizeof *ev);
}

int event_record_set(struct event_record *ev, int64_t id, int64_t time_ms, enum event_type type,
		     const char *message_id, const char *user, const char *recipient,
		     const char *detail)
{
	event_record_clear(ev);
	ev->id = id;
	ev->time_ms = time_ms;
	ev->type = type;
	ev->message_id = strdup(message_id ? message_id : "");
	ev->user = strdup(user ? user : "");
	ev->recipient = strdup(recipient ? recipient : "");
	ev->detail = strdup(detail ? detail : "");
	if (!ev->message_id || !ev->user || !ev->recipient || !ev->detail) {
		event_record_clear(ev);
		return -1;
	}
	return 0;
}

void event_records_free(struct event_record **evs, size_t n)
{
	if (!*evs)
		return;
	for (size_t i = 0; i < n; i++)
		event_record_clear(&(*evs)[i]);
	free(*evs);
	*evs = NULL;
}

void event_time_format(int64_t time_ms, char *out)
{
	time_t secs = (time_t)(time_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char buf[96]; /* room for any int the compiler imagines */
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(time_ms % 1000));
	size_t n = strnlen(buf, EVENT_TIME_MAX - 1);
	memcpy(out, buf, n);
	out[n] = '\0';
}

json_t *event_json(const struct event_record *ev)
{
	char when[EVENT_TIME_MAX];
	event_time_format(ev->time_ms, when);
	return json_pack("{sI ss ss ss ss ss ss}", "id", (json_int_t)ev->id, "time", when, "type",
			 event_type_name(ev->type), "message_id", ev->message_id, "recipient",
			 ev->recipient, "user", ev->user, "detail", ev->detail);
}
