/*
 * fuzz_authres.c - libFuzzer target for the authentication parsers:
 * Authentication-Results, Received-SPF, DMARC records (lib/authres.c) and
 * DNS answers (lib/dns.c), which all read bytes that come from outside.
 *
 * The first input byte picks the parser; the rest is the input.
 * Invariants: every string the parsers fill is NUL-terminated inside its
 * field; an A-R that parses, written back with authres_write, parses
 * again to the same methods and results (the writer never produces what
 * the parser refuses, and never a line break outside folding); a DNS
 * answer's records lie inside the allocation and have their stated
 * lengths.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/authres.h"
#include "lib/buf.h"
#include "lib/dns.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
terminated(const char *s, size_t n)
{
	if (memchr(s, '\0', n) == NULL)
		abort();
}

static void
fuzz_ar(const char *v, size_t len)
{
	struct authres *ar, *back;
	struct buf b;
	const char *p;
	size_t i, j;

	ar = calloc(2, sizeof(*ar));
	if (ar == NULL)
		return;
	back = &ar[1];
	if (authres_parse(v, len, ar) != 0) {
		free(ar);
		return;
	}
	terminated(ar->authserv_id, sizeof(ar->authserv_id));
	if (ar->nres > AUTHRES_RESULTS_MAX)
		abort();
	for (i = 0; i < ar->nres; i++) {
		terminated(ar->res[i].method, sizeof(ar->res[i].method));
		terminated(ar->res[i].result, sizeof(ar->res[i].result));
		terminated(ar->res[i].comment, sizeof(ar->res[i].comment));
		if (ar->res[i].nprops > AUTHRES_PROPS_MAX)
			abort();
		for (j = 0; j < ar->res[i].nprops; j++)
			terminated(ar->res[i].props[j].value,
			    sizeof(ar->res[i].props[j].value));
	}
	buf_init(&b, 1 << 20);
	if (authres_write(&b, ar) != 0)
		abort();
	/* No bare CR or LF, and every CRLF is followed by a tab (folding)
	 * except the final one. */
	for (i = 0; i < b.len; i++) {
		if (b.data[i] == '\n' && (i == 0 || b.data[i - 1] != '\r'))
			abort();
		if (b.data[i] == '\r' && (i + 1 >= b.len || b.data[i + 1] != '\n'))
			abort();
		if (b.data[i] == '\n' && i + 1 < b.len && b.data[i + 1] != '\t')
			abort();
	}
	p = strchr(b.data, ':') + 1;
	if (authres_parse(p, b.len - (size_t)(p - b.data) - 2, back) != 0)
		abort();
	if (back->nres != ar->nres || strcmp(back->authserv_id,
	    ar->authserv_id) != 0)
		abort();
	for (i = 0; i < ar->nres; i++)
		if (strcmp(back->res[i].method, ar->res[i].method) != 0 ||
		    strcmp(back->res[i].result, ar->res[i].result) != 0 ||
		    back->res[i].nprops != ar->res[i].nprops)
			abort();
	buf_free(&b);
	free(ar);
}

static void
fuzz_spf(const char *v, size_t len)
{
	struct received_spf s;

	if (received_spf_parse(v, len, &s) != 0)
		return;
	if (!spf_result_valid(s.result))
		abort();
	terminated(s.client_ip, sizeof(s.client_ip));
	terminated(s.envelope_from, sizeof(s.envelope_from));
	terminated(s.helo, sizeof(s.helo));
}

static void
fuzz_dmarc(const char *v, size_t len)
{
	struct dmarc_record r;
	int rc = dmarc_record_parse(v, len, &r);

	if (rc == 1 && (r.p == DMARC_P_UNSET || r.pct < 0 || r.pct > 100 ||
	    (r.adkim != 'r' && r.adkim != 's') ||
	    (r.aspf != 'r' && r.aspf != 's')))
		abort();
}

static void
fuzz_dns(const unsigned char *p, size_t len)
{
	struct dns_txt t;
	int tc;
	size_t i;

	if (dns_parse_answer(p, len, len >= 2 ? (uint16_t)(p[0] << 8 | p[1]) :
	    0, "_dmarc.example.test", &t, &tc) == DNS_FOUND) {
		if (t.n == 0 || t.n > DNS_TXT_MAX)
			abort();
		for (i = 0; i < t.n; i++)
			if (strlen(t.rec[i]) != t.len[i])
				abort();
	}
	dns_txt_free(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v;

	if (size < 1)
		return 0;
	/* the parsers take (pointer, length): no NUL needed, but a copy
	 * lets ASan see reads past the end */
	if ((v = malloc(size - 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(v, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		fuzz_ar(v, size - 1);
		break;
	case 1:
		fuzz_spf(v, size - 1);
		break;
	case 2:
		fuzz_dmarc(v, size - 1);
		break;
	case 3:
		fuzz_dns((const unsigned char *)v, size - 1);
		break;
	}
	free(v);
	return 0;
}
