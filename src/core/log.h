/* log.h - one line per event on stderr.
 *
 * Every line is "YYYY-mm-ddTHH:MM:SSZ ternd[pid]: LEVEL message".  Messages
 * never contain raw network bytes: callers pass client text through
 * log_sanitize() first so a hostile peer cannot forge log lines.
 * Thread-safe: each line is formatted into a local buffer and written with
 * one write(2). */
#ifndef TERN_CORE_LOG_H
#define TERN_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* log_set_level - lines below LEVEL are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);
/* log_set_ident - program name shown in every line (default "tern"). */
void log_set_ident(const char *ident);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* log_sanitize - copy at most LEN bytes of IN into OUT (OUTLEN bytes, always
 * NUL-terminated), replacing control and non-ASCII bytes by '?' and
 * truncating with "..." when it does not fit.  Returns OUT. */
char *log_sanitize(char *out, size_t outlen, const char *in, size_t len);

#endif
