/* tls.c - server TLS contexts (see tls.h). */
#include "auth/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* TLS 1.2 suites: ECDHE/DHE key exchange and AEAD ciphers only. */
#define TLS12_CIPHERS                                                                      \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                       \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                       \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                       \
	"DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"

static void ssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	snprintf(err, errlen, "%s: %s", what, e ? buf : strerror(errno));
	ERR_clear_error();
}

/* add_san - subjectAltName DNS:HOSTNAME, which clients check, not the CN. */
static int add_san(X509 *x, const char *hostname)
{
	char value[300];
	snprintf(value, sizeof value, "DNS:%s", hostname);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static X509 *self_signed(EVP_PKEY *pkey, const char *hostname)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	if (!x || RAND_bytes(serial, sizeof serial) != 1)
		goto fail;
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	if (!ok || !X509_set_version(x, 2) || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 24 * 3600) || !X509_set_pubkey(x, pkey))
		goto fail;
	X509_NAME *name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || add_san(x, hostname) < 0 ||
	    !X509_sign(x, pkey, EVP_sha256()))
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* write_pem - create PATH with MODE and write one PEM object into it. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	int ok = pkey ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) :
			PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	fclose(f);
	return ok ? 0 : -1;
}

/* generate_pair - a P-256 key and a 10-year self-signed certificate. */
static int generate_pair(const char *dir, const char *cert, const char *key,
			 const char *hostname, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = pkey ? self_signed(pkey, hostname) : NULL;
	if (!x) {
		EVP_PKEY_free(pkey);
		ssl_error(err, errlen, "cannot generate a self-signed certificate");
		return -1;
	}
	int rc = write_pem(key, 0600, pkey, NULL) == 0 && write_pem(cert, 0644, NULL, x) == 0 ? 0 : -1;
	if (rc < 0)
		snprintf(err, errlen, "cannot write %s: %s", key, strerror(errno));
	else if (geteuid() == 0 && (chown(dir, uid, gid) < 0 || chown(key, uid, gid) < 0 ||
				    chown(cert, uid, gid) < 0))
		rc = -1, snprintf(err, errlen, "cannot chown %s: %s", dir, strerror(errno));
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

SSL_CTX *tls_server_new(const char *cert, const char *key, const char *data_dir,
			const char *hostname, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	char dir[4096], gcert[4200], gkey[4200];
	if (!cert || !key) {
		snprintf(dir, sizeof dir, "%s/tls", data_dir);
		snprintf(gcert, sizeof gcert, "%s/cert.pem", dir);
		snprintf(gkey, sizeof gkey, "%s/key.pem", dir);
		cert = gcert;
		key = gkey;
		if (access(gkey, R_OK) != 0 &&
		    generate_pair(dir, gcert, gkey, hostname, uid, gid, err, errlen) < 0)
			return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_error(err, errlen, "TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle sessions stay small */
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		ssl_error(err, errlen, "cipher list");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_error(err, errlen, cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error(err, errlen, key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_describe(SSL *ssl, char *out, size_t outlen)
{
	int alg = 0;
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
	snprintf(out, outlen, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
		 c ? SSL_CIPHER_get_name(c) : "none", bits, alg);
}
