/*
 * sig.h - edgemail request signatures, scheme v1 (DESIGN section 4).
 *
 *   canonical = "v1\n" ts "\n" METHOD "\n" path_and_query "\n"
 *               idempotency_key "\n" hex(sha256(body))
 *   Edgemail-Signature: v1=hex(HMAC-SHA256(secret, canonical))
 *
 * and the keyring (keys/hmac.keys: "KEY_ID SECRET" per line, several for
 * rotation).  The Worker implements the same in JavaScript; both are
 * checked against tests/vectors/signature.json.
 */
#ifndef EDGEMAIL_SIG_H
#define EDGEMAIL_SIG_H

#include <stddef.h>

struct buf;

#define SIG_HEX_LEN	64		/* hex of a SHA-256 / HMAC-SHA256 */
#define SIG_HEADER_LEN	(3 + SIG_HEX_LEN)	/* "v1=" + hex */

int	sig_canonical(struct buf *out, const char *ts, const char *method,
	    const char *target, const char *idem_key, const char *body_sha256_hex);
/* out gets "v1=<hex>" and a NUL: SIG_HEADER_LEN + 1 bytes. */
void	sig_sign(const char *secret, size_t secret_len, const char *canonical,
	    size_t canonical_len, char *out);
/* Constant-time check of a header value against the expected one; 0 ok. */
int	sig_check(const char *secret, size_t secret_len, const char *canonical,
	    size_t canonical_len, const char *header_value);

struct keyring;

/* Load "KEY_ID SECRET" lines ("#" comments).  NULL and err on failure. */
struct keyring *keyring_load(const char *path, char *err, size_t errsz);
void	keyring_free(struct keyring **kp);
/* The secret for key_id, or NULL. */
const char *keyring_find(const struct keyring *k, const char *key_id,
	    size_t *secret_len_r);
size_t	keyring_count(const struct keyring *k);

#endif
