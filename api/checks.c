/*
 * checks.c - the one entry point of the inbound checks (see checks.h):
 * set-up from the configuration, then per message the virus scan, the
 * authentication results (DKIM, SPF and ARC from the edge, DMARC), our
 * Authentication-Results field, rspamd, and the verdict.
 *
 * Order: the scan first (local, and a virus is final whatever else
 * happens), then authentication (DNS), then rspamd (which sees our
 * Authentication-Results on top of the message).  A permanent refusal
 * wins over a temporary failure found before it; a temporary failure
 * skips the checks that could only lead to delivery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api.h"
#include "api/checks.h"
#include "lib/authres.h"
#include "lib/conf.h"
#include "lib/dkimverify.h"
#include "lib/dns.h"
#include "lib/hdr.h"
#include "lib/log.h"
#include "lib/psl.h"
#include "lib/scan.h"

#define HEADERS_MAX	(64 * 1024)
#define EDGE_KEYS_MAX	16

enum dmarc_action { DMARC_ACT_NO, DMARC_ACT_QUARANTINE, DMARC_ACT_YES };

struct checks {
	struct dns_resolver *dns;
	struct psl *psl;
	struct dkimv *dkimv;
	struct scanner *scanner;	/* NULL: scan = no */
	int	 dkim_verify;
	enum dmarc_action dmarc_reject;
	char	 edge_keys[EDGE_KEYS_MAX][65];
	size_t	 nedge;
	char	 edge_id[256];
	char	 rspamd_url[1024];	/* "" = off */
	long	 rspamd_timeout_ms;
	int	 rspamd_fail_open;
};

const char *
check_verdict_name(enum check_verdict v)
{
	switch (v) {
	case CHECK_ACCEPT:
		return "accept";
	case CHECK_JUNK:
		return "junk";
	case CHECK_REJECT:
		return "reject";
	case CHECK_TEMP:
		break;
	}
	return "temp";
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- set-up -------------------------------------------------------- */

static int
parse_edge_keys(struct checks *c, const char *s, char *err, size_t errsz)
{
	const char *p = s, *e;
	size_t n;

	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		e = p;
		while (*e && *e != ' ' && *e != ',' && *e != '\t')
			e++;
		n = (size_t)(e - p);
		if (c->nedge == EDGE_KEYS_MAX || n >= sizeof(c->edge_keys[0])) {
			snprintf(err, errsz, "edge_key_ids: too many or too long");
			return -1;
		}
		memcpy(c->edge_keys[c->nedge], p, n);
		c->edge_keys[c->nedge][n] = '\0';
		c->nedge++;
		p = e;
	}
	return 0;
}

int
checks_init(struct api *api, char *err, size_t errsz)
{
	struct conf *cf = api->conf;
	struct checks *c;
	long long dns_timeout, rs_timeout;
	const char *s;
	struct scan_limits lim;
	int scan;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	api->checks = c;
	if (conf_get_bool(cf, "dkim_verify", &c->dkim_verify, err, errsz) != 0 ||
	    conf_get_bool(cf, "scan", &scan, err, errsz) != 0 ||
	    conf_get_bool(cf, "rspamd_fail_open", &c->rspamd_fail_open, err,
	    errsz) != 0 ||
	    conf_get_duration(cf, "dns_timeout", &dns_timeout, err, errsz) != 0 ||
	    conf_get_duration(cf, "rspamd_timeout", &rs_timeout, err,
	    errsz) != 0 ||
	    /* checked even with scan = no, as every key here */
	    scan_limits_from_conf(cf, &lim, err, errsz) != 0)
		return -1;
	s = conf_get(cf, "dmarc_reject");
	if (strcmp(s, "yes") == 0)
		c->dmarc_reject = DMARC_ACT_YES;
	else if (strcmp(s, "quarantine") == 0)
		c->dmarc_reject = DMARC_ACT_QUARANTINE;
	else if (strcmp(s, "no") == 0)
		c->dmarc_reject = DMARC_ACT_NO;
	else {
		snprintf(err, errsz, "dmarc_reject must be yes, quarantine or "
		    "no, not '%s'", s);
		return -1;
	}
	if (parse_edge_keys(c, conf_get(cf, "edge_key_ids"), err, errsz) != 0)
		return -1;
	snprintf(c->edge_id, sizeof(c->edge_id), "%s",
	    conf_get(cf, "edge_authserv_id"));
	snprintf(c->rspamd_url, sizeof(c->rspamd_url), "%s",
	    conf_get(cf, "rspamd_url"));
	c->rspamd_timeout_ms = (long)(rs_timeout > 0 ? rs_timeout : 1) * 1000;
	if (c->rspamd_url[0] && strncmp(c->rspamd_url, "http://", 7) != 0 &&
	    strncmp(c->rspamd_url, "https://", 8) != 0) {
		snprintf(err, errsz, "rspamd_url must be http:// or https://");
		return -1;
	}

	if ((c->dns = dns_new(conf_get(cf, "dns_server"),
	    (int)(dns_timeout > 0 ? dns_timeout : 1) * 1000, err, errsz)) == NULL)
		return -1;
	if (c->dkim_verify) {
		if ((c->psl = psl_load(conf_get(cf, "public_suffix_list"), err,
		    errsz)) == NULL)
			return -1;
		if ((c->dkimv = dkimv_new(c->dns, err, errsz)) == NULL)
			return -1;
	}
	if (scan) {
		char why[256];

		if ((c->scanner = scan_from_conf(cf, err, errsz)) == NULL)
			return -1;
		if (!scan_ready(c->scanner, why, sizeof(why)))
			log_warnx("event=scanner_not_ready why=\"%s\" "
			    "effect=\"messages get 503 until it loads\"", why);
	}
	if (c->rspamd_url[0] && spam_init(err, errsz) != 0)
		return -1;
	log_info("event=checks_ready dns=%s dkim_verify=%s dmarc_reject=%s "
	    "scan=%s signatures=%u rspamd=%s edge_keys=%zu",
	    dns_describe(c->dns), c->dkim_verify ? "yes" : "no",
	    conf_get(cf, "dmarc_reject"), scan ? "yes" : "no",
	    c->scanner ? scan_signatures(c->scanner) : 0,
	    c->rspamd_url[0] ? c->rspamd_url : "off", c->nedge);
	return 0;
}

void
checks_free(struct api *api)
{
	struct checks *c = api->checks;

	if (c == NULL)
		return;
	scan_free(&c->scanner);
	dkimv_free(&c->dkimv);
	psl_free(&c->psl);
	dns_free(&c->dns);
	if (c->rspamd_url[0])
		spam_cleanup();
	free(c);
	api->checks = NULL;
}

int
checks_scanner_state(struct api *api, char *why, size_t whysz)
{
	struct checks *c = api->checks;

	if (c == NULL || c->scanner == NULL)
		return -1;
	return scan_ready(c->scanner, why, whysz);
}

int
checks_strip_field(const struct api *api, const struct hdr_field *f)
{
	const struct checks *c = api->checks;

	if (hdr_is(f, "X-Edgemail-Junk"))
		return 1;
	/* Our X-Spam-* fields replace any the sender wrote. */
	return c != NULL && c->rspamd_url[0] && f->name_len > 7 &&
	    strncasecmp(f->name, "X-Spam-", 7) == 0;
}

/* ---- per message --------------------------------------------------- */

static int
is_edge_key(const struct checks *c, const char *key_id)
{
	size_t i;

	for (i = 0; i < c->nedge; i++)
		if (strcmp(c->edge_keys[i], key_id) == 0)
			return 1;
	return 0;
}

static void
verdict_reject(struct check_result *res, const struct reply *r)
{
	res->verdict = CHECK_REJECT;
	res->reply = *r;
	res->retry_after = 0;
}

static void
verdict_temp(struct check_result *res, const struct reply *r, int retry)
{
	if (res->verdict == CHECK_REJECT || res->verdict == CHECK_TEMP)
		return;		/* the first refusal stands */
	res->verdict = CHECK_TEMP;
	res->reply = *r;
	res->retry_after = retry;
}

static void
verdict_junk(struct check_result *res)
{
	if (res->verdict == CHECK_ACCEPT)
		res->verdict = CHECK_JUNK;
}

/* Domain part of an address ("" for the null path), or the address. */
static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

struct auth_summary {
	char	 dkim[64];		/* "pass,fail" for the log */
	char	 spf[16];
	char	 dmarc[16];
	char	 arc[16];
	char	 ip[64];
	char	 helo[256];
};


/* How much a DMARC outcome asks of us: reject > quarantine > temperror >
 * a failure with p=none > the rest. */
static int
dmarc_weight(const struct dmarc_eval *ev)
{
	if (strcmp(ev->result, "fail") == 0)
		return ev->disposition == DMARC_P_REJECT ? 4 :
		    ev->disposition == DMARC_P_QUARANTINE ? 3 : 1;
	return strcmp(ev->result, "temperror") == 0 ? 2 : 0;
}

/* DMARC for each of the n author domains; ev gets the one that asks the
 * most (every author's domain is heard, RFC 7489 6.6.1). */
static void
dmarc_worst(struct checks *c, int n, char (*doms)[FROM_DOMAIN_MAX],
    const struct dkimv_report *rep, const char *spf, const char *spf_dom,
    struct dmarc_eval *ev)
{
	struct dmarc_eval one;
	int i;

	dmarc_evaluate(c->dns, c->psl, n > 0 ? doms[0] : "", rep, spf, spf_dom,
	    ev);
	for (i = 1; i < n; i++) {
		dmarc_evaluate(c->dns, c->psl, doms[i], rep, spf, spf_dom, &one);
		if (dmarc_weight(&one) > dmarc_weight(ev))
			*ev = one;
	}
}

static void
run_auth(struct api *api, const char *req_id, const struct ingest *in,
    const char *key_id, struct check_result *res, struct auth_summary *sum)
{
	struct checks *c = api->checks;
	struct edge_info edge;
	struct dkimv_report *rep;
	struct authres *ar;
	struct authres_result *r;
	struct dmarc_eval ev;
	struct dkim_input di;
	struct reply rp;
	char from[FROM_DOMAINS_MAX][FROM_DOMAIN_MAX], spf_dom[256];
	int edge_key = is_edge_key(c, key_id), fr, dkim_error = 0;
	size_t i, w = 0;

	rep = calloc(1, sizeof(*rep));
	ar = calloc(1, sizeof(*ar));
	if (rep == NULL || ar == NULL) {
		free(rep);
		free(ar);
		reply_set(&rp, 451, "4.3.0", "out of memory");
		verdict_temp(res, &rp, 5);
		return;
	}
	snprintf(ar->authserv_id, sizeof(ar->authserv_id), "%s",
	    api->authserv_id);
	memset(&edge, 0, sizeof(edge));
	if (edge_key)
		edge_read(in->hdr.data, in->hdr.len, c->edge_id, &edge);
	else
		edge.arc_sets = arc_count_sets(in->hdr.data, in->hdr.len);

	/* DKIM */
	if (c->dkim_verify) {
		memset(&di, 0, sizeof(di));
		di.hdr = in->hdr.data;
		di.hdr_len = in->hdr.len;
		di.fd = in->fd;
		if (in->fd >= 0) {
			di.off = 0;
			di.len = in->body_len;
		} else {
			di.body = in->body.data ? in->body.data : "";
			di.body_len = in->body.len;
		}
		if (dkimv_verify(c->dkimv, req_id, &di, rep) != 0) {
			rep->nsig = 1;
			snprintf(rep->sig[0].result, sizeof(rep->sig[0].result),
			    "temperror");
			snprintf(rep->sig[0].why, sizeof(rep->sig[0].why),
			    "verification failed");
			dkim_error = 1;
		}
		if (rep->nsig == 0)
			authres_add(ar, "dkim", "none", NULL);
		for (i = 0; i < rep->nsig; i++) {
			const struct dkimv_sig *s = &rep->sig[i];

			r = authres_add(ar, "dkim", s->result,
			    s->why[0] ? s->why : NULL);
			if (r == NULL)
				break;
			if (s->domain[0])
				authres_add_prop(r, "header", "d", s->domain);
			if (s->selector[0])
				authres_add_prop(r, "header", "s", s->selector);
			if (s->alg[0])
				authres_add_prop(r, "header", "a", s->alg);
			if (s->b[0])
				authres_add_prop(r, "header", "b", s->b);
			if (w + strlen(s->result) + 2 < sizeof(sum->dkim)) {
				if (w > 0)
					sum->dkim[w++] = ',';
				memcpy(sum->dkim + w, s->result,
				    strlen(s->result) + 1);
				w += strlen(s->result);
			}
		}
		if (rep->nsig == 0)
			snprintf(sum->dkim, sizeof(sum->dkim), "none");
	}

	/* SPF: only what the edge said, only for a Worker key */
	if (edge_key && edge.spf[0] && spf_result_valid(edge.spf)) {
		r = authres_add(ar, "spf", edge.spf, edge.spf_comment[0] ?
		    edge.spf_comment : NULL);
		if (r != NULL && edge.mailfrom[0])
			authres_add_prop(r, "smtp", "mailfrom", edge.mailfrom);
		else if (r != NULL && edge.helo[0])
			authres_add_prop(r, "smtp", "helo", edge.helo);
		snprintf(sum->spf, sizeof(sum->spf), "%s", edge.spf);
	} else {
		authres_add(ar, "spf", "none", edge_key ?
		    "no SPF result from the edge" :
		    "not received through the edge");
		snprintf(sum->spf, sizeof(sum->spf), "none");
	}
	snprintf(sum->ip, sizeof(sum->ip), "%s", edge.client_ip);
	snprintf(sum->helo, sizeof(sum->helo), "%s", edge.helo);

	/* DMARC */
	if (c->dkim_verify) {
		fr = from_domains(in->hdr.data, in->hdr.len, from,
		    FROM_DOMAINS_MAX);
		if (fr < 0) {
			/* Authors we cannot read: no policy can be looked
			 * up, and none may be escaped that way. */
			r = authres_add(ar, "dmarc", "permerror",
			    "a From field that cannot be read");
			snprintf(sum->dmarc, sizeof(sum->dmarc), "permerror");
			verdict_junk(res);
		} else {
			if (edge.mailfrom[0])
				snprintf(spf_dom, sizeof(spf_dom), "%s",
				    domain_of(edge.mailfrom));
			else
				snprintf(spf_dom, sizeof(spf_dom), "%s", edge.helo);
			dmarc_worst(c, fr, from, rep, sum->spf, spf_dom, &ev);
			r = authres_add(ar, "dmarc", ev.result,
			    ev.comment[0] ? ev.comment : NULL);
			if (r != NULL && ev.from[0])
				authres_add_prop(r, "header", "from", ev.from);
			snprintf(sum->dmarc, sizeof(sum->dmarc), "%s", ev.result);
			/* The signatures could not be checked here (I/O, out
			 * of memory): a "fail" without them means nothing. */
			if (dkim_error && strcmp(ev.result, "fail") == 0) {
				reply_set(&rp, 451, "4.7.5", "DKIM verification "
				    "failed here, try again later");
				verdict_temp(res, &rp, 30);
			} else if (strcmp(ev.result, "temperror") == 0) {
				reply_set(&rp, 451, "4.4.3", "DMARC: cannot "
				    "check the policy of %s now, try again "
				    "later", ev.from);
				verdict_temp(res, &rp, 60);
			} else if (strcmp(ev.result, "fail") == 0 &&
			    ev.disposition == DMARC_P_REJECT) {
				if (c->dmarc_reject == DMARC_ACT_YES) {
					reply_set(&rp, 550, "5.7.1", "DMARC "
					    "policy of %s says reject: the "
					    "message failed authentication",
					    ev.from);
					verdict_reject(res, &rp);
				} else if (c->dmarc_reject ==
				    DMARC_ACT_QUARANTINE)
					verdict_junk(res);
			} else if (strcmp(ev.result, "fail") == 0 &&
			    ev.disposition == DMARC_P_QUARANTINE)
				verdict_junk(res);
		}
	}

	/* ARC: the edge's word; without an edge, only "there is none" */
	if (edge_key && edge.arc[0]) {
		char com[320];

		snprintf(com, sizeof(com), "%d set%s, checked by %s",
		    edge.arc_sets, edge.arc_sets == 1 ? "" : "s", c->edge_id);
		r = authres_add(ar, "arc", edge.arc, com);
		if (r != NULL && edge.client_ip[0])
			authres_add_prop(r, "smtp", "remote-ip", edge.client_ip);
		snprintf(sum->arc, sizeof(sum->arc), "%s", edge.arc);
	} else if (edge.arc_sets == 0) {
		authres_add(ar, "arc", "none", NULL);
		snprintf(sum->arc, sizeof(sum->arc), "none");
	} else
		snprintf(sum->arc, sizeof(sum->arc), "unchecked");

	if (authres_write(&res->headers, ar) != 0) {
		reply_set(&rp, 451, "4.3.0", "header fields too large");
		verdict_temp(res, &rp, 5);
	}
	free(rep);
	free(ar);
}

static void
run_spam(struct api *api, const char *req_id, const struct envelope *env,
    const struct ingest *in, const struct auth_summary *sum,
    struct check_result *res, char *out, size_t outsz)
{
	struct checks *c = api->checks;
	struct spam_request rq;
	struct spam_result sr;
	const char **rcpts;
	struct reply rp;
	size_t i;

	if ((rcpts = calloc(env->nrcpt, sizeof(*rcpts))) == NULL) {
		reply_set(&rp, 451, "4.3.0", "out of memory");
		verdict_temp(res, &rp, 5);
		return;
	}
	for (i = 0; i < env->nrcpt; i++)
		rcpts[i] = env->rcpts[i].addr;
	memset(&rq, 0, sizeof(rq));
	rq.req_id = req_id;
	rq.mail_from = env->mail_from;
	rq.rcpts = rcpts;
	rq.nrcpt = env->nrcpt;
	rq.ip = sum->ip;
	rq.helo = sum->helo;
	rq.prefix = res->headers.data ? res->headers.data : "";
	rq.prefix_len = res->headers.len;
	rq.hdr = in->hdr.data;
	rq.hdr_len = in->hdr.len;
	rq.fd = in->fd;
	if (in->fd >= 0)
		rq.len = in->body_len;
	else {
		rq.mem = in->body.data ? in->body.data : "";
		rq.mem_len = in->body.len;
	}
	spam_check(c->rspamd_url, c->rspamd_timeout_ms, &rq, &sr);
	free(rcpts);
	if (!sr.ok) {
		snprintf(out, outsz, "error");
		log_warnx("id=%s event=rspamd_failed why=\"%s\" fail_open=%s",
		    req_id, sr.why, c->rspamd_fail_open ? "yes" : "no");
		if (!c->rspamd_fail_open) {
			reply_set(&rp, 451, "4.7.1", "spam filter unavailable, "
			    "try again later");
			verdict_temp(res, &rp, 60);
		}
		return;
	}
	snprintf(out, outsz, "%s/%.2f", sr.action, sr.score);
	if (strcmp(sr.action, "reject") == 0) {
		reply_set(&rp, 550, "5.7.1", "message refused as spam "
		    "(score %.2f)", sr.score);
		verdict_reject(res, &rp);
		return;
	}
	if (strcmp(sr.action, "soft reject") == 0 ||
	    strcmp(sr.action, "greylist") == 0) {
		reply_set(&rp, 451, "4.7.1", "try again later (%s)", sr.action);
		verdict_temp(res, &rp, strcmp(sr.action, "greylist") == 0 ?
		    300 : 60);
		return;
	}
	/* "no action" is clean; every other action (add header, rewrite
	 * subject, and those set by rules: quarantine, discard, ...) is
	 * at least Junk, never the inbox. */
	if (strcmp(sr.action, "no action") != 0) {
		verdict_junk(res);
		buf_puts(&res->headers, "X-Spam-Flag: YES\r\n");
	} else
		buf_puts(&res->headers, "X-Spam-Flag: NO\r\n");
	buf_printf(&res->headers, "X-Spam-Score: %.2f / %.2f\r\n"
	    "X-Spam-Action: %s\r\n", sr.score, sr.required,
	    strpbrk(sr.action, "\r\n") == NULL ? sr.action : "?");
	if (sr.symbols[0] && strpbrk(sr.symbols, "\r\n") == NULL)
		buf_printf(&res->headers, "X-Spam-Symbols: %s\r\n", sr.symbols);
}

void
checks_run(struct api *api, const char *req_id, const struct envelope *env,
    const struct ingest *in, const char *key_id, struct check_result *res)
{
	struct checks *c = api->checks;
	struct auth_summary sum;
	struct scan_result sc;
	struct reply rp;
	char spam[64] = "off", q[300];
	double t0 = now_ms(), t_scan = 0, t_auth = 0, t_spam = 0;

	memset(res, 0, sizeof(*res));
	memset(&sum, 0, sizeof(sum));
	memset(&sc, 0, sizeof(sc));
	buf_init(&res->headers, HEADERS_MAX);
	if (c == NULL) {
		reply_set(&rp, 451, "4.3.0", "checks not initialised");
		verdict_temp(res, &rp, 30);
		return;
	}

	if (c->scanner != NULL) {
		struct scan_input si;

		memset(&si, 0, sizeof(si));
		si.prefix = in->hdr.data;
		si.prefix_len = in->hdr.len;
		si.fd = in->fd;
		if (in->fd >= 0)
			si.len = in->body_len;
		else {
			si.mem = in->body.data ? in->body.data : "";
			si.mem_len = in->body.len;
		}
		scan_message(c->scanner, &si, &sc);
		t_scan = sc.ms;
		if (sc.verdict != SCAN_CLEAN) {
			scan_reply(&sc, &rp);
			if (sc.verdict == SCAN_ERROR) {
				verdict_temp(res, &rp, 60);
				res->scan_unfinished = in->fd >= 0;
			}
			else
				verdict_reject(res, &rp);
		}
	}
	if (res->verdict != CHECK_REJECT) {
		double t = now_ms();

		run_auth(api, req_id, in, key_id, res, &sum);
		t_auth = now_ms() - t;
	}
	if (c->rspamd_url[0] && res->verdict != CHECK_REJECT &&
	    res->verdict != CHECK_TEMP) {
		double t = now_ms();

		run_spam(api, req_id, env, in, &sum, res, spam, sizeof(spam));
		t_spam = now_ms() - t;
	}
	if (res->verdict == CHECK_JUNK)
		buf_puts(&res->headers, "X-Edgemail-Junk: yes\r\n");
	if (res->headers.len == 0)	/* scan refused before auth ran */
		buf_printf(&res->headers, "Authentication-Results: %s; none\r\n",
		    api->authserv_id);
	log_info("id=%s event=checks verdict=%s virus=%s%s%s dkim=%s spf=%s "
	    "dmarc=%s arc=%s spam=\"%s\" ms=%.1f scan_ms=%.1f auth_ms=%.1f "
	    "spam_ms=%.1f%s%s", req_id, check_verdict_name(res->verdict),
	    c->scanner ? scan_verdict_name(sc.verdict) : "off",
	    sc.name[0] ? ":" : "", sc.name[0] ? sc.name : "",
	    sum.dkim[0] ? sum.dkim : "-", sum.spf[0] ? sum.spf : "-",
	    sum.dmarc[0] ? sum.dmarc : "-", sum.arc[0] ? sum.arc : "-", spam,
	    now_ms() - t0, t_scan, t_auth, t_spam,
	    res->verdict >= CHECK_REJECT ? " reply=" : "",
	    res->verdict >= CHECK_REJECT ? log_quote(res->reply.text, q,
	    sizeof(q)) : "");
}

void
check_result_free(struct check_result *res)
{
	buf_free(&res->headers);
}
