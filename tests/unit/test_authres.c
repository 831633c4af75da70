/*
 * test_authres.c - the Authentication-Results parser and writer, the
 * Received-SPF parser and the DMARC record parser (lib/authres.c).
 *
 * Tables of real-world and hostile values: what each parser must accept,
 * what it must extract, what it must refuse.  The writer's output is
 * compared byte for byte and parsed back.
 */
#include <stdio.h>
#include <string.h>

#include "lib/authres.h"
#include "lib/buf.h"
#include "tests/unit/unit.h"

struct ar_case {
	const char *name;
	const char *value;
	int	 ok;
	const char *id;
	size_t	 nres;
	const char *method;	/* a result to look at */
	const char *result;
	const char *ptype, *prop, *pvalue;
	const char *comment;
};

static const struct ar_case ar_cases[] = {
	{ "ar_cloudflare_edge",
	  " mx.cloudflare.net;\r\n\tdkim=pass header.d=gmail.com header.s=20230601"
	  " header.b=Ab/cD+e=;\r\n\tdmarc=pass header.from=gmail.com"
	  " policy.dmarc=none;\r\n\tspf=pass (mx.cloudflare.net: domain of"
	  " a@gmail.com designates 209.85.1.2 as permitted sender)"
	  " smtp.mailfrom=a@gmail.com;\r\n\tarc=none smtp.remote-ip=209.85.1.2",
	  1, "mx.cloudflare.net", 4, "spf", "pass", "smtp", "mailfrom",
	  "a@gmail.com", "mx.cloudflare.net: domain of a@gmail.com designates "
	  "209.85.1.2 as permitted sender" },
	{ "ar_header_b_base64_unquoted", "mx.example; dkim=pass header.b=Ab/cD+e=",
	  1, "mx.example", 1, "dkim", "pass", "header", "b", "Ab/cD+e=", "" },
	{ "ar_none", "mx.example.test; none", 1, "mx.example.test", 0,
	  NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_none_with_comment", " example.org (comment) ; none ",
	  1, "example.org", 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_version", "example.org 1; spf=pass smtp.mailfrom=example.net",
	  1, "example.org", 1, "spf", "pass", "smtp", "mailfrom",
	  "example.net", "" },
	{ "ar_rfc8601_example_multi",
	  "example.com;\r\n dkim=pass (good signature) header.d=mail-router.example.net;"
	  "\r\n dkim=fail (bad signature) header.d=newyork.example.com",
	  1, "example.com", 2, "dkim", "pass", "header", "d",
	  "mail-router.example.net", "good signature" },
	{ "ar_method_version", "ex.org; dkim/1=pass header.i=@ex.net",
	  1, "ex.org", 1, "dkim", "pass", "header", "i", "@ex.net", "" },
	{ "ar_quoted_values",
	  "ex.org; auth=pass smtp.auth=\"sender name\" reason=\"a \\\"q\\\" b\"",
	  1, "ex.org", 1, "auth", "pass", "smtp", "auth", "sender name", "" },
	{ "ar_uppercase_method_result", "ex.org; DKIM=PASS Header.D=Ex.Net",
	  1, "ex.org", 1, "dkim", "pass", "header", "d", "Ex.Net", "" },
	{ "ar_microsoft_action_skipped",
	  "spf.protection.outlook.com; spf=pass (sender IP is 1.2.3.4) "
	  "smtp.mailfrom=ex.com; dkim=none (message not signed) header.d=none;"
	  "dmarc=none action=none header.from=ex.com;compauth=pass reason=100",
	  1, "spf.protection.outlook.com", 4, "dmarc", "none", "header", "from",
	  "ex.com", "" },
	{ "ar_nested_comment", "ex.org; spf=fail (a (nested) one) smtp.mailfrom=x",
	  1, "ex.org", 1, "spf", "fail", "smtp", "mailfrom", "x",
	  "a (nested) one" },
	{ "ar_trailing_semicolon", "ex.org; spf=pass smtp.mailfrom=x;",
	  1, "ex.org", 1, "spf", "pass", NULL, NULL, NULL, NULL },
	{ "ar_refuse_empty", "", 0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_id_only", "ex.org", 0, NULL, 0, NULL, NULL, NULL, NULL,
	  NULL, NULL },
	{ "ar_refuse_id_semicolon_only", "ex.org;", 0, NULL, 0, NULL, NULL,
	  NULL, NULL, NULL, NULL },
	{ "ar_refuse_unclosed_comment", "ex.org; spf=pass (oops smtp.mailfrom=x",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_unclosed_quote", "ex.org; spf=pass smtp.mailfrom=\"x",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_missing_result", "ex.org; spf= smtp.mailfrom=x",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_missing_equals", "ex.org; spf pass",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_empty_prop_value", "ex.org; spf=pass smtp.mailfrom=",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_deep_comment",
	  "ex.org; spf=pass (((((((((((deep)))))))))))",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "ar_refuse_none_then_result", "ex.org; none; spf=pass",
	  0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL },
};

static void
test_ar_table(void)
{
	const struct ar_case *c;
	struct authres ar;
	const struct authres_result *r;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(ar_cases) / sizeof(ar_cases[0]); i++) {
		c = &ar_cases[i];
		rc = authres_parse(c->value, strlen(c->value), &ar);
		if (!c->ok) {
			UNIT_CHECK(c->name, rc == -1, "parsed, want refusal");
			continue;
		}
		if (rc != 0) {
			UNIT_CHECK(c->name, 0, "refused");
			continue;
		}
		if (strcmp(ar.authserv_id, c->id) != 0) {
			UNIT_CHECK(c->name, 0, "id %s", ar.authserv_id);
			continue;
		}
		if (ar.nres != c->nres) {
			UNIT_CHECK(c->name, 0, "nres %zu want %zu", ar.nres,
			    c->nres);
			continue;
		}
		if (c->method == NULL) {
			UNIT_CHECK(c->name, ar.none == (c->nres == 0) ||
			    c->nres > 0, "none flag");
			continue;
		}
		r = authres_find(&ar, c->method);
		if (r == NULL || strcmp(r->result, c->result) != 0) {
			UNIT_CHECK(c->name, 0, "%s result %s", c->method,
			    r ? r->result : "(missing)");
			continue;
		}
		if (c->ptype != NULL) {
			const char *v = authres_prop(r, c->ptype, c->prop);

			if (v == NULL || strcmp(v, c->pvalue) != 0) {
				UNIT_CHECK(c->name, 0, "%s.%s = %s", c->ptype,
				    c->prop, v ? v : "(missing)");
				continue;
			}
		}
		UNIT_CHECK(c->name, c->comment == NULL ||
		    strcmp(r->comment, c->comment) == 0, "comment [%s]",
		    r->comment);
	}
}

static void
test_ar_id(void)
{
	char id[64];

	UNIT_CHECK("ar_id_plain", authres_id(" mx.example.test; dkim=pass", 26,
	    id, sizeof(id)) == 0 && strcmp(id, "mx.example.test") == 0,
	    "got %s", id);
	UNIT_CHECK("ar_id_comment_first", authres_id("(x) mx.a.b ;none", 16, id,
	    sizeof(id)) == 0 && strcmp(id, "mx.a.b") == 0, "got %s", id);
	UNIT_CHECK("ar_id_too_long", authres_id("aaaaaaaaaa;", 11, id, 5) == -1,
	    "accepted");
}

static void
test_ar_writer(void)
{
	struct authres ar, back;
	struct authres_result *r;
	struct buf b;
	const char *want =
	    "Authentication-Results: mx.example.test;\r\n"
	    "\tdkim=pass header.d=sender.test header.s=sel header.a=rsa-sha256"
	    " header.b=AbCd/+9=;\r\n"
	    "\tspf=none (not from the edge)"
	    " smtp.mailfrom=\"\\\"odd user\\\"@sender.test\";\r\n"
	    "\tdmarc=fail (p=reject dis=reject [pct 100]) header.from=sender.test;\r\n"
	    "\tarc=pass (edge) smtp.remote-ip=192.0.2.1\r\n";
	const char *got;

	memset(&ar, 0, sizeof(ar));
	snprintf(ar.authserv_id, sizeof(ar.authserv_id), "mx.example.test");
	r = authres_add(&ar, "dkim", "pass", NULL);
	authres_add_prop(r, "header", "d", "sender.test");
	authres_add_prop(r, "header", "s", "sel");
	authres_add_prop(r, "header", "a", "rsa-sha256");
	authres_add_prop(r, "header", "b", "AbCd/+9=");
	r = authres_add(&ar, "spf", "none", "not from the edge");
	authres_add_prop(r, "smtp", "mailfrom", "\"odd user\"@sender.test");
	r = authres_add(&ar, "dmarc", "fail", "p=reject dis=reject (pct 100)");
	authres_add_prop(r, "header", "from", "sender.test");
	r = authres_add(&ar, "arc", "pass", "edge");
	authres_add_prop(r, "smtp", "remote-ip", "192.0.2.1");
	buf_init(&b, 4096);
	UNIT_CHECK("ar_write", authres_write(&b, &ar) == 0, "write failed");
	got = buf_cstr(&b);
	UNIT_CHECK("ar_write_exact", strcmp(got, want) == 0, "got\n%s", got);

	/* parse back what was written (after the field name) */
	got = strchr(got, ':') + 1;
	UNIT_CHECK("ar_write_parses_back",
	    authres_parse(got, strlen(got) - 2, &back) == 0 && back.nres == 4 &&
	    strcmp(authres_prop(authres_find(&back, "spf"), "smtp", "mailfrom"),
	    "\"odd user\"@sender.test") == 0 &&
	    strcmp(authres_find(&back, "dmarc")->comment,
	    "p=reject dis=reject [pct 100]") == 0, "round trip");
	buf_free(&b);

	memset(&ar, 0, sizeof(ar));
	snprintf(ar.authserv_id, sizeof(ar.authserv_id), "mx.example.test");
	buf_init(&b, 4096);
	authres_write(&b, &ar);
	UNIT_CHECK("ar_write_none", strcmp(buf_cstr(&b),
	    "Authentication-Results: mx.example.test; none\r\n") == 0, "got %s",
	    buf_cstr(&b));
	buf_free(&b);

	/* hostile text in values and comments cannot break the field */
	memset(&ar, 0, sizeof(ar));
	snprintf(ar.authserv_id, sizeof(ar.authserv_id), "mx.example.test");
	r = authres_add(&ar, "dkim", "fail", "a)\r\nX-Evil: 1 (b\\");
	authres_add_prop(r, "header", "d", "x;\r\nX-Evil: 2\"");
	buf_init(&b, 4096);
	authres_write(&b, &ar);
	got = buf_cstr(&b);
	UNIT_CHECK("ar_write_no_injection", strstr(got, "\r\nX-Evil") == NULL &&
	    authres_parse(strchr(got, ':') + 1, strlen(strchr(got, ':') + 1) - 2,
	    &back) == 0 && back.nres == 1, "got %s", got);
	buf_free(&b);

	memset(&ar, 0, sizeof(ar));
	for (int i = 0; i < AUTHRES_RESULTS_MAX; i++)
		authres_add(&ar, "dkim", "pass", NULL);
	UNIT_CHECK("ar_add_full", authres_add(&ar, "dkim", "pass", NULL) == NULL,
	    "added past the limit");
}

struct spf_case {
	const char *name;
	const char *value;
	int	 ok;
	const char *result, *ip, *from, *helo;
};

static const struct spf_case spf_cases[] = {
	{ "spf_cloudflare",
	  " pass (mx.cloudflare.net: domain of a@gmail.com designates 209.85.1.2"
	  " as permitted sender)\r\n\treceiver=mx.cloudflare.net;"
	  " client-ip=209.85.1.2; envelope-from=\"a@gmail.com\";"
	  " helo=mail-a.google.com;",
	  1, "pass", "209.85.1.2", "a@gmail.com", "mail-a.google.com" },
	{ "spf_rfc7208_example",
	  "pass (mybox.example.org: domain of myname@example.com designates"
	  " 192.0.2.1 as permitted sender) receiver=mybox.example.org;"
	  " client-ip=192.0.2.1; envelope-from=\"myname@example.com\";"
	  " helo=foo.example.com;",
	  1, "pass", "192.0.2.1", "myname@example.com", "foo.example.com" },
	{ "spf_softfail_no_comment", "SoftFail client-ip=2001:db8::1",
	  1, "softfail", "2001:db8::1", "", "" },
	{ "spf_bare_result", "none", 1, "none", "", "", "" },
	{ "spf_unknown_keys_ignored",
	  "fail x-foo=bar; identity=mailfrom; client-ip=198.51.100.7",
	  1, "fail", "198.51.100.7", "", "" },
	{ "spf_refuse_bad_result", "maybe client-ip=1.2.3.4", 0, NULL, NULL,
	  NULL, NULL },
	{ "spf_refuse_empty", "", 0, NULL, NULL, NULL, NULL },
	{ "spf_refuse_junk_pair", "pass client-ip", 0, NULL, NULL, NULL, NULL },
	{ "spf_refuse_unclosed_quote", "pass envelope-from=\"a@b", 0, NULL,
	  NULL, NULL, NULL },
	{ "spf_refuse_long_ip",
	  "pass client-ip=111111111111111111111111111111111111111111111111111111"
	  "11111111111111", 0, NULL, NULL, NULL, NULL },
};

static void
test_spf_table(void)
{
	const struct spf_case *c;
	struct received_spf s;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(spf_cases) / sizeof(spf_cases[0]); i++) {
		c = &spf_cases[i];
		rc = received_spf_parse(c->value, strlen(c->value), &s);
		if (!c->ok) {
			UNIT_CHECK(c->name, rc == -1, "parsed, want refusal");
			continue;
		}
		UNIT_CHECK(c->name, rc == 0 && strcmp(s.result, c->result) == 0 &&
		    strcmp(s.client_ip, c->ip) == 0 &&
		    strcmp(s.envelope_from, c->from) == 0 &&
		    strcmp(s.helo, c->helo) == 0, "rc=%d result=%s ip=%s from=%s "
		    "helo=%s", rc, s.result, s.client_ip, s.envelope_from, s.helo);
	}
}

struct dmarc_case {
	const char *name;
	const char *txt;
	int	 rc;
	enum dmarc_policy p, sp;
	char	 adkim, aspf;
	int	 pct;
};

static const struct dmarc_case dmarc_cases[] = {
	{ "dmarc_minimal", "v=DMARC1; p=reject", 1, DMARC_P_REJECT,
	  DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_full",
	  "v=DMARC1; p=quarantine; sp=reject; adkim=s; aspf=s; pct=25; "
	  "rua=mailto:d@ex.org; ruf=mailto:f@ex.org; fo=1; ri=86400",
	  1, DMARC_P_QUARANTINE, DMARC_P_REJECT, 's', 's', 25 },
	{ "dmarc_spaces_and_case", "v = DMARC1 ;P=Reject;  ADKIM=S ;", 1,
	  DMARC_P_REJECT, DMARC_P_UNSET, 's', 'r', 100 },
	{ "dmarc_no_trailing", "v=DMARC1;p=none", 1, DMARC_P_NONE,
	  DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_bad_pct_default", "v=DMARC1; p=reject; pct=150", 1,
	  DMARC_P_REJECT, DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_bad_adkim_default", "v=DMARC1; p=reject; adkim=x", 1,
	  DMARC_P_REJECT, DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_unknown_tags_ignored", "v=DMARC1; p=reject; zz=1; junk", 1,
	  DMARC_P_REJECT, DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_no_p_with_rua_is_none", "v=DMARC1; rua=mailto:a@ex.org", 1,
	  DMARC_P_NONE, DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_bad_p_with_rua_is_none", "v=DMARC1; p=bogus; rua=mailto:a@b", 1,
	  DMARC_P_NONE, DMARC_P_UNSET, 'r', 'r', 100 },
	{ "dmarc_no_p_no_rua_unusable", "v=DMARC1; adkim=s", -1, 0, 0, 0, 0, 0 },
	{ "dmarc_not_first_v", "p=reject; v=DMARC1", 0, 0, 0, 0, 0, 0 },
	{ "dmarc_wrong_version", "v=DMARC2; p=reject", 0, 0, 0, 0, 0, 0 },
	{ "dmarc_lowercase_version", "v=dmarc1; p=reject", 0, 0, 0, 0, 0, 0 },
	{ "dmarc_spf_record", "v=spf1 -all", 0, 0, 0, 0, 0, 0 },
	{ "dmarc_empty", "", 0, 0, 0, 0, 0, 0 },
};

static void
test_dmarc_table(void)
{
	const struct dmarc_case *c;
	struct dmarc_record r;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(dmarc_cases) / sizeof(dmarc_cases[0]); i++) {
		c = &dmarc_cases[i];
		rc = dmarc_record_parse(c->txt, strlen(c->txt), &r);
		if (c->rc != 1) {
			UNIT_CHECK(c->name, rc == c->rc, "rc %d want %d", rc,
			    c->rc);
			continue;
		}
		UNIT_CHECK(c->name, rc == 1 && r.p == c->p && r.sp == c->sp &&
		    r.adkim == c->adkim && r.aspf == c->aspf && r.pct == c->pct,
		    "rc=%d p=%s sp=%s adkim=%c aspf=%c pct=%d", rc,
		    dmarc_policy_name(r.p), dmarc_policy_name(r.sp), r.adkim,
		    r.aspf, r.pct);
	}
}

int
main(void)
{
	test_ar_table();
	test_ar_id();
	test_ar_writer();
	test_spf_table();
	test_dmarc_table();
	return unit_done();
}
