/* privdrop.c - see privdrop.h. */
#include "core/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int privdrop_lookup(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(name);
	if (!pw && strcmp(name, "tern") == 0)
		pw = getpwnam("nobody");
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
