/* privdrop.h - running with the least privilege.
 *
 * Started as root, ternd binds its ports, then becomes the configured user
 * (`user`, default "tern", else "nobody") before it reads a byte from the
 * network.  ternctl run as root becomes the same user before it touches
 * data_dir, so every file there belongs to the daemon's user. */
#ifndef TERN_CORE_PRIVDROP_H
#define TERN_CORE_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

/* privdrop_lookup - uid/gid of NAME; NAME "tern" falls back to "nobody"
 * when no such user exists.  Returns 0, or -1 with ERR set. */
int privdrop_lookup(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* data_dir_prepare - create DIR (0700) if missing; when running as root,
 * give it (not its contents) to UID:GID.  Returns 0 or -1 with ERR. */
int data_dir_prepare(const char *dir, uid_t uid, gid_t gid, char *err, size_t errlen);

/* privdrop_become - when running as root: setgroups, setgid, setuid to the
 * user and check that root cannot be regained.  A no-op for other users.
 * Returns 0 or -1 with ERR. */
int privdrop_become(uid_t uid, gid_t gid, char *err, size_t errlen);

#endif
