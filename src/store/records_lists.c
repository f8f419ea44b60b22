/* records_lists.c - suppression lists and webhooks in the SQLite store
 * (see records.h; the tables are schema migration 3 in sqlite.c).
 *
 * Both are small tables the daemon loads whole at start and changes one
 * row at a time; every change is one IMMEDIATE transaction. */
#include "store/records.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/records_private.h"

/* lower_dup - a malloc'ed ASCII-lower-case copy of S (UTF-8 bytes kept). */
static char *lower_dup(const char *s)
{
	char *d = strdup(s ? s : "");
	for (char *p = d; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* write_one - step the bound write S once and finalize it.  Returns 0
 * (with *CHANGED the rows changed) or -1. */
static int write_one(struct records *r, sqlite3_stmt *s, int *changed, char *err,
		     size_t errlen)
{
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : rec_db_fail(r, err, errlen, "write");
	if (changed)
		*changed = sqlite3_changes(r->db);
	sqlite3_finalize(s);
	return rc;
}

void suppression_clear(struct suppression *s)
{
	free(s->user);
	free(s->address);
	free(s->reason);
	memset(s, 0, sizeof *s);
}

int records_suppression_add(struct records *r, const struct suppression *sup, char *err,
			    size_t errlen)
{
	char *address = lower_dup(sup->address);
	if (!address)
		return rec_fail(err, errlen, "out of memory");
	if (!address[0]) {
		free(address);
		return rec_fail(err, errlen, "empty address");
	}
	int rc = rec_begin(r, err, errlen);
	sqlite3_stmt *s = rc < 0 ? NULL :
		rec_prepare(r,
			    "INSERT INTO suppressions (user, address, reason, created) "
			    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user, address) DO UPDATE SET "
			    "reason = excluded.reason, created = excluded.created",
			    err, errlen);
	if (s && (rec_bind_text(s, 1, sup->user) || rec_bind_text(s, 2, address) ||
		  rec_bind_text(s, 3, sup->reason) ||
		  sqlite3_bind_int64(s, 4, sup->created ? sup->created : (int64_t)time(NULL)))) {
		rec_db_fail(r, err, errlen, "bind");
		sqlite3_finalize(s);
		s = NULL;
	}
	if (rc == 0)
		rc = s ? write_one(r, s, NULL, err, errlen) : -1;
	free(address);
	return rec_finish(r, rc, err, errlen); /* a failed BEGIN left nothing to undo */
}

int records_suppression_del(struct records *r, const char *user, const char *address,
			    char *err, size_t errlen)
{
	char *addr = lower_dup(address);
	if (!addr)
		return rec_fail(err, errlen, "out of memory");
	int changed = 0, rc = rec_begin(r, err, errlen);
	sqlite3_stmt *s = rc < 0 ? NULL :
		rec_prepare(r, "DELETE FROM suppressions WHERE user = ?1 AND address = ?2", err,
			    errlen);
	if (s && (rec_bind_text(s, 1, user) || rec_bind_text(s, 2, addr))) {
		rec_db_fail(r, err, errlen, "bind");
		sqlite3_finalize(s);
		s = NULL;
	}
	if (rc == 0)
		rc = s ? write_one(r, s, &changed, err, errlen) : -1;
	free(addr);
	rc = rec_finish(r, rc, err, errlen);
	return rc < 0 ? -1 : changed ? 0 : 1;
}

int records_suppression_each(struct records *r, records_suppression_cb cb, void *ctx, char *err,
			     size_t errlen)
{
	sqlite3_stmt *s = rec_prepare(r,
				      "SELECT user, address, reason, created FROM suppressions "
				      "ORDER BY user, address",
				      err, errlen);
	if (!s)
		return -1;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		/* The strings are sqlite's, lent to CB for this row only. */
		struct suppression sup = {
			.user = (char *)sqlite3_column_text(s, 0),
			.address = (char *)sqlite3_column_text(s, 1),
			.reason = (char *)sqlite3_column_text(s, 2),
			.created = sqlite3_column_int64(s, 3),
		};
		if (!sup.user || !sup.address || !sup.reason) {
			step = SQLITE_NOMEM;
			break;
		}
		if (cb(ctx, &sup)) {
			step = SQLITE_DONE;
			break;
		}
	}
	int rc = step == SQLITE_DONE ? 0 : rec_db_fail(r, err, errlen, "read");
	sqlite3_finalize(s);
	return rc;
}

void webhook_row_clear(struct webhook_row *w)
{
	free(w->user);
	free(w->url);
	free(w->secret);
	free(w->last_error);
	memset(w, 0, sizeof *w);
}

/* webhook_insert - the insert of records_webhook_add, inside its
 * transaction, with the cursor already read into W. */
static int webhook_insert(struct records *r, struct webhook_row *w, char *err, size_t errlen)
{
	sqlite3_stmt *s = rec_prepare(r,
				      "INSERT INTO webhooks (user, url, events, secret, cursor, "
				      "failures, disabled, last_error, created) "
				      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
				      err, errlen);
	if (!s)
		return -1;
	if (rec_bind_text(s, 1, w->user) || rec_bind_text(s, 2, w->url) ||
	    sqlite3_bind_int64(s, 3, w->events) || rec_bind_text(s, 4, w->secret) ||
	    sqlite3_bind_int64(s, 5, w->cursor) || sqlite3_bind_int64(s, 6, w->failures) ||
	    sqlite3_bind_int(s, 7, w->disabled ? 1 : 0) || rec_bind_text(s, 8, w->last_error) ||
	    sqlite3_bind_int64(s, 9, w->created)) {
		sqlite3_finalize(s);
		return rec_db_fail(r, err, errlen, "bind");
	}
	if (write_one(r, s, NULL, err, errlen) < 0)
		return -1;
	w->id = sqlite3_last_insert_rowid(r->db);
	return 0;
}

int records_webhook_add(struct records *r, struct webhook_row *w, char *err, size_t errlen)
{
	if (rec_begin(r, err, errlen) < 0)
		return -1;
	/* Read under the write lock: no event can slip in between the
	 * cursor and the insert. */
	int64_t cursor = 0;
	int rc = records_last_event_id(r, &cursor, err, errlen);
	if (rc == 0) {
		w->cursor = cursor;
		if (!w->created)
			w->created = (int64_t)time(NULL);
		rc = webhook_insert(r, w, err, errlen);
	}
	return rec_finish(r, rc, err, errlen);
}

int records_webhook_del(struct records *r, int64_t id, const char *user, char *err,
			size_t errlen)
{
	int changed = 0;
	if (rec_begin(r, err, errlen) < 0)
		return -1;
	sqlite3_stmt *s = rec_prepare(r,
				      user ? "DELETE FROM webhooks WHERE id = ?1 AND user = ?2" :
					     "DELETE FROM webhooks WHERE id = ?1",
				      err, errlen);
	int rc = s ? 0 : -1;
	if (s && (sqlite3_bind_int64(s, 1, id) || (user && rec_bind_text(s, 2, user)))) {
		sqlite3_finalize(s);
		rc = rec_db_fail(r, err, errlen, "bind");
	} else if (s) {
		rc = write_one(r, s, &changed, err, errlen);
	}
	rc = rec_finish(r, rc, err, errlen);
	return rc < 0 ? -1 : changed ? 0 : 1;
}

int records_webhook_each(struct records *r, records_webhook_cb cb, void *ctx, char *err,
			 size_t errlen)
{
	sqlite3_stmt *s = rec_prepare(r,
				      "SELECT id, user, url, events, secret, cursor, failures, "
				      "disabled, last_error, created FROM webhooks ORDER BY id",
				      err, errlen);
	if (!s)
		return -1;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		/* The strings are sqlite's, lent to CB for this row only. */
		struct webhook_row w = {
			.id = sqlite3_column_int64(s, 0),
			.user = (char *)sqlite3_column_text(s, 1),
			.url = (char *)sqlite3_column_text(s, 2),
			.events = (unsigned)sqlite3_column_int64(s, 3),
			.secret = (char *)sqlite3_column_text(s, 4),
			.cursor = sqlite3_column_int64(s, 5),
			.failures = (unsigned)sqlite3_column_int64(s, 6),
			.disabled = sqlite3_column_int(s, 7) != 0,
			.last_error = (char *)sqlite3_column_text(s, 8),
			.created = sqlite3_column_int64(s, 9),
		};
		if (!w.user || !w.url || !w.secret || !w.last_error) {
			step = SQLITE_NOMEM;
			break;
		}
		if (cb(ctx, &w)) {
			step = SQLITE_DONE;
			break;
		}
	}
	int rc = step == SQLITE_DONE ? 0 : rec_db_fail(r, err, errlen, "read");
	sqlite3_finalize(s);
	return rc;
}

int records_webhook_progress(struct records *r, int64_t id, int64_t cursor, unsigned failures,
			     int disabled, const char *last_error, char *err, size_t errlen)
{
	int changed = 0;
	if (rec_begin(r, err, errlen) < 0)
		return -1;
	sqlite3_stmt *s = rec_prepare(r,
				      "UPDATE webhooks SET cursor = ?2, failures = ?3, "
				      "disabled = ?4, last_error = ?5 WHERE id = ?1",
				      err, errlen);
	int rc = s ? 0 : -1;
	if (s && (sqlite3_bind_int64(s, 1, id) || sqlite3_bind_int64(s, 2, cursor) ||
		  sqlite3_bind_int64(s, 3, failures) || sqlite3_bind_int(s, 4, disabled ? 1 : 0) ||
		  rec_bind_text(s, 5, last_error))) {
		sqlite3_finalize(s);
		rc = rec_db_fail(r, err, errlen, "bind");
	} else if (s) {
		rc = write_one(r, s, &changed, err, errlen);
	}
	rc = rec_finish(r, rc, err, errlen);
	return rc < 0 ? -1 : changed ? 0 : 1;
}
