/*
 * authres.c - Authentication-Results (RFC 8601) parser and writer,
 * Received-SPF (RFC 7208 9.1) and DMARC record (RFC 7489 6.3) parsers.
 *
 * One small lexer serves the three: comments nest and may hold
 * quoted-pairs, folding is whitespace.  The A-R grammar is applied as
 * written, with two allowances for what real receivers emit: property
 * values may hold '/' and '=' unquoted (base64 in header.b), and a bare
 * "key=value" after a result (Microsoft's "action=none") is skipped.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/authres.h"
#include "lib/buf.h"

#define COMMENT_DEPTH_MAX	8

struct lex {
	const char *p;
	const char *end;
};

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip whitespace and comments; the text of the first comment seen goes
 * to com (when given and still empty).  -1 on an unclosed comment. */
static int
skip_cfws(struct lex *lx, char *com, size_t comsz)
{
	int depth, capture;
	size_t w;

	for (;;) {
		while (lx->p < lx->end && is_wsp(*lx->p))
			lx->p++;
		if (lx->p >= lx->end || *lx->p != '(')
			return 0;
		capture = com != NULL && comsz > 0 && com[0] == '\0';
		depth = 0;
		w = 0;
		for (;;) {
			char c;

			if (lx->p >= lx->end)
				return -1;
			c = *lx->p++;
			if (c == '\\') {
				if (lx->p >= lx->end)
					return -1;
				c = *lx->p++;
			} else if (c == '(') {
				if (++depth > COMMENT_DEPTH_MAX)
					return -1;
				if (depth == 1)
					continue;
			} else if (c == ')') {
				if (--depth == 0)
					break;
			}
			if (!capture || w + 1 >= comsz)
				continue;
			if ((unsigned char)c < 0x20 || c == 0x7f)
				c = ' ';
			if (c == ' ' && (w == 0 || com[w - 1] == ' '))
				continue;	/* squeeze folding */
			com[w++] = c;
		}
		if (capture) {
			while (w > 0 && com[w - 1] == ' ')
				w--;
			com[w] = '\0';
		}
	}
}

/* Keyword: let-dig *(let-dig / "-" / "_"), lower-cased into out. */
static int
lex_keyword(struct lex *lx, char *out, size_t outsz)
{
	size_t n = 0;

	if (lx->p >= lx->end || !isalnum((unsigned char)*lx->p))
		return -1;
	while (lx->p < lx->end && (isalnum((unsigned char)*lx->p) ||
	    *lx->p == '-' || *lx->p == '_')) {
		if (n + 1 >= outsz)
			return -1;
		out[n++] = (char)tolower((unsigned char)*lx->p);
		lx->p++;
	}
	out[n] = '\0';
	return 0;
}

static int
is_value_char(char c, int lenient)
{
	unsigned char u = (unsigned char)c;

	if (u <= 0x20 || u == 0x7f || c == ';' || c == '(' || c == ')' ||
	    c == '"')
		return 0;
	if (lenient)
		return 1;
	/* RFC 2045 token: no tspecials */
	return strchr("<>@,:\\/[]?=", c) == NULL;
}

/* quoted-string or a token (lenient: any run of printable non-special
 * characters), into out.  Empty values are refused. */
static int
lex_value(struct lex *lx, char *out, size_t outsz, int lenient)
{
	size_t n = 0;

	if (lx->p < lx->end && *lx->p == '"') {
		lx->p++;
		for (;;) {
			char c;

			if (lx->p >= lx->end)
				return -1;
			c = *lx->p++;
			if (c == '"')
				break;
			if (c == '\\') {
				if (lx->p >= lx->end)
					return -1;
				c = *lx->p++;
			} else if (c == '\r' || c == '\n')
				continue;	/* folding inside quotes */
			if (n + 1 >= outsz)
				return -1;
			out[n++] = c;
		}
		out[n] = '\0';
		return 0;
	}
	while (lx->p < lx->end && is_value_char(*lx->p, lenient)) {
		if (n + 1 >= outsz)
			return -1;
		out[n++] = *lx->p++;
	}
	if (n == 0)
		return -1;
	out[n] = '\0';
	return 0;
}

static int
lex_char(struct lex *lx, char c)
{
	if (lx->p < lx->end && *lx->p == c) {
		lx->p++;
		return 0;
	}
	return -1;
}

/* ---- Authentication-Results ---------------------------------------- */

int
authres_id(const char *v, size_t len, char *out, size_t outsz)
{
	struct lex lx = { v, v + len };

	if (skip_cfws(&lx, NULL, 0) != 0 ||
	    lex_value(&lx, out, outsz, 1) != 0)
		return -1;
	return 0;
}

/* One resinfo after its ';'. */
static int
parse_resinfo(struct lex *lx, struct authres_result *r)
{
	char word[64], ptype[sizeof(r->props[0].ptype)];
	char val[AUTHRES_VALUE_MAX];
	const char *save;

	if (skip_cfws(lx, NULL, 0) != 0 ||
	    lex_keyword(lx, r->method, sizeof(r->method)) != 0 ||
	    skip_cfws(lx, NULL, 0) != 0)
		return -1;
	if (lex_char(lx, '/') == 0) {		/* method-version */
		if (skip_cfws(lx, NULL, 0) != 0 ||
		    lex_keyword(lx, word, sizeof(word)) != 0 ||
		    skip_cfws(lx, NULL, 0) != 0)
			return -1;
	}
	if (lex_char(lx, '=') != 0 || skip_cfws(lx, NULL, 0) != 0 ||
	    lex_keyword(lx, r->result, sizeof(r->result)) != 0 ||
	    skip_cfws(lx, r->comment, sizeof(r->comment)) != 0)
		return -1;
	while (lx->p < lx->end && *lx->p != ';') {
		save = lx->p;
		if (lex_keyword(lx, ptype, sizeof(ptype)) != 0 ||
		    skip_cfws(lx, NULL, 0) != 0)
			return -1;
		if (strcmp(ptype, "reason") == 0 && lex_char(lx, '=') == 0) {
			if (skip_cfws(lx, NULL, 0) != 0 ||
			    lex_value(lx, r->reason, sizeof(r->reason), 1) != 0)
				return -1;
		} else if (lex_char(lx, '.') == 0) {
			struct authres_prop *pp;

			if (skip_cfws(lx, NULL, 0) != 0 ||
			    lex_keyword(lx, word, sizeof(word)) != 0 ||
			    skip_cfws(lx, NULL, 0) != 0 ||
			    lex_char(lx, '=') != 0 ||
			    skip_cfws(lx, NULL, 0) != 0 ||
			    lex_value(lx, val, sizeof(val), 1) != 0)
				return -1;
			if (r->nprops < AUTHRES_PROPS_MAX &&
			    strlen(word) < sizeof(pp->property)) {
				pp = &r->props[r->nprops++];
				memcpy(pp->ptype, ptype, sizeof(pp->ptype));
				memcpy(pp->property, word, strlen(word) + 1);
				memcpy(pp->value, val, sizeof(pp->value));
			}
		} else if (lex_char(lx, '=') == 0) {
			/* key=value without a ptype: skipped */
			if (skip_cfws(lx, NULL, 0) != 0 ||
			    lex_value(lx, val, sizeof(val), 1) != 0)
				return -1;
		} else
			return -1;
		if (lx->p == save || skip_cfws(lx, NULL, 0) != 0)
			return -1;
	}
	return 0;
}

int
authres_parse(const char *v, size_t len, struct authres *ar)
{
	struct lex lx = { v, v + len };
	struct authres_result tmp;
	char word[16];

	memset(ar, 0, sizeof(*ar));
	if (skip_cfws(&lx, NULL, 0) != 0 ||
	    lex_value(&lx, ar->authserv_id, sizeof(ar->authserv_id), 1) != 0 ||
	    skip_cfws(&lx, NULL, 0) != 0)
		return -1;
	if (lx.p < lx.end && isdigit((unsigned char)*lx.p)) {	/* version */
		while (lx.p < lx.end && isdigit((unsigned char)*lx.p))
			lx.p++;
		if (skip_cfws(&lx, NULL, 0) != 0)
			return -1;
	}
	if (lex_char(&lx, ';') != 0)
		return -1;
	/* "none" */
	{
		struct lex look = lx;

		if (skip_cfws(&look, NULL, 0) == 0 &&
		    lex_keyword(&look, word, sizeof(word)) == 0 &&
		    strcmp(word, "none") == 0 && skip_cfws(&look, NULL, 0) == 0 &&
		    (look.p == look.end || *look.p == ';')) {
			ar->none = 1;
			lx = look;
			while (lx.p < lx.end && *lx.p == ';') {
				lx.p++;
				if (skip_cfws(&lx, NULL, 0) != 0)
					return -1;
			}
			return lx.p == lx.end ? 0 : -1;
		}
	}
	for (;;) {
		memset(&tmp, 0, sizeof(tmp));
		if (skip_cfws(&lx, NULL, 0) != 0)
			return -1;
		if (lx.p == lx.end)
			break;			/* a trailing ';' */
		if (parse_resinfo(&lx, &tmp) != 0)
			return -1;
		if (ar->nres < AUTHRES_RESULTS_MAX)
			ar->res[ar->nres++] = tmp;
		else
			ar->dropped++;
		if (lx.p == lx.end)
			break;
		if (lex_char(&lx, ';') != 0)
			return -1;
	}
	return ar->nres + ar->dropped > 0 ? 0 : -1;
}

const struct authres_result *
authres_find(const struct authres *ar, const char *method)
{
	size_t i;

	for (i = 0; i < ar->nres; i++)
		if (strcasecmp(ar->res[i].method, method) == 0)
			return &ar->res[i];
	return NULL;
}

const char *
authres_prop(const struct authres_result *r, const char *ptype,
    const char *property)
{
	size_t i;

	for (i = 0; i < r->nprops; i++)
		if (strcasecmp(r->props[i].ptype, ptype) == 0 &&
		    strcasecmp(r->props[i].property, property) == 0)
			return r->props[i].value;
	return NULL;
}

/* ---- writer -------------------------------------------------------- */

/* Copy cutting at the end of out. */
static void
copy_cut(char *out, size_t outsz, const char *s)
{
	size_t n = strlen(s);

	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

struct authres_result *
authres_add(struct authres *ar, const char *method, const char *result,
    const char *comment)
{
	struct authres_result *r;
	size_t i, w = 0;

	if (ar->nres == AUTHRES_RESULTS_MAX)
		return NULL;
	r = &ar->res[ar->nres++];
	memset(r, 0, sizeof(*r));
	copy_cut(r->method, sizeof(r->method), method);
	copy_cut(r->result, sizeof(r->result), result);
	for (i = 0; comment != NULL && comment[i] && w + 1 < sizeof(r->comment);
	    i++) {
		unsigned char c = (unsigned char)comment[i];

		/* ctext only: no parentheses, backslash or controls */
		if (c == '(' || c == ')' || c == '\\' || c < 0x20 || c == 0x7f)
			c = c == '(' ? '[' : c == ')' ? ']' : ' ';
		r->comment[w++] = (char)c;
	}
	r->comment[w] = '\0';
	return r;
}

int
authres_add_prop(struct authres_result *r, const char *ptype,
    const char *property, const char *value)
{
	struct authres_prop *p;

	if (r->nprops == AUTHRES_PROPS_MAX || value == NULL ||
	    strlen(value) >= sizeof(p->value) ||
	    strlen(ptype) >= sizeof(p->ptype) ||
	    strlen(property) >= sizeof(p->property))
		return -1;
	p = &r->props[r->nprops++];
	copy_cut(p->ptype, sizeof(p->ptype), ptype);
	copy_cut(p->property, sizeof(p->property), property);
	copy_cut(p->value, sizeof(p->value), value);
	return 0;
}

/* A value as a token when it is one (with '@' and '.' allowed, for
 * addresses and domains: RFC 8601 pvalue), else as a quoted-string. */
static int
put_value(struct buf *out, const char *v, int allow_at)
{
	const char *s;
	int plain = *v != '\0';

	for (s = v; *s; s++) {
		if (!is_value_char(*s, 0) && !(allow_at && (*s == '@' ||
		    *s == '/' || *s == '=' || *s == ':')))
			plain = 0;
	}
	if (allow_at && v[0] == '@')
		plain = plain && v[1] != '\0';
	if (plain)
		return buf_puts(out, v);
	if (buf_putc(out, '"') != 0)
		return -1;
	for (s = v; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if ((c == '"' || c == '\\') && buf_putc(out, '\\') != 0)
			return -1;
		if (buf_putc(out, (char)c) != 0)
			return -1;
	}
	return buf_putc(out, '"');
}

/* " (text)" with parentheses and backslashes as quoted-pairs, controls
 * as spaces: whatever a parsed comment held, the field stays valid. */
static int
put_comment(struct buf *out, const char *c)
{
	if (buf_puts(out, " (") != 0)
		return -1;
	for (; *c; c++) {
		unsigned char ch = (unsigned char)*c;

		if (ch < 0x20 || ch == 0x7f)
			ch = ' ';
		if ((ch == '(' || ch == ')' || ch == '\\') &&
		    buf_putc(out, '\\') != 0)
			return -1;
		if (buf_putc(out, (char)ch) != 0)
			return -1;
	}
	return buf_putc(out, ')');
}

int
authres_write(struct buf *out, const struct authres *ar)
{
	const struct authres_result *r;
	size_t i, j;

	if (buf_puts(out, "Authentication-Results: ") != 0 ||
	    put_value(out, ar->authserv_id, 0) != 0)
		return -1;
	if (ar->nres == 0)
		return buf_puts(out, "; none\r\n");
	for (i = 0; i < ar->nres; i++) {
		r = &ar->res[i];
		if (buf_printf(out, ";\r\n\t%s=%s", r->method, r->result) != 0)
			return -1;
		if (r->comment[0] && put_comment(out, r->comment) != 0)
			return -1;
		if (r->reason[0] && (buf_puts(out, " reason=") != 0 ||
		    put_value(out, r->reason, 0) != 0))
			return -1;
		for (j = 0; j < r->nprops; j++) {
			if (buf_printf(out, " %s.%s=", r->props[j].ptype,
			    r->props[j].property) != 0 ||
			    put_value(out, r->props[j].value, 1) != 0)
				return -1;
		}
	}
	return buf_puts(out, "\r\n");
}

/* ---- Received-SPF -------------------------------------------------- */

int
spf_result_valid(const char *s)
{
	static const char *const results[] = { "pass", "fail", "softfail",
	    "neutral", "none", "temperror", "permerror", NULL };
	size_t i;

	for (i = 0; results[i]; i++)
		if (strcmp(s, results[i]) == 0)
			return 1;
	return 0;
}

int
received_spf_parse(const char *v, size_t len, struct received_spf *s)
{
	struct lex lx = { v, v + len };
	char key[32], val[AUTHRES_VALUE_MAX];

	memset(s, 0, sizeof(*s));
	if (skip_cfws(&lx, NULL, 0) != 0 ||
	    lex_keyword(&lx, s->result, sizeof(s->result)) != 0 ||
	    !spf_result_valid(s->result) ||
	    skip_cfws(&lx, s->comment, sizeof(s->comment)) != 0)
		return -1;
	while (lx.p < lx.end) {
		char *dst = NULL;
		size_t dsz = 0;

		if (lex_keyword(&lx, key, sizeof(key)) != 0 ||
		    skip_cfws(&lx, NULL, 0) != 0 || lex_char(&lx, '=') != 0 ||
		    skip_cfws(&lx, NULL, 0) != 0 ||
		    lex_value(&lx, val, sizeof(val), 1) != 0 ||
		    skip_cfws(&lx, NULL, 0) != 0)
			return -1;
		if (strcmp(key, "client-ip") == 0) {
			dst = s->client_ip;
			dsz = sizeof(s->client_ip);
		} else if (strcmp(key, "envelope-from") == 0) {
			dst = s->envelope_from;
			dsz = sizeof(s->envelope_from);
		} else if (strcmp(key, "helo") == 0) {
			dst = s->helo;
			dsz = sizeof(s->helo);
		} else if (strcmp(key, "receiver") == 0) {
			dst = s->receiver;
			dsz = sizeof(s->receiver);
		} else if (strcmp(key, "identity") == 0) {
			dst = s->identity;
			dsz = sizeof(s->identity);
		}
		if (dst != NULL) {
			if (strlen(val) >= dsz)
				return -1;
			memcpy(dst, val, strlen(val) + 1);
		}
		if (lx.p == lx.end)
			break;
		if (lex_char(&lx, ';') != 0 || skip_cfws(&lx, NULL, 0) != 0)
			return -1;
	}
	return 0;
}

/* ---- DMARC record -------------------------------------------------- */

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_NONE:
		return "none";
	case DMARC_P_QUARANTINE:
		return "quarantine";
	case DMARC_P_REJECT:
		return "reject";
	case DMARC_P_UNSET:
		break;
	}
	return "unset";
}

static enum dmarc_policy
policy_of(const char *v)
{
	if (strcasecmp(v, "none") == 0)
		return DMARC_P_NONE;
	if (strcasecmp(v, "quarantine") == 0)
		return DMARC_P_QUARANTINE;
	if (strcasecmp(v, "reject") == 0)
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

static void
trim(const char **b, const char **e)
{
	while (*b < *e && (**b == ' ' || **b == '\t'))
		(*b)++;
	while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r)
{
	const char *p = txt, *end = txt + len, *semi, *eq, *kb, *ke, *vb, *ve;
	char key[16], val[64];
	int first = 1, pvalid = 0;
	size_t kn, vn;

	memset(r, 0, sizeof(*r));
	r->adkim = r->aspf = 'r';
	r->pct = 100;
	while (p < end) {
		semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			semi = end;
		eq = memchr(p, '=', (size_t)(semi - p));
		kb = p;
		ke = eq ? eq : semi;
		trim(&kb, &ke);
		vb = eq ? eq + 1 : semi;
		ve = semi;
		trim(&vb, &ve);
		p = semi < end ? semi + 1 : end;
		kn = (size_t)(ke - kb);
		vn = (size_t)(ve - vb);
		if (first) {
			/* "v=DMARC1" must come first, exactly */
			if (eq == NULL || kn != 1 || *kb != 'v' || vn != 6 ||
			    strncmp(vb, "DMARC1", 6) != 0)
				return 0;
			first = 0;
			continue;
		}
		if (kn == 0 && vn == 0)
			continue;		/* ";;" or a trailing ';' */
		if (eq == NULL || kn >= sizeof(key))
			continue;		/* junk: ignored */
		memcpy(key, kb, kn);
		key[kn] = '\0';
		if (vn >= sizeof(val)) {
			if (strcasecmp(key, "rua") == 0 && vn > 7 &&
			    strncasecmp(vb, "mailto:", 7) == 0)
				r->has_rua = 1;
			continue;
		}
		memcpy(val, vb, vn);
		val[vn] = '\0';
		if (strcasecmp(key, "p") == 0) {
			r->p = policy_of(val);
			pvalid = r->p != DMARC_P_UNSET;
		} else if (strcasecmp(key, "sp") == 0)
			r->sp = policy_of(val);
		else if (strcasecmp(key, "np") == 0)
			r->np = policy_of(val);
		else if (strcasecmp(key, "adkim") == 0) {
			if (strcasecmp(val, "s") == 0 || strcasecmp(val, "r") == 0)
				r->adkim = (char)tolower((unsigned char)val[0]);
		} else if (strcasecmp(key, "aspf") == 0) {
			if (strcasecmp(val, "s") == 0 || strcasecmp(val, "r") == 0)
				r->aspf = (char)tolower((unsigned char)val[0]);
		} else if (strcasecmp(key, "pct") == 0) {
			long long n;

			if (str_to_ll(val, 0, 100, &n) == 0)
				r->pct = (int)n;
		} else if (strcasecmp(key, "rua") == 0) {
			if (strncasecmp(val, "mailto:", 7) == 0 && val[7] != '\0')
				r->has_rua = 1;
		}
	}
	if (first)
		return 0;
	if (!pvalid) {
		/* RFC 7489 6.6.3: with a valid rua, act as p=none */
		if (!r->has_rua)
			return -1;
		r->p = DMARC_P_NONE;
	}
	return 1;
}
