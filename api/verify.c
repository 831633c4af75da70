/*
 * verify.c - what the API knows about a message's authentication besides
 * the DKIM cryptography (lib/dkimverify.c):
 *
 *   edge_read       the SPF and ARC results the edge (Cloudflare Email
 *                   Routing) wrote on top of the message
 *   from_domain     the author domain (RFC 5322 From) for DMARC
 *   dmarc_evaluate  policy discovery (RFC 7489 6.6.3), identifier
 *                   alignment (relaxed/strict, organizational domains from
 *                   the Public Suffix List) and the disposition (pct)
 *
 * Only the topmost block is the edge's: the header fields down to the
 * second Received field.  In it the first Received-SPF and the first
 * (ARC-)Authentication-Results with the edge's authserv-id count; copies
 * further down were written by whoever sent the message and are ignored.
 * The caller uses edge_read only for requests signed with a Worker key.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "api/checks.h"
#include "lib/authres.h"
#include "lib/dkimverify.h"
#include "lib/dns.h"
#include "lib/hdr.h"
#include "lib/psl.h"

#define FIELD_MAX	(64 * 1024)	/* an unfolded field we look into */

/* Bounded copy; a result that does not fit is cut (on purpose). */
static void
copy(char *dst, size_t dsz, const char *src)
{
	(void)str_copy(dst, dsz, src ? src : "");
}

/* The unfolded value of a field into b; -1 when too large. */
static int
unfold(const struct hdr_field *f, struct buf *b)
{
	buf_reset(b);
	return hdr_unfold(f, b);
}

/* "i=1; rest": the A-R payload after the instance tag. */
static const char *
skip_instance(const char *v)
{
	const char *semi;

	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, "i", 1) != 0)
		return NULL;
	if ((semi = strchr(v, ';')) == NULL)
		return NULL;
	return semi + 1;
}

/* The value of tag `name` in a tag=value list ("cv=pass; ..."). */
static int
tag_value(const char *v, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name), n;
	const char *p = v, *e;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (strncasecmp(p, name, nl) == 0) {
			const char *q = p + nl;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '=') {
				q++;
				while (*q == ' ' || *q == '\t')
					q++;
				e = q;
				while (*e && *e != ';' && *e != ' ' && *e != '\t')
					e++;
				n = (size_t)(e - q);
				if (n >= outsz)
					return -1;
				memcpy(out, q, n);
				out[n] = '\0';
				return 0;
			}
		}
		if ((p = strchr(p, ';')) == NULL)
			break;
	}
	return -1;
}

/*
 * The edge's SPF result for the envelope sender: Cloudflare writes two,
 * the HELO check first ("spf=none ... smtp.helo=out.example; spf=pass
 * ... smtp.mailfrom=a@example").  DMARC wants the MAIL FROM one; the
 * HELO one only stands in for a null sender (RFC 7208 section 2.4).
 */
static const struct authres_result *
edge_spf(const struct authres *ar)
{
	size_t i;

	for (i = 0; i < ar->nres; i++)
		if (strcasecmp(ar->res[i].method, "spf") == 0 &&
		    authres_prop(&ar->res[i], "smtp", "mailfrom") != NULL)
			return &ar->res[i];
	return authres_find(ar, "spf");
}

/* Take spf/arc results from an edge A-R (or ARC-A-R payload). */
static void
edge_from_ar(const struct authres *ar, struct edge_info *e)
{
	const struct authres_result *r;
	const char *v;

	if ((r = edge_spf(ar)) != NULL && e->spf[0] == '\0') {
		copy(e->spf, sizeof(e->spf), r->result);
		copy(e->spf_comment, sizeof(e->spf_comment), r->comment);
		if ((v = authres_prop(r, "smtp", "mailfrom")) != NULL)
			copy(e->mailfrom, sizeof(e->mailfrom), v);
		if ((v = authres_prop(r, "smtp", "helo")) != NULL)
			copy(e->helo, sizeof(e->helo), v);
	}
	if ((r = authres_find(ar, "arc")) != NULL && e->arc[0] == '\0') {
		copy(e->arc, sizeof(e->arc), r->result);
		if ((v = authres_prop(r, "smtp", "remote-ip")) != NULL &&
		    e->client_ip[0] == '\0')
			copy(e->client_ip, sizeof(e->client_ip), v);
	}
}

void
edge_read(const char *hdr, size_t len, const char *edge_id,
    struct edge_info *e)
{
	struct hdr_field f;
	struct buf b;
	struct authres *ar = NULL, *aar = NULL, *tmp;
	struct received_spf rs;
	size_t pos = 0;
	int nrecv = 0, got_rs = 0, got_ar = 0, got_aar = 0;
	int seen_rs = 0, seen_ar = 0, seen_aar = 0;
	char seal_cv[16] = "", id[AUTHRES_VALUE_MAX];
	const char *v;

	memset(e, 0, sizeof(*e));
	e->arc_sets = arc_count_sets(hdr, len);
	if ((tmp = calloc(3, sizeof(*tmp))) == NULL)
		return;
	ar = &tmp[0];
	aar = &tmp[1];
	buf_init(&b, FIELD_MAX);
	while (hdr_next(hdr, len, &pos, &f) == 1) {
		if (hdr_is(&f, "Received")) {
			if (++nrecv > 1)
				break;
			continue;
		}
		if (unfold(&f, &b) != 0)
			continue;
		v = buf_cstr(&b);
		/* The first field of each kind from the edge is the edge's,
		 * parsed or not: one below it may be the sender's forgery,
		 * so a field we cannot read means "no edge result", never
		 * "look further down". */
		if (hdr_is(&f, "Received-SPF") && !seen_rs) {
			seen_rs = 1;
			got_rs = received_spf_parse(v, b.len, &rs) == 0;
		} else if (hdr_is(&f, "Authentication-Results") && !seen_ar) {
			if (authres_id(v, b.len, id, sizeof(id)) == 0 &&
			    strcasecmp(id, edge_id) == 0) {
				seen_ar = 1;
				got_ar = authres_parse(v, b.len, ar) == 0;
			}
		} else if (hdr_is(&f, "ARC-Authentication-Results") &&
		    !seen_aar) {
			const char *pl = skip_instance(v);

			if (pl != NULL && authres_id(pl, strlen(pl), id,
			    sizeof(id)) == 0 && strcasecmp(id, edge_id) == 0) {
				seen_aar = 1;
				got_aar = authres_parse(pl, strlen(pl), aar) == 0;
			}
		} else if (hdr_is(&f, "ARC-Seal") && seal_cv[0] == '\0') {
			if (tag_value(v, "cv", seal_cv, sizeof(seal_cv)) != 0)
				seal_cv[0] = '\0';
		}
	}
	buf_free(&b);
	if (got_ar)
		edge_from_ar(ar, e);
	if (got_aar)
		edge_from_ar(aar, e);
	if (got_rs) {
		if (e->spf[0] == '\0') {
			copy(e->spf, sizeof(e->spf), rs.result);
			copy(e->spf_comment, sizeof(e->spf_comment), rs.comment);
			copy(e->mailfrom, sizeof(e->mailfrom), rs.envelope_from);
		}
		if (e->client_ip[0] == '\0')
			copy(e->client_ip, sizeof(e->client_ip), rs.client_ip);
		if (e->helo[0] == '\0')
			copy(e->helo, sizeof(e->helo), rs.helo);
	}
	/* No arc= written: the edge's own seal says what it saw (cv). */
	if (e->arc[0] == '\0' && seal_cv[0] != '\0' && (got_ar || got_aar))
		copy(e->arc, sizeof(e->arc), seal_cv);
	e->present = got_ar || got_aar || got_rs;
	free(tmp);
}

int
arc_count_sets(const char *hdr, size_t len)
{
	struct hdr_field f;
	size_t pos = 0;
	int n = 0;

	while (hdr_next(hdr, len, &pos, &f) == 1)
		if (hdr_is(&f, "ARC-Seal"))
			n++;
	return n;
}

/* ---- From ---------------------------------------------------------- */

/*
 * Author domains of one From value: comments and quoted strings blanked,
 * then each mailbox (split at top-level ',' ':' ';') gives the domain of
 * its <addr-spec> or bare addr-spec.  Adds the domains not in out[0..n)
 * yet; returns the new n, or -1 past max.
 */
static int
author_domains(char *v, char (*out)[FROM_DOMAIN_MAX], int max, int n)
{
	char *p, *start, *lt, *gt, *at, *d, *e;
	int depth = 0, inq = 0, angle = 0, i;

	for (p = v; *p; p++) {		/* blank comments and quotes */
		if (inq) {
			if (*p == '\\' && p[1]) {
				*p++ = ' ';
				*p = ' ';
				continue;
			}
			if (*p == '"')
				inq = 0;
			*p = ' ';
		} else if (depth > 0) {
			if (*p == '\\' && p[1]) {
				*p++ = ' ';
				*p = ' ';
				continue;
			}
			if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			*p = ' ';
		} else if (*p == '"') {
			inq = 1;
			*p = ' ';
		} else if (*p == '(') {
			depth = 1;
			*p = ' ';
		}
	}
	start = v;
	for (p = v;; p++) {
		if (*p == '<')
			angle = 1;
		else if (*p == '>')
			angle = 0;
		if (*p != '\0' && (angle || (*p != ',' && *p != ':' &&
		    *p != ';')))
			continue;
		/* one piece: [start, p) */
		lt = memchr(start, '<', (size_t)(p - start));
		gt = lt ? memchr(lt, '>', (size_t)(p - lt)) : NULL;
		if (lt && gt) {
			start = lt + 1;
			e = gt;
		} else
			e = p;
		at = NULL;
		for (d = start; d < e; d++)
			if (*d == '@')
				at = d;
		if (at != NULL) {
			char dom[256];
			size_t k = 0;

			for (d = at + 1; d < e && k + 1 < sizeof(dom); d++) {
				if (*d == ' ' || *d == '\t')
					continue;
				dom[k++] = (char)tolower((unsigned char)*d);
			}
			while (k > 0 && dom[k - 1] == '.')
				k--;
			dom[k] = '\0';
			for (i = 0; i < n && strcmp(out[i], dom) != 0; i++)
				;
			if (k > 0 && i == n) {
				if (n == max)
					return -1;
				snprintf(out[n++], FROM_DOMAIN_MAX, "%s", dom);
			}
		}
		if (*p == '\0')
			break;
		start = p + 1;
	}
	return n;
}

static int
domain_ok(const char *d)
{
	const char *p;

	if (*d == '\0' || *d == '.' || *d == '-' || strlen(d) > 253)
		return 0;
	for (p = d; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (!(isalnum(c) || c == '-' || c == '.' || c >= 0x80))
			return 0;
		if (c == '.' && p[1] == '.')
			return 0;
	}
	return 1;
}

int
from_domains(const char *hdr, size_t len, char (*out)[FROM_DOMAIN_MAX],
    int max)
{
	struct hdr_field f;
	struct buf b;
	size_t pos = 0, i;
	int n = 0, k, j;

	buf_init(&b, FIELD_MAX);
	while (n >= 0 && hdr_next(hdr, len, &pos, &f) == 1) {
		if (!hdr_is(&f, "From"))
			continue;
		/* A From we cannot read hides its authors: never "none". */
		if (unfold(&f, &b) != 0 || b.data == NULL) {
			n = -1;
			break;
		}
		/* A NUL would end the string early; Dovecot shows what
		 * follows it, so read it too. */
		for (i = 0; i < b.len; i++)
			if (b.data[i] == '\0')
				b.data[i] = (char)0x80;
		n = author_domains(b.data, out, max, n);
	}
	buf_free(&b);
	/* Names no DNS lookup could be made for are no authors. */
	for (j = 0, k = 0; j < n; j++)
		if (domain_ok(out[j]) && k++ != j)
			memcpy(out[k - 1], out[j], FROM_DOMAIN_MAX);
	return n < 0 ? -1 : k;
}

/* ---- DMARC --------------------------------------------------------- */

enum lookup_rc { LK_FOUND, LK_NONE, LK_NONE_FINAL, LK_TEMP };

static enum lookup_rc
policy_lookup(struct dns_resolver *dns, const char *domain,
    struct dmarc_record *rec)
{
	char name[DNS_NAME_MAX + 16], alab[DNS_NAME_MAX + 2];
	struct dns_txt t;
	enum dns_status st;
	struct dmarc_record r;
	size_t i, nrec = 0;
	int rc, last = 0;

	/* A name that cannot be written as a DNS name (a label too long,
	 * bad UTF-8) has no record: its organizational domain may. */
	if (psl_alabels(domain, alab, sizeof(alab)) != 0)
		return LK_NONE;
	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", alab) >=
	    sizeof(name))
		return LK_NONE_FINAL;
	st = dns_txt(dns, name, &t);
	if (st == DNS_TEMP) {
		dns_txt_free(&t);
		return LK_TEMP;
	}
	if (st == DNS_NOTFOUND) {
		dns_txt_free(&t);
		return LK_NONE;
	}
	for (i = 0; i < t.n; i++) {
		rc = dmarc_record_parse(t.rec[i], t.len[i], &r);
		if (rc == 0)
			continue;	/* not a DMARC record */
		nrec++;
		last = rc;
		*rec = r;
	}
	dns_txt_free(&t);
	if (nrec == 0)
		return LK_NONE;
	/* Several records, or one without a usable policy: no DMARC
	 * processing (RFC 7489 6.6.3 steps 4 and 6). */
	if (nrec > 1 || last != 1)
		return LK_NONE_FINAL;
	return LK_FOUND;
}

/*
 * A domain as DNS and DKIM write it: labels with UTF-8 as A-labels
 * ("bücher.de" is "xn--bcher-kva.de"), ASCII lower-cased; name itself
 * when it cannot be written so.  Alignment compares these forms.  (Upper
 * case outside ASCII is not folded: no full IDNA mapping here.)
 */
static const char *
dns_form(const char *name, char *out, size_t outsz)
{
	size_t i;

	if (psl_alabels(name, out, outsz) != 0)
		return name;
	for (i = 0; out[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
	return out;
}

static int
aligned(const struct psl *psl, char mode, const char *a, const char *from,
    const char *from_org)
{
	char org[256], al[256];

	if (a == NULL || *a == '\0')
		return 0;
	a = dns_form(a, al, sizeof(al));
	if (strcasecmp(a, from) == 0)
		return 1;
	if (mode == 's')
		return 0;
	return psl_org_domain(psl, a, org, sizeof(org)) == 0 &&
	    strcmp(org, from_org) == 0;
}

/* pct sampling: 1 when this message gets the policy. */
static int
sampled(int pct)
{
	unsigned r;

	if (pct >= 100)
		return 1;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return 1;
	return (int)(r % 100) < pct;
}

void
dmarc_evaluate(struct dns_resolver *dns, const struct psl *psl,
    const char *from_dom, const struct dkimv_report *dkim,
    const char *spf_result, const char *spf_domain, struct dmarc_eval *ev)
{
	struct dmarc_record rec;
	char org[256], fa[256];
	enum lookup_rc lk;
	int at_org = 0, pass = 0, temp = 0;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	copy(ev->from, sizeof(ev->from), from_dom);
	if (from_dom == NULL || *from_dom == '\0') {
		copy(ev->result, sizeof(ev->result), "none");
		copy(ev->comment, sizeof(ev->comment), "no author domain");
		return;
	}
	from_dom = dns_form(from_dom, fa, sizeof(fa));
	if (psl_org_domain(psl, from_dom, org, sizeof(org)) != 0) {
		copy(ev->result, sizeof(ev->result), "permerror");
		copy(ev->comment, sizeof(ev->comment), "bad author domain");
		return;
	}
	lk = policy_lookup(dns, from_dom, &rec);
	if (lk == LK_NONE && strcmp(org, from_dom) != 0) {
		lk = policy_lookup(dns, org, &rec);
		at_org = 1;
	}
	if (lk == LK_TEMP) {
		copy(ev->result, sizeof(ev->result), "temperror");
		copy(ev->comment, sizeof(ev->comment),
		    "policy lookup failed");
		return;
	}
	if (lk != LK_FOUND) {
		copy(ev->result, sizeof(ev->result), "none");
		return;
	}
	ev->policy = at_org && rec.sp != DMARC_P_UNSET ? rec.sp : rec.p;

	for (i = 0; dkim != NULL && i < dkim->nsig; i++) {
		const struct dkimv_sig *s = &dkim->sig[i];

		if (!aligned(psl, rec.adkim, s->domain, from_dom, org))
			continue;
		if (strcmp(s->result, "pass") == 0)
			pass = 1;
		else if (strcmp(s->result, "temperror") == 0)
			temp = 1;
	}
	if (spf_result != NULL && aligned(psl, rec.aspf, spf_domain, from_dom,
	    org)) {
		if (strcmp(spf_result, "pass") == 0)
			pass = 1;
		else if (strcmp(spf_result, "temperror") == 0)
			temp = 1;
	}
	if (pass) {
		copy(ev->result, sizeof(ev->result), "pass");
		ev->disposition = DMARC_P_NONE;
	} else if (temp) {
		/* An aligned identifier could not be checked: the answer
		 * may change, so no verdict. */
		copy(ev->result, sizeof(ev->result), "temperror");
		ev->disposition = DMARC_P_NONE;
	} else {
		copy(ev->result, sizeof(ev->result), "fail");
		ev->disposition = ev->policy;
		if (!sampled(rec.pct) && ev->disposition != DMARC_P_NONE)
			ev->disposition = ev->disposition == DMARC_P_REJECT ?
			    DMARC_P_QUARANTINE : DMARC_P_NONE;
	}
	snprintf(ev->comment, sizeof(ev->comment), "p=%s%s%s dis=%s",
	    dmarc_policy_name(rec.p), rec.sp != DMARC_P_UNSET ? " sp=" : "",
	    rec.sp != DMARC_P_UNSET ? dmarc_policy_name(rec.sp) : "",
	    dmarc_policy_name(ev->disposition));
}
