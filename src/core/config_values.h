/* config_values.h - value parsers shared by config.c (internal to the
 * configuration stage; the public interface is config.h). */
#ifndef TERN_CORE_CONFIG_VALUES_H
#define TERN_CORE_CONFIG_VALUES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"

#define LISTEN_KIND_COUNT 8

extern const uint8_t v4mapped_prefix[12];
/* kind_names - the listen KIND words, indexed by enum listen_kind. */
extern const char *const kind_names[LISTEN_KIND_COUNT];

int parse_decimal(const char *text, uint64_t max, uint64_t *out, const char **end);
int parse_port(const char *text, unsigned *port);
int valid_hostname(const char *s);
int split_host_port(const char *text, char *host, size_t hostlen, unsigned *port, int *v6,
		    int port_required);
int fill_sockaddr(const char *host, int v6, unsigned port, struct sockaddr_storage *ss,
		  socklen_t *len);
int listen_spec_parse(enum listen_kind kind, const char *text, struct listen_spec *ls);
int valid_address(const char *host, int v6);
int parse_cidr(const char *text, struct cidr *c);
int prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix);
const char *show_duration(char *buf, size_t len, unsigned secs);

#endif
