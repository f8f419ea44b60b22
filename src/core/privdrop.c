/* privdrop.c - see privdrop.h. */
#include "core/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* PW_BUF_MAX - room for one passwd entry's strings (name, gecos, home,
 * shell); getpwnam_r says ERANGE when an entry does not fit. */
#define PW_BUF_MAX 16384

/* user_lookup - NAME's entry into PW with its strings in BUF; NULL when
 * there is no such user or it cannot be read.  getpwnam_r, not getpwnam:
 * no static storage shared with other threads. */
static struct passwd *user_lookup(const char *name, struct passwd *pw, char *buf)
{
	struct passwd *found = NULL;
	if (getpwnam_r(name, pw, buf, PW_BUF_MAX, &found) != 0)
		return NULL;
	return found;
}

int privdrop_lookup(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char buf[PW_BUF_MAX];
	struct passwd entry;
	struct passwd *pw = user_lookup(name, &entry, buf);
	if (!pw && strcmp(name, "tern") == 0)
		pw = user_lookup("nobody", &entry, buf);
	if (!pw) {
		snprintf(err, errlen, "no such user: %s", name);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int data_dir_prepare(const char *dir, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -1;
	}
	if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid) && chown(dir, uid, gid) < 0) {
		snprintf(err, errlen, "cannot chown %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int privdrop_become(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (geteuid() != 0)
		return 0;
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		snprintf(err, errlen, "cannot drop privileges: %s", strerror(errno));
		return -1;
	}
	if (uid != 0 && setuid(0) == 0) {
		snprintf(err, errlen, "privileges could be regained after setuid");
		return -1;
	}
	return 0;
}
