/*
 * fuzz_smtp_parse.c - libFuzzer target for edgemail-submit's protocol
 * parsers (smtp-out/parse.c): command split, MAIL/RCPT arguments,
 * base64, From: address lists and the DATA reader.
 *
 * Invariants checked besides memory safety:
 *   - the DATA reader never writes more than n + 2 bytes per call, gives
 *     the same result whatever the chunking (whole input vs. byte by
 *     byte), ends only right after CRLF "." CRLF, and never sees a bare
 *     CR or LF without saying so;
 *   - base64 decode(encode(x)) == x;
 *   - a refused MAIL/RCPT always carries a 5xx reply with a text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp-out/parse.c"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
count_addr(void *arg, const char *a, size_t len)
{
	size_t *n = arg;

	if (len == 0 || memchr(a, '\0', len) != NULL)
		abort();
	(*n)++;
	return 0;
}

static void
data_reader_check(const char *in, size_t n)
{
	struct data_reader a, b;
	char *out1 = malloc(n + 2), *out2 = malloc(n + 2);
	size_t used1, len1, len2 = 0, got, i, used2 = 0;
	int saw_bare = 0;

	data_reader_init(&a);
	used1 = data_reader_feed(&a, in, n, out1, &len1);
	if (len1 > n + 2 || used1 > n)
		abort();
	data_reader_init(&b);
	for (i = 0; i < n && !b.done; i++) {
		used2 += data_reader_feed(&b, in + i, 1, out2 + len2, &got);
		if (got > 3)
			abort();
		len2 += got;
	}
	if (used1 != used2 || len1 != len2 || a.done != b.done ||
	    a.bad_eol != b.bad_eol || memcmp(out1, out2, len1) != 0)
		abort();
	if (a.done) {
		/* The end is CRLF "." CRLF (the first CRLF may be DATA's). */
		if (used1 < 3 || memcmp(in + used1 - 3, ".\r\n", 3) != 0 ||
		    (used1 > 3 && memcmp(in + used1 - 5, "\r\n", 2) != 0))
			abort();
	}
	/* Every bare CR or LF before the end must be noticed. */
	for (i = 0; i < used1; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			saw_bare = 1;
		if (in[i] == '\r' && (i + 1 >= used1 || in[i + 1] != '\n') &&
		    !(i + 1 == used1))
			saw_bare = 1;
	}
	if (saw_bare && !a.bad_eol)
		abort();
	free(out1);
	free(out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	struct smtp_line l;
	struct smtp_mail_args m;
	struct addr a;
	struct reply r;
	unsigned char *dec;
	char *enc;
	long n;
	size_t cnt = 0;

	data_reader_check((const char *)data, size);

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)smtp_split(s, &l);
	if (strlen(s) < SUBMIT_CMD_MAX) {
		memset(&r, 0, sizeof(r));
		if (smtp_parse_mail(s, size & 1, 1000, &m, &r) != 0 &&
		    (r.code < 500 || r.code > 599 || r.text[0] == '\0'))
			abort();
		memset(&r, 0, sizeof(r));
		if (smtp_parse_rcpt(s, size & 2, &a, &r) != 0 &&
		    (r.code < 500 || r.code > 599 || r.text[0] == '\0'))
			abort();
	}
	(void)hdr_addresses(s, size, count_addr, &cnt);

	dec = malloc(size / 4 * 3 + 1);
	if (dec != NULL && (n = b64_decode(s, size, dec)) >= 0) {
		enc = malloc(((size_t)n + 2) / 3 * 4 + 1);
		unsigned char *back = malloc((size_t)n + 1);

		if (enc != NULL && back != NULL) {
			b64_encode(dec, (size_t)n, enc);
			if (b64_decode(enc, strlen(enc), back) != n ||
			    memcmp(back, dec, (size_t)n) != 0)
				abort();
		}
		free(enc);
		free(back);
	}
	free(dec);
	free(s);
	return 0;
}
