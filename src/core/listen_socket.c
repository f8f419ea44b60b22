/* listen_socket.c - see listen_socket.h. */
#include "core/listen_socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int listen_socket(const struct listen_spec *spec, char *err, size_t errlen)
{
	int fd = socket(spec->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (spec->addr.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
	    bind(fd, (const struct sockaddr *)&spec->addr, spec->addrlen) < 0 ||
	    listen(fd, 1024) < 0) {
		snprintf(err, errlen, "listen %s %s: %s", listen_kind_name(spec->kind), spec->text,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}
