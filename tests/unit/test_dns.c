/*
 * test_dns.c - DNS wire format (lib/dns.c) and the Public Suffix List
 * lookup (lib/psl.c): query encoding, answers that must be accepted,
 * answers that must be DNS_TEMP (never "no record"), organizational
 * domains with wildcard and exception rules, punycode.
 */
#include <stdio.h>
#include <string.h>

#include "lib/dns.h"
#include "lib/psl.h"
#include "tests/unit/unit.h"

/* A reply to the query for name with id 0x1234, answer RRs appended. */
static size_t
reply(unsigned char *out, const char *name, unsigned flags2, unsigned rcode,
    const unsigned char *answers, size_t alen, unsigned ancount)
{
	int n = dns_build_query(name, 0x1234, out, 512);
	size_t len;

	if (n < 0)
		return 0;
	len = (size_t)n - 11;		/* drop the OPT record */
	out[2] = (unsigned char)(0x81 | flags2);	/* QR, RD (+TC) */
	out[3] = (unsigned char)(0x80 | rcode);	/* RA */
	out[6] = 0;
	out[7] = (unsigned char)ancount;
	out[10] = out[11] = 0;
	if (alen > 0)
		memcpy(out + len, answers, alen);
	return len + alen;
}

/* A TXT RR owned by a pointer to the question name, strings given. */
static size_t
txt_rr(unsigned char *out, const char *const *strs, size_t nstr)
{
	size_t i = 0, k, rdlen = 0;

	out[i++] = 0xc0;
	out[i++] = 12;
	out[i++] = 0;
	out[i++] = 16;		/* TXT */
	out[i++] = 0;
	out[i++] = 1;		/* IN */
	memset(out + i, 0, 4);
	i += 4;
	for (k = 0; k < nstr; k++)
		rdlen += 1 + strlen(strs[k]);
	out[i++] = (unsigned char)(rdlen >> 8);
	out[i++] = (unsigned char)rdlen;
	for (k = 0; k < nstr; k++) {
		out[i++] = (unsigned char)strlen(strs[k]);
		memcpy(out + i, strs[k], strlen(strs[k]));
		i += strlen(strs[k]);
	}
	return i;
}

static void
test_query(void)
{
	unsigned char q[512];
	int n;

	n = dns_build_query("_dmarc.example.test", 0xbeef, q, sizeof(q));
	UNIT_CHECK("dns_query_layout", n == 12 + 21 + 4 + 11 && q[0] == 0xbe &&
	    q[1] == 0xef && q[2] == 0x01 && q[5] == 1 && q[11] == 1 &&
	    q[12] == 6 && memcmp(q + 13, "_dmarc", 6) == 0 && q[19] == 7,
	    "n=%d", n);
	n = dns_build_query("a.test", 1, q, sizeof(q));
	UNIT_CHECK("dns_query_trailing_dot", n > 0 && dns_build_query("a.test.",
	    1, q, sizeof(q)) == n, "different length");
	UNIT_CHECK("dns_query_refuses_empty_label",
	    dns_build_query("a..test", 1, q, sizeof(q)) == -1, "accepted");
	UNIT_CHECK("dns_query_refuses_long_label", dns_build_query(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.t",
	    1, q, sizeof(q)) == -1, "accepted");
	UNIT_CHECK("dns_query_refuses_empty", dns_build_query("", 1, q,
	    sizeof(q)) == -1, "accepted");
}

static void
test_answers(void)
{
	static const char *const one[] = { "v=DMARC1; ", "p=reject" };
	static const char *const nul[] = { "a\0b" };
	unsigned char msg[1024], rr[600];
	struct dns_txt t;
	size_t len, rl;
	int tc;
	enum dns_status st;

	rl = txt_rr(rr, one, 2);
	len = reply(msg, "_dmarc.ex.test", 0, 0, rr, rl, 1);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_txt_strings_joined", st == DNS_FOUND && t.n == 1 &&
	    strcmp(t.rec[0], "v=DMARC1; p=reject") == 0 && t.len[0] == 18,
	    "st=%d n=%zu", st, t.n);
	dns_txt_free(&t);

	st = dns_parse_answer(msg, len, 0x1234, "_DMARC.EX.TEST.", &t, &tc);
	UNIT_CHECK("dns_name_case_insensitive", st == DNS_FOUND, "st=%d", st);
	dns_txt_free(&t);

	st = dns_parse_answer(msg, len, 0x1235, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_wrong_id_is_temp", st == DNS_TEMP, "st=%d", st);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.other.test", &t, &tc);
	UNIT_CHECK("dns_wrong_question_is_temp", st == DNS_TEMP, "st=%d", st);
	st = dns_parse_answer(msg, len - 3, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_truncated_rr_is_temp", st == DNS_TEMP, "st=%d", st);

	len = reply(msg, "_dmarc.ex.test", 0, 3, NULL, 0, 0);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_nxdomain_is_notfound", st == DNS_NOTFOUND && t.nxdomain,
	    "st=%d", st);
	len = reply(msg, "_dmarc.ex.test", 0, 0, NULL, 0, 0);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_nodata_is_notfound", st == DNS_NOTFOUND && !t.nxdomain,
	    "st=%d", st);
	len = reply(msg, "_dmarc.ex.test", 0, 2, NULL, 0, 0);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_servfail_is_temp", st == DNS_TEMP, "st=%d", st);
	len = reply(msg, "_dmarc.ex.test", 0, 5, NULL, 0, 0);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_refused_is_temp", st == DNS_TEMP, "st=%d", st);
	len = reply(msg, "_dmarc.ex.test", 0x02, 0, NULL, 0, 0);
	st = dns_parse_answer(msg, len, 0x1234, "_dmarc.ex.test", &t, &tc);
	UNIT_CHECK("dns_tc_asks_for_tcp", st == DNS_TEMP && tc == 1,
	    "st=%d tc=%d", st, tc);

	rl = txt_rr(rr, nul, 1);
	rr[12] = 3;			/* one string: "a\0b" */
	rr[13] = 'a';
	rr[14] = 0;
	rr[15] = 'b';
	rr[11] = 4;
	len = reply(msg, "x.test", 0, 0, rr, 16, 1);
	st = dns_parse_answer(msg, len, 0x1234, "x.test", &t, &tc);
	UNIT_CHECK("dns_record_with_nul_skipped", st == DNS_NOTFOUND,
	    "st=%d", st);
	dns_txt_free(&t);

	/* a compression pointer that points forward (a loop) */
	rl = txt_rr(rr, one, 2);
	len = reply(msg, "x.test", 0, 0, rr, rl, 1);
	msg[len - rl + 1] = (unsigned char)(len - rl);	/* points at itself */
	st = dns_parse_answer(msg, len, 0x1234, "x.test", &t, &tc);
	UNIT_CHECK("dns_pointer_loop_is_temp", st == DNS_TEMP, "st=%d", st);
}

static void
test_resolver_none(void)
{
	char err[128];
	struct dns_resolver *r = dns_new("none", 1000, err, sizeof(err));
	struct dns_txt t;

	UNIT_CHECK("dns_none_finds_nothing", r != NULL &&
	    dns_txt(r, "_dmarc.example.com", &t) == DNS_NOTFOUND, "%s", err);
	dns_txt_free(&t);
	dns_free(&r);
	UNIT_CHECK("dns_bad_server_refused",
	    dns_new("not-an-ip:53", 1000, err, sizeof(err)) == NULL, "accepted");
	r = dns_new("[::1]:5353", 1000, err, sizeof(err));
	UNIT_CHECK("dns_v6_server", r != NULL &&
	    strcmp(dns_describe(r), "[::1]:5353") == 0, "%s",
	    r ? dns_describe(r) : err);
	dns_free(&r);
}

static void
test_psl(void)
{
	static const struct {
		const char *name, *in, *out;
	} cases[] = {
		{ "psl_plain", "mail.example.com", "example.com" },
		{ "psl_itself", "example.com", "example.com" },
		{ "psl_suffix_is_own", "com", "com" },
		{ "psl_two_level_suffix", "a.b.google.co.uk", "google.co.uk" },
		{ "psl_wildcard", "a.b.ck", "a.b.ck" },
		{ "psl_exception", "x.www.ck", "www.ck" },
		{ "psl_wildcard_kawasaki", "x.y.kawasaki.jp", "x.y.kawasaki.jp" },
		{ "psl_exception_city", "a.city.kawasaki.jp", "city.kawasaki.jp" },
		{ "psl_private_section", "me.blogspot.com", "me.blogspot.com" },
		{ "psl_unlisted_tld", "a.sender.test", "sender.test" },
		{ "psl_case_and_dot", "MAIL.Example.COM.", "example.com" },
		{ "psl_idn_alabel", "a.b.xn--fiqs8s", "b.xn--fiqs8s" },
	};
	char err[256], out[300], pc[64];
	struct psl *p;
	size_t i;

	p = psl_load("/usr/share/publicsuffix/public_suffix_list.dat", err,
	    sizeof(err));
	UNIT_CHECK("psl_loads", p != NULL && psl_count(p) > 5000, "%s", err);
	if (p == NULL)
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = psl_org_domain(p, cases[i].in, out, sizeof(out));

		UNIT_CHECK(cases[i].name, rc == 0 && strcmp(out, cases[i].out) ==
		    0, "%s -> %s", cases[i].in, rc == 0 ? out : "(error)");
	}
	UNIT_CHECK("psl_refuses_empty_label",
	    psl_org_domain(p, "a..example.com", out, sizeof(out)) == -1,
	    "accepted");
	psl_free(&p);
	UNIT_CHECK("psl_punycode_buecher", psl_punycode_label("b\xc3\xbc"
	    "cher", 7, pc, sizeof(pc)) == 0 && strcmp(pc, "xn--bcher-kva") == 0,
	    "%s", pc);
	UNIT_CHECK("psl_punycode_bad_utf8", psl_punycode_label("\xc3", 1, pc,
	    sizeof(pc)) == -1, "accepted");
	UNIT_CHECK("psl_missing_file", psl_load("/nonexistent", err,
	    sizeof(err)) == NULL, "loaded");
}

int
main(void)
{
	test_query();
	test_answers();
	test_resolver_none();
	test_psl();
	return unit_done();
}
