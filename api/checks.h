/*
 * checks.h - the inbound checks of edgemail-api, run once per message
 * before delivery (DESIGN section 1: verify, spam, scan):
 *
 *   virus     libclamav in process (lib/scan.h)
 *   DKIM      every signature verified locally (lib/dkimverify.h)
 *   SPF       carried from the edge: only from the topmost, edge-added
 *             block of a request signed with a Worker key (edge_key_ids)
 *   ARC       the edge's arc= result, from the same block
 *   DMARC     policy lookup and alignment, relaxed and strict, with the
 *             organizational domain from the Public Suffix List
 *   spam      rspamd's /checkv2 (api/spam.c)
 *
 * The pipeline calls checks_run() once and acts on the verdict: ACCEPT or
 * JUNK deliver with res->headers on top (our Authentication-Results and
 * X-Spam-* / X-Edgemail-Junk fields; the global Sieve script files JUNK
 * into the Junk folder), REJECT answers 422 with res->reply, TEMP answers
 * 503 with Retry-After.  A failure of DNS, the scanner or rspamd is TEMP,
 * never REJECT and never a silent ACCEPT.
 */
#ifndef EDGEMAIL_API_CHECKS_H
#define EDGEMAIL_API_CHECKS_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/authres.h"
#include "lib/buf.h"
#include "lib/reply.h"

struct api;
struct envelope;
struct ingest;
struct hdr_field;
struct dns_resolver;
struct psl;
struct dkimv_report;

enum check_verdict {
	CHECK_ACCEPT = 0,
	CHECK_JUNK,
	CHECK_REJECT,
	CHECK_TEMP,
};

struct check_result {
	enum check_verdict verdict;
	struct reply reply;		/* REJECT: 5xx; TEMP: 4xx */
	int	 retry_after;		/* TEMP: seconds */
	struct buf headers;		/* fields to put on top, CRLF ends */
	int	 scan_unfinished;	/* the scan failed: the scanner may still
					 * read the message's spill file */
};

/* Set up api->checks from the configuration (DNS resolver, PSL,
 * libopendkim, libclamav engine, libcurl).  Start-up only. */
int	checks_init(struct api *api, char *err, size_t errsz);
void	checks_free(struct api *api);

/* Run every check of one message; res must be released with
 * check_result_free().  Never fails: trouble is a TEMP verdict. */
void	checks_run(struct api *api, const char *req_id,
	    const struct envelope *env, const struct ingest *in,
	    const char *key_id, struct check_result *res);
void	check_result_free(struct check_result *res);
const char *check_verdict_name(enum check_verdict v);

/* Scanner state for /readyz: 1 ready, 0 not ready (why filled), -1
 * scanning turned off (scan = no). */
int	checks_scanner_state(struct api *api, char *why, size_t whysz);

/* Whether an incoming header field is one the checks write themselves
 * (X-Spam-*, X-Edgemail-Junk) and must be dropped from the message. */
int	checks_strip_field(const struct api *api, const struct hdr_field *f);

/* ---- internals shared by checks.c, verify.c and spam.c ---- */

/* What the edge (Cloudflare Email Routing, through the Worker) said,
 * from the topmost block of trace fields. */
struct edge_info {
	int	 present;		/* a trusted edge block was found */
	char	 spf[16];		/* SPF result, "" when none */
	char	 spf_comment[160];
	char	 mailfrom[256];		/* smtp.mailfrom / envelope-from */
	char	 helo[256];
	char	 client_ip[64];
	char	 arc[16];		/* the edge's arc= result, "" when none */
	int	 arc_sets;		/* ARC-Seal fields in the message */
};

/* Read the edge block of a header section (edge_id: the edge's
 * authserv-id).  Call only for requests signed with a Worker key. */
void	edge_read(const char *hdr, size_t len, const char *edge_id,
	    struct edge_info *e);
/* ARC-Seal fields in the whole header section. */
int	arc_count_sets(const char *hdr, size_t len);

/* The author domains of every From field (and every mailbox in it),
 * lower-case and distinct, at most max: their number (0: none), or -1
 * when a From field cannot be read or names more than max domains.
 * DMARC is evaluated for each: several From fields or authors must not
 * hide one whose domain says reject (RFC 7489 6.6.1). */
#define FROM_DOMAIN_MAX		256
#define FROM_DOMAINS_MAX	8
int	from_domains(const char *hdr, size_t len,
	    char (*out)[FROM_DOMAIN_MAX], int max);

struct dmarc_eval {
	char	 result[16];		/* pass fail none temperror permerror */
	char	 from[256];		/* header.from */
	enum dmarc_policy policy;	/* the p= or sp= that applies */
	enum dmarc_policy disposition;	/* after pct; NONE when it passed */
	char	 comment[128];
};

/* Evaluate DMARC for from_domain given the DKIM results and the SPF
 * result (spf_result "" when unknown) for spf_domain. */
void	dmarc_evaluate(struct dns_resolver *dns, const struct psl *psl,
	    const char *from_dom, const struct dkimv_report *dkim,
	    const char *spf_result, const char *spf_domain,
	    struct dmarc_eval *ev);

/* rspamd (api/spam.c). */
struct spam_request {
	const char *req_id;
	const char *mail_from;
	const char *const *rcpts;
	size_t	 nrcpt;
	const char *ip;			/* NULL/"" when unknown */
	const char *helo;
	const char *prefix;		/* our fields, then the message */
	size_t	 prefix_len;
	const char *hdr;
	size_t	 hdr_len;
	int	 fd;
	off_t	 len;
	const char *mem;
	size_t	 mem_len;
};

struct spam_result {
	int	 ok;			/* 0: rspamd failed, why says how */
	char	 action[32];		/* "no action", "add header", ... */
	double	 score;
	double	 required;
	char	 symbols[400];		/* "SYM1,SYM2,..." */
	char	 why[160];
};

/* Load libcurl (once, when rspamd_url is set); -1 with err. */
int	spam_init(char *err, size_t errsz);
void	spam_cleanup(void);
void	spam_check(const char *url, long timeout_ms,
	    const struct spam_request *rq, struct spam_result *r);

#endif
