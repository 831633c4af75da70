/*
 * sig.c - request signatures (scheme v1) and the HMAC keyring.
 *
 * The canonical string and the HMAC are specified in DESIGN section 4 and
 * pinned by tests/vectors/signature.json; the Worker computes the same in
 * JavaScript.  Comparison is constant-time.  The keyring file may hold
 * several keys so that a new one can be rolled out before the old one is
 * withdrawn.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/sig.h"
#include "lib/buf.h"

#define KEY_ID_MAX	64
#define SECRET_MAX	256
#define KEYS_MAX	64

struct key {
	char	 id[KEY_ID_MAX + 1];
	char	 secret[SECRET_MAX + 1];
	size_t	 secret_len;
};

struct keyring {
	struct key keys[KEYS_MAX];
	size_t	 n;
};

int
sig_canonical(struct buf *out, const char *ts, const char *method,
    const char *target, const char *idem_key, const char *body_sha256_hex)
{
	buf_reset(out);
	return buf_printf(out, "v1\n%s\n%s\n%s\n%s\n%s", ts, method, target,
	    idem_key ? idem_key : "", body_sha256_hex);
}

void
sig_sign(const char *secret, size_t secret_len, const char *canonical,
    size_t canonical_len, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	HMAC(EVP_sha256(), secret, (int)secret_len,
	    (const unsigned char *)canonical, canonical_len, mac, &maclen);
	memcpy(out, "v1=", 3);
	hex_encode(mac, maclen, out + 3);
}

int
sig_check(const char *secret, size_t secret_len, const char *canonical,
    size_t canonical_len, const char *header_value)
{
	char want[SIG_HEADER_LEN + 1];

	if (header_value == NULL || strlen(header_value) != SIG_HEADER_LEN)
		return -1;
	sig_sign(secret, secret_len, canonical, canonical_len, want);
	return CRYPTO_memcmp(want, header_value, SIG_HEADER_LEN) == 0 ? 0 : -1;
}

static int
key_id_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > KEY_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("-_.", s[i]) == NULL)
			return 0;
	return 1;
}

struct keyring *
keyring_load(const char *path, char *err, size_t errsz)
{
	struct keyring *k;
	FILE *fp;
	char line[1024];
	int lineno = 0;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		fclose(fp);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *p = line, *id, *sec, *end;
		size_t idlen, seclen;

		lineno++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		id = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		idlen = (size_t)(p - id);
		while (*p == ' ' || *p == '\t')
			p++;
		sec = p;
		end = sec + strlen(sec);
		while (end > sec && isspace((unsigned char)end[-1]))
			end--;
		seclen = (size_t)(end - sec);
		if (!key_id_valid(id, idlen) || seclen < 16 || seclen > SECRET_MAX
		    || memchr(sec, ' ', seclen) != NULL) {
			snprintf(err, errsz, "%s:%d: expected 'KEY_ID SECRET' "
			    "(id [A-Za-z0-9._-]{1,64}, secret 16-256 chars)",
			    path, lineno);
			goto fail;
		}
		if (k->n == KEYS_MAX) {
			snprintf(err, errsz, "%s: more than %d keys", path, KEYS_MAX);
			goto fail;
		}
		memcpy(k->keys[k->n].id, id, idlen);
		memcpy(k->keys[k->n].secret, sec, seclen);
		k->keys[k->n].secret_len = seclen;
		k->n++;
	}
	fclose(fp);
	if (k->n == 0) {
		snprintf(err, errsz, "%s: no keys", path);
		keyring_free(&k);
		return NULL;
	}
	return k;
fail:
	fclose(fp);
	keyring_free(&k);
	return NULL;
}

void
keyring_free(struct keyring **kp)
{
	if (*kp == NULL)
		return;
	OPENSSL_cleanse(*kp, sizeof(**kp));
	free(*kp);
	*kp = NULL;
}

const char *
keyring_find(const struct keyring *k, const char *key_id, size_t *secret_len_r)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (strcmp(k->keys[i].id, key_id) == 0) {
			*secret_len_r = k->keys[i].secret_len;
			return k->keys[i].secret;
		}
	return NULL;
}

size_t
keyring_count(const struct keyring *k)
{
	return k->n;
}
