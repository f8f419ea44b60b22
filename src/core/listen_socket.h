/* listen_socket.h - a bound, listening, non-blocking TCP socket for one
 * `listen` line; shared by every kind of listener. */
#ifndef TERN_CORE_LISTEN_SOCKET_H
#define TERN_CORE_LISTEN_SOCKET_H

#include <stddef.h>

#include "core/config.h"

/* listen_socket - bind SPEC (SO_REUSEADDR, IPv6 sockets v6-only) and
 * listen.  Returns the fd, or -1 with "listen KIND ADDR: reason" in ERR. */
int listen_socket(const struct listen_spec *spec, char *err, size_t errlen);

#endif
