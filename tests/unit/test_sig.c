/*
 * test_sig.c - request signature v1 against the shared vectors
 * (tests/vectors/signature.json, also read by the Worker's tests), and the
 * keyring file format.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "auth/sig.h"
#include "lib/buf.h"
#include "tests/unit/unit.h"

static size_t
unhex(const char *hex, unsigned char *out, size_t outsz)
{
	size_t n = strlen(hex) / 2, i;
	unsigned int v;

	if (n > outsz)
		return 0;
	for (i = 0; i < n; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return 0;
		out[i] = (unsigned char)v;
	}
	return n;
}

static void
test_vectors(const char *path)
{
	json_error_t jerr;
	json_t *root, *cases, *c;
	size_t i;
	char name[256];

	root = json_load_file(path, 0, &jerr);
	UNIT_CHECK("sig: vector file loads", root != NULL, "%s: %s", path, jerr.text);
	if (root == NULL)
		return;
	cases = json_object_get(root, "cases");
	UNIT_CHECK("sig: vector file has cases", json_array_size(cases) >= 4,
	    "only %zu cases", json_array_size(cases));
	json_array_foreach(cases, i, c) {
		const char *secret = json_string_value(json_object_get(c, "secret"));
		const char *body_hex = json_string_value(json_object_get(c, "body_hex"));
		unsigned char body[4096], digest[SHA256_DIGEST_LENGTH];
		char digest_hex[SIG_HEX_LEN + 1], sig[SIG_HEADER_LEN + 1];
		struct buf canon;
		size_t blen = unhex(body_hex, body, sizeof(body));

		SHA256(body, blen, digest);
		hex_encode(digest, sizeof(digest), digest_hex);
		buf_init(&canon, 64 * 1024);
		sig_canonical(&canon,
		    json_string_value(json_object_get(c, "timestamp")),
		    json_string_value(json_object_get(c, "method")),
		    json_string_value(json_object_get(c, "target")),
		    json_string_value(json_object_get(c, "idempotency_key")),
		    digest_hex);
		snprintf(name, sizeof(name), "sig: vector '%s' canonical string",
		    json_string_value(json_object_get(c, "name")));
		UNIT_CHECK(name, strcmp(buf_cstr(&canon),
		    json_string_value(json_object_get(c, "canonical"))) == 0,
		    "got %s", buf_cstr(&canon));
		sig_sign(secret, strlen(secret), canon.data, canon.len, sig);
		snprintf(name, sizeof(name), "sig: vector '%s' signature",
		    json_string_value(json_object_get(c, "name")));
		UNIT_CHECK(name, strcmp(sig,
		    json_string_value(json_object_get(c, "signature"))) == 0,
		    "got %s", sig);
		snprintf(name, sizeof(name), "sig: vector '%s' verifies",
		    json_string_value(json_object_get(c, "name")));
		UNIT_CHECK(name, sig_check(secret, strlen(secret), canon.data,
		    canon.len, sig) == 0, "sig_check refused its own signature");
		sig[10] ^= 1;
		snprintf(name, sizeof(name), "sig: vector '%s' one flipped bit refused",
		    json_string_value(json_object_get(c, "name")));
		UNIT_CHECK(name, sig_check(secret, strlen(secret), canon.data,
		    canon.len, sig) != 0, "flipped signature accepted");
		buf_free(&canon);
	}
	json_decref(root);
}

static void
test_check_shapes(void)
{
	static const struct {
		const char *name, *value;
	} rows[] = {
		{ "sig: empty header refused", "" },
		{ "sig: missing v1= prefix refused",
		  "d5c994e7226ca83467f0ab4d0197458bda505f840c002a4790e67ae6cc790510" },
		{ "sig: upper-case hex refused",
		  "v1=D5C994E7226CA83467F0AB4D0197458BDA505F840C002A4790E67AE6CC790510" },
		{ "sig: truncated hex refused", "v1=d5c994e7" },
		{ "sig: trailing garbage refused",
		  "v1=d5c994e7226ca83467f0ab4d0197458bda505f840c002a4790e67ae6cc790510x" },
	};
	const char *secret = "k1-0123456789abcdef0123456789abcdef";
	const char *canon = "v1\n1795435200\nPOST\n/v1/messages?mail_from=a%40sender.test&rcpt=demo%40example.test\n\n6bc25e486053c19d85f68b14204cb1f01942681c6cf016b8c9109cb3434f8de6";
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		UNIT_CHECK(rows[i].name, sig_check(secret, strlen(secret), canon,
		    strlen(canon), rows[i].value) != 0, "accepted '%s'",
		    rows[i].value);
	UNIT_CHECK("sig: NULL header refused",
	    sig_check(secret, strlen(secret), canon, strlen(canon), NULL) != 0,
	    "accepted NULL");
}

static void
test_keyring(void)
{
	static const struct {
		const char *name, *content;
		int ok;
		size_t nkeys;
	} rows[] = {
		{ "keyring: one key", "dev1 0123456789abcdef0123\n", 1, 1 },
		{ "keyring: two keys for rotation with comments",
		  "# old\nold 0123456789abcdef0123\n\nnew fedcba9876543210fedc\n", 1, 2 },
		{ "keyring: secret too short refused", "k s3cret\n", 0, 0 },
		{ "keyring: missing secret refused", "k\n", 0, 0 },
		{ "keyring: bad key id refused", "k/1 0123456789abcdef0123\n", 0, 0 },
		{ "keyring: empty file refused", "# nothing\n", 0, 0 },
	};
	char path[] = "/tmp/edgemail-keyring-XXXXXX", err[256];
	size_t i, len;
	int fd;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct keyring *k;

		memcpy(path + sizeof(path) - 7, "XXXXXX", 6);
		if ((fd = mkstemp(path)) < 0)
			abort();
		if (write(fd, rows[i].content, strlen(rows[i].content)) < 0)
			abort();
		close(fd);
		k = keyring_load(path, err, sizeof(err));
		unlink(path);
		UNIT_CHECK(rows[i].name, (k != NULL) == rows[i].ok &&
		    (k == NULL || keyring_count(k) == rows[i].nkeys),
		    "load %s (%s)", k ? "succeeded" : "failed", k ? "" : err);
		if (k != NULL && rows[i].nkeys == 2) {
			UNIT_CHECK("keyring: finds the second key",
			    keyring_find(k, "new", &len) != NULL && len == 20,
			    "not found");
			UNIT_CHECK("keyring: unknown id not found",
			    keyring_find(k, "nope", &len) == NULL, "found");
		}
		keyring_free(&k);
		UNIT_CHECK("keyring: free sets the pointer to NULL", k == NULL,
		    "not NULL");
	}
}

int
main(void)
{
	const char *top = getenv("EDGEMAIL_TOP");
	char path[1024];

	snprintf(path, sizeof(path), "%s/tests/vectors/signature.json",
	    top ? top : ".");
	test_vectors(path);
	test_check_shapes();
	test_keyring();
	return unit_done();
}
