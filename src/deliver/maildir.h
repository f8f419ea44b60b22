/* maildir.h - local delivery into a Maildir (the maildir spec, Dovecot's
 * file names).
 *
 * DATA_DIR/mailboxes/DOMAIN/LOCALPART/Maildir/{tmp,new,cur}, domain and
 * local part lower case.  A delivery writes tmp/NAME, fsyncs it, links it to
 * new/NAME, fsyncs new/ and unlinks tmp/NAME.  NAME is
 * "SECS.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<crlf size>" with HOST's '/' and
 * ':' escaped as Dovecot does.  Lines are stored with LF ends.
 * Blocking: runs on a worker thread; thread-safe. */
#ifndef TERN_DELIVER_MAILDIR_H
#define TERN_DELIVER_MAILDIR_H

#include <stddef.h>

/* maildir_path - "ROOT/mailboxes/DOMAIN/LOCAL/Maildir" lower-cased, into
 * OUT.  Refuses ("." , "..", "/" and NUL in either part) with -1: an empty
 * part, a '/', a leading '.' (so "." and ".." too), or a control byte is
 * EINVAL; a path longer than OUTLEN is ENAMETOOLONG. */
int maildir_path(const char *root, const char *local, const char *domain,
		 char *out, size_t outlen);

/* maildir_deliver - deliver one message into the Maildir of LOCAL@DOMAIN
 * under ROOT, creating the folders as needed.  PREFIX (PREFIXLEN bytes,
 * CRLF line ends, e.g. Return-Path and Delivered-To) is written first, then
 * BODYLEN bytes read from BODY_FD starting at offset BODY_OFF (CRLF line
 * ends; converted to LF; a CR not followed by LF is kept) with pread, so
 * one BODY_FD may serve several deliveries at once.  HOSTNAME goes into the
 * file name.  Folders are created 0700 (their parents fsynced), the file
 * 0600.  Returns 0, or -1 with errno set and nothing left in new/ or tmp/
 * (EIO if BODY_FD holds fewer than BODYLEN bytes). */
int maildir_deliver(const char *root, const char *local, const char *domain,
		    const char *hostname, const char *prefix, size_t prefixlen,
		    int body_fd, long body_off, size_t bodylen);

/* The longest delivery KEY of maildir_deliver_once. */
#define MAILDIR_KEY_MAX 64

/* maildir_deliver_once - maildir_deliver for a delivery that may be
 * repeated after a crash (between the link into new/ and the caller's
 * durable record of it).  The file is named "WHEN.KKEY.HOST,S=..,W=.."
 * instead: KEY ([0-9A-Za-z_-], 1 to MAILDIR_KEY_MAX bytes) and WHEN (e.g.
 * the message's arrival time) must be the same on every attempt of one
 * delivery and unique to it, such as the spool id and the recipient's
 * index.  When new/ already holds the message under that name, nothing
 * is added and the result is 0: the repeated delivery is not stored twice.
 * A copy that a mail client has already moved to cur/ is not looked for.
 * EINVAL for a bad KEY or a negative WHEN. */
int maildir_deliver_once(const char *root, const char *local, const char *domain,
			 const char *hostname, long long when, const char *key,
			 const char *prefix, size_t prefixlen, int body_fd,
			 long body_off, size_t bodylen);

#endif
