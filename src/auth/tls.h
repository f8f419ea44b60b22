/* tls.h - server TLS contexts (OpenSSL 3): STARTTLS (RFC 3207) and
 * implicit TLS (RFC 8314).
 *
 * Policy: TLS 1.2 minimum, TLS 1.3 preferred, forward-secret AEAD ciphers
 * only for TLS 1.2, no compression, no renegotiation, server cipher order.
 * Without tls_cert/tls_key, a self-signed P-256 pair for the hostname is
 * generated once in DATA_DIR/tls/ and reused.
 *
 * Ownership: tls_server_new returns an SSL_CTX with one reference; callers
 * SSL_CTX_free it.  Sessions take their own SSL objects from it, so a new
 * context (SIGHUP) never disturbs connections already running. */
#ifndef TERN_AUTH_TLS_H
#define TERN_AUTH_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* tls_server_new - a context for CERT/KEY, or (both NULL) for the pair in
 * DATA_DIR/tls/, generated for HOSTNAME if missing and given to UID:GID
 * when running as root.  NULL with ERR set on failure. */
SSL_CTX *tls_server_new(const char *cert, const char *key, const char *data_dir,
			const char *hostname, uid_t uid, gid_t gid, char *err, size_t errlen);

/* tls_describe - "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
 * for the Received header and the log. */
void tls_describe(SSL *ssl, char *out, size_t outlen);

#endif
