/* records_private.h - what records_events.c and records_lists.c share:
 * the connection and the few helpers every statement goes through. */
#ifndef TERN_STORE_RECORDS_PRIVATE_H
#define TERN_STORE_RECORDS_PRIVATE_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/records.h"

struct records {
	sqlite3 *db;
	/* The statements of records_write_batch, prepared once at open:
	 * they run for every event the daemon sees. */
	sqlite3_stmt *ins_event, *add_count, *ins_message;
};

/* rec_fail - format a reason into ERR; returns -1. */
__attribute__((format(printf, 3, 4))) int rec_fail(char *err, size_t errlen, const char *fmt,
						   ...);
/* rec_db_fail - "database: WHAT: sqlite's message"; returns -1. */
int rec_db_fail(struct records *r, char *err, size_t errlen, const char *what);
/* rec_prepare - SQL prepared, or NULL with ERR set. */
sqlite3_stmt *rec_prepare(struct records *r, const char *sql, char *err, size_t errlen);
/* rec_begin - BEGIN IMMEDIATE: the write lock now, so a write never has
 * to upgrade a read lock (and fail busy) half-way. */
int rec_begin(struct records *r, char *err, size_t errlen);
/* rec_finish - COMMIT when RC is 0 (else, or when the commit fails,
 * ROLLBACK).  Returns RC, or -1 when the commit failed. */
int rec_finish(struct records *r, int rc, char *err, size_t errlen);
/* rec_col_dup - column COL as a malloc'ed string ("" for NULL); NULL when
 * out of memory. */
char *rec_col_dup(sqlite3_stmt *s, int col);
/* rec_bind_text - bind T (NULL as "") to parameter I. */
int rec_bind_text(sqlite3_stmt *s, int i, const char *t);

#endif
