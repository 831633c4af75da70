/*
 * test_smtp_dkim.c - lib/dkim_sign: the relay's signatures verify.
 *
 * Makes an RSA and an Ed25519 key with openssl(1) in a temporary
 * directory laid out as `edgemailctl dkim keygen` does, signs messages
 * (in memory and from a file), and verifies every signature with
 * libopendkim reading the public keys from a file (no DNS).  Also: a
 * domain without a key is not signed, a broken key is a TEMP failure,
 * a changed key file is picked up, and a modified message fails; and a
 * table of messages whose header and body test the relaxed
 * canonicalisation (folds, whitespace runs, empty lines at the end, an
 * empty body, repeated fields), each verified by libopendkim.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <opendkim/dkim.h>

#include "lib/buf.h"
#include "lib/dkim_sign.h"
#include "lib/log.h"
#include "tests/unit/unit.h"

static char dir[256];

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* Run a command and return its first output line. */
static int
sh_out(char *out, size_t outsz, const char *cmd)
{
	FILE *p;
	size_t n;

	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	if (fgets(out, (int)outsz, p) == NULL) {
		pclose(p);
		return -1;
	}
	pclose(p);
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return 0;
}

static int
make_keys(void)
{
	char rsa_pub[2048], ed_pub[256], cmd[1024];
	FILE *f;

	if (sh("mkdir -p %s/dkim/example.test && "
	    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
	    "-out %s/dkim/example.test/sel1.key 2>/dev/null && "
	    "openssl genpkey -algorithm ed25519 "
	    "-out %s/dkim/example.test/ed1.key 2>/dev/null", dir, dir, dir) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "openssl pkey -in %s/dkim/example.test/sel1.key "
	    "-pubout -outform DER 2>/dev/null | base64 -w0", dir);
	if (sh_out(rsa_pub, sizeof(rsa_pub), cmd) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "openssl pkey -in %s/dkim/example.test/ed1.key "
	    "-pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0", dir);
	if (sh_out(ed_pub, sizeof(ed_pub), cmd) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/keys.txt", dir);
	if ((f = fopen(cmd, "w")) == NULL)
		return -1;
	fprintf(f, "sel1._domainkey.example.test v=DKIM1; k=rsa; p=%s\n", rsa_pub);
	fprintf(f, "ed1._domainkey.example.test v=DKIM1; k=ed25519; p=%s\n",
	    ed_pub);
	fclose(f);
	return 0;
}

/* Verify hdr_prefix + msg with libopendkim; the number of good sigs. */
static int
verify(const char *signed_fields, const char *msg, size_t len, int *nsigs_r)
{
	DKIM_LIB *lib;
	DKIM *d;
	DKIM_STAT st;
	DKIM_SIGINFO **sigs;
	int nsigs = 0, i, good = 0;
	unsigned int qtype = DKIM_QUERY_FILE;
	char keys[300];

	snprintf(keys, sizeof(keys), "%s/keys.txt", dir);
	lib = dkim_init(NULL, NULL);
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qtype,
	    sizeof(qtype));
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, keys,
	    strlen(keys));
	d = dkim_verify(lib, (const unsigned char *)"t", NULL, &st);
	dkim_chunk(d, (unsigned char *)(uintptr_t)signed_fields,
	    strlen(signed_fields));
	dkim_chunk(d, (unsigned char *)(uintptr_t)msg, len);
	dkim_chunk(d, NULL, 0);
	dkim_eom(d, NULL);
	if (dkim_getsiglist(d, &sigs, &nsigs) == DKIM_STAT_OK) {
		for (i = 0; i < nsigs; i++) {
			dkim_sig_process(d, sigs[i]);
			if (DKIM_SIG_CHECK(sigs[i]))
				good++;
		}
	}
	*nsigs_r = nsigs;
	dkim_free(d);
	dkim_close(lib);
	return good;
}

static const char HDR[] =
    "From: Demo <demo@example.test>\r\n"
    "To: someone@far.test\r\n"
    "Subject: signed\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    "Message-ID: <x1@example.test>\r\n"
    "\r\n";
static const char BODY[] = "Hello,\r\n\r\nthis is signed.\r\n";

static void
test_sign_verify(void)
{
	struct dkim_signer *s;
	struct dkim_input in;
	struct buf out, msg;
	struct reply r;
	char err[256], keys[300], path[300];
	int n, nsigs, good, fd;

	snprintf(keys, sizeof(keys), "%s/dkim", dir);
	s = dkim_signer_new(keys, "sel1", "ed1", err, sizeof(err));
	UNIT_CHECK("dkim_signer_new", s != NULL, "%s", err);
	if (s == NULL)
		return;
	buf_init(&out, 65536);
	buf_init(&msg, 65536);
	buf_puts(&msg, HDR);
	buf_puts(&msg, BODY);

	memset(&in, 0, sizeof(in));
	in.hdr = HDR;
	in.hdr_len = strlen(HDR);
	in.body = BODY;
	in.body_len = strlen(BODY);
	in.fd = -1;
	n = dkim_sign_message(s, "example.test", "j1", &in, &out, &r);
	UNIT_CHECK("sign_two_signatures", n == 2, "n=%d", n);
	UNIT_CHECK("sign_field_crlf", strstr(out.data, "\n") != NULL &&
	    strncmp(out.data, "DKIM-Signature: ", 16) == 0 &&
	    out.len >= 2 && out.data[out.len - 2] == '\r', "%s", out.data);
	{
		static const char withrcv[] =
		    "Received: from x by y; Mon, 01 Jan 2024 00:00:00 +0000\r\n"
		    "From: demo@example.test\r\nSubject: s\r\n\r\n";
		struct dkim_input rin = in;
		struct buf o2;
		const char *h;

		buf_init(&o2, 65536);
		rin.hdr = withrcv;
		rin.hdr_len = strlen(withrcv);
		dkim_sign_message(s, "example.test", "j0", &rin, &o2, &r);
		h = strstr(buf_cstr(&o2), "h=");
		UNIT_CHECK("received_not_signed", h != NULL &&
		    strncasecmp(h, "h=Received", 10) != 0 &&
		    strstr(h, ":Received") == NULL && strstr(h, "From") != NULL,
		    "%s", buf_cstr(&o2));
		buf_free(&o2);
	}
	UNIT_CHECK("rsa_signature_first", strstr(out.data, "a=rsa-sha256") <
	    strstr(out.data, "a=ed25519-sha256"), "%s", out.data);
	good = verify(out.data, msg.data, msg.len, &nsigs);
	UNIT_CHECK("verify_rsa_and_ed25519", good == 2 && nsigs == 2,
	    "good=%d nsigs=%d", good, nsigs);

	/* A changed body breaks both. */
	{
		struct buf bad;

		buf_init(&bad, 65536);
		buf_puts(&bad, HDR);
		buf_puts(&bad, "Hello,\r\n\r\nthis is changed.\r\n");
		good = verify(out.data, bad.data, bad.len, &nsigs);
		UNIT_CHECK("verify_modified_body_fails", good == 0 && nsigs == 2,
		    "good=%d", good);
		buf_free(&bad);
	}
	/* An added From breaks it too (From is over-signed). */
	{
		struct buf two;

		buf_init(&two, 65536);
		buf_puts(&two, "From: evil@bad.test\r\n");
		buf_puts(&two, msg.data);
		good = verify(out.data, two.data, two.len, &nsigs);
		UNIT_CHECK("verify_added_from_fails", good == 0, "good=%d", good);
		buf_free(&two);
	}

	/* Body from a file range. */
	snprintf(path, sizeof(path), "%s/body", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (write(fd, "JUNK", 4) != 4 ||
	    write(fd, BODY, strlen(BODY)) != (ssize_t)strlen(BODY))
		fd = -1;
	in.body = NULL;
	in.body_len = 0;
	in.fd = fd;
	in.off = 4;
	in.len = (off_t)strlen(BODY);
	buf_reset(&out);
	n = dkim_sign_message(s, "example.test", "j2", &in, &out, &r);
	good = verify(out.data, msg.data, msg.len, &nsigs);
	UNIT_CHECK("sign_body_from_file", n == 2 && good == 2, "n=%d good=%d",
	    n, good);
	if (fd >= 0)
		close(fd);

	/* No key for the domain: nothing added, no error. */
	in.fd = -1;
	in.body = BODY;
	in.body_len = strlen(BODY);
	buf_reset(&out);
	n = dkim_sign_message(s, "other.test", "j3", &in, &out, &r);
	UNIT_CHECK("no_key_no_signature", n == 0 && out.len == 0, "n=%d", n);
	UNIT_CHECK("has_key", dkim_signer_has_key(s, "example.test") &&
	    !dkim_signer_has_key(s, "other.test") &&
	    !dkim_signer_has_key(s, "../etc"), "has_key");
	n = dkim_sign_message(s, "../dkim", "j4", &in, &out, &r);
	UNIT_CHECK("bad_domain_not_a_path", n == 0, "n=%d", n);

	/* A broken key file: TEMP, never unsigned. */
	sh("mkdir -p %s/dkim/broken.test && echo garbage >%s/dkim/broken.test/sel1.key",
	    dir, dir);
	buf_reset(&out);
	memset(&r, 0, sizeof(r));
	n = dkim_sign_message(s, "broken.test", "j5", &in, &out, &r);
	UNIT_CHECK("broken_key_is_temp", n == -1 && r.cls == REPLY_TEMP &&
	    out.len == 0, "n=%d cls=%d", n, r.cls);

	/* Key rotation: a new file is read at the next message. */
	sh("cp %s/dkim/example.test/sel1.key %s/dkim/broken.test/sel1.key.new && "
	    "mv %s/dkim/broken.test/sel1.key.new %s/dkim/broken.test/sel1.key",
	    dir, dir, dir, dir);
	buf_reset(&out);
	n = dkim_sign_message(s, "broken.test", "j6", &in, &out, &r);
	UNIT_CHECK("rotated_key_picked_up", n == 1, "n=%d", n);

	buf_free(&out);
	buf_free(&msg);
	dkim_signer_free(&s);
	UNIT_CHECK("signer_free_nulls", s == NULL, "not NULL");
}

/* Messages that exercise relaxed/relaxed; each must verify twice. */
static void
test_canonical_forms(void)
{
	static const struct {
		const char *name, *hdr, *body;
	} t[] = {
		{ "canon_folded_header",
		  "From: Demo\r\n <demo@example.test>\r\n"
		  "Subject:   many\t\t spaces   \r\n\tand a fold  \r\n\r\n",
		  "x\r\n" },
		{ "canon_space_before_colon",
		  "From : demo@example.test\r\nSUBJECT:s\r\n\r\n", "x\r\n" },
		{ "canon_body_whitespace",
		  "From: demo@example.test\r\n\r\n",
		  "  lead\t and  inner \t\r\n\t\r\ntrail   \r\n" },
		{ "canon_body_trailing_empty_lines",
		  "From: demo@example.test\r\n\r\n",
		  "text\r\n\r\n \r\n\t\r\n\r\n" },
		{ "canon_empty_body",
		  "From: demo@example.test\r\n\r\n", "" },
		{ "canon_body_only_empty_lines",
		  "From: demo@example.test\r\n\r\n", "\r\n\r\n\r\n" },
		{ "canon_repeated_fields",
		  "To: a@far.test\r\nFrom: demo@example.test\r\n"
		  "To: b@far.test\r\nReceived: x\r\nto: c@far.test\r\n\r\n",
		  "x\r\n" },
	};
	struct dkim_signer *s;
	struct dkim_input in;
	struct buf out, msg;
	struct reply r;
	char err[256], keys[300];
	size_t i;
	int n, nsigs, good;

	snprintf(keys, sizeof(keys), "%s/dkim", dir);
	if ((s = dkim_signer_new(keys, "sel1", "ed1", err, sizeof(err))) == NULL)
		return;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_init(&out, 65536);
		buf_init(&msg, 65536);
		buf_puts(&msg, t[i].hdr);
		buf_puts(&msg, t[i].body);
		memset(&in, 0, sizeof(in));
		in.hdr = t[i].hdr;
		in.hdr_len = strlen(t[i].hdr);
		in.body = t[i].body;
		in.body_len = strlen(t[i].body);
		in.fd = -1;
		n = dkim_sign_message(s, "example.test", "jc", &in, &out, &r);
		good = n == 2 ? verify(out.data, msg.data, msg.len, &nsigs) : 0;
		UNIT_CHECK(t[i].name, n == 2 && good == 2, "n=%d good=%d\n%s",
		    n, good, buf_cstr(&out));
		buf_free(&out);
		buf_free(&msg);
	}
	/* A large body: runs longer than the hash buffer, whitespace at
	 * every kind of place, from memory and from a file read in
	 * chunks (runs cross the chunk boundaries). */
	{
		struct buf big;
		char path[300];
		int fd, k;

		buf_init(&big, 4 * 1024 * 1024);
		for (k = 0; k < 300; k++) {
			int w;

			for (w = 0; w < (k % 7) * 1000 + 5; w++)
				buf_putc(&big, (char)('a' + (k + w) % 26));
			buf_puts(&big, k % 3 ? "  \t x\t \r\n" : "\r\n\r\n");
		}
		buf_puts(&big, "end\r\n \r\n\r\n");
		buf_init(&out, 65536);
		buf_init(&msg, 4 * 1024 * 1024);
		buf_puts(&msg, "From: demo@example.test\r\n\r\n");
		buf_append(&msg, big.data, big.len);
		memset(&in, 0, sizeof(in));
		in.hdr = "From: demo@example.test\r\n\r\n";
		in.hdr_len = strlen(in.hdr);
		in.body = big.data;
		in.body_len = big.len;
		in.fd = -1;
		n = dkim_sign_message(s, "example.test", "jb", &in, &out, &r);
		good = n == 2 ? verify(out.data, msg.data, msg.len, &nsigs) : 0;
		UNIT_CHECK("canon_large_body_memory", n == 2 && good == 2,
		    "n=%d good=%d", n, good);
		snprintf(path, sizeof(path), "%s/bigbody", dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, big.data, big.len) != (ssize_t)big.len)
			printf("FAIL setup: %s\n", path);
		buf_reset(&out);
		in.body = NULL;
		in.body_len = 0;
		in.fd = fd;
		in.off = 0;
		in.len = (off_t)big.len;
		n = dkim_sign_message(s, "example.test", "jb", &in, &out, &r);
		good = n == 2 ? verify(out.data, msg.data, msg.len, &nsigs) : 0;
		UNIT_CHECK("canon_large_body_file", n == 2 && good == 2,
		    "n=%d good=%d", n, good);
		if (fd >= 0)
			close(fd);
		buf_free(&big);
		buf_free(&out);
		buf_free(&msg);
	}

	/* A body without a last CRLF gets one (RFC 6376 3.4.4; dkimpy
	 * agrees, libopendkim 2.11 does not, so the hash is checked). */
	buf_init(&out, 65536);
	memset(&in, 0, sizeof(in));
	in.hdr = "From: demo@example.test\r\n\r\n";
	in.hdr_len = strlen(in.hdr);
	in.body = "no line end";
	in.body_len = strlen(in.body);
	in.fd = -1;
	n = dkim_sign_message(s, "example.test", "jc", &in, &out, &r);
	UNIT_CHECK("canon_body_no_final_crlf", n == 2 && strstr(buf_cstr(&out),
	    "bh=+a7AZaZF705jqPhlbvXPt+TgHgRb+WZ43d6wHB367CM=;") != NULL,
	    "%s", buf_cstr(&out));
	buf_free(&out);
	dkim_signer_free(&s);
}

int
main(void)
{
	char err[64];

	log_init("test_smtp_dkim", LOG_LVL_ERR);
	snprintf(dir, sizeof(dir), "/tmp/test_smtp_dkim.XXXXXX");
	if (mkdtemp(dir) == NULL || make_keys() != 0) {
		printf("FAIL setup: cannot make keys with openssl\n");
		return 1;
	}
	UNIT_CHECK("bad_selector_refused",
	    dkim_signer_new(dir, "../x", NULL, err, sizeof(err)) == NULL, "made");
	test_sign_verify();
	test_canonical_forms();
	sh("rm -rf %s", dir);
	return unit_done();
}
