/*
 * pipeline.c - what happens to an authenticated message: the header
 * fields we add and remove, delivery of all recipients in one LMTP
 * transaction, and the outcome as an HTTP answer (DESIGN section 4).
 *
 * Classes never change on the way: an LMTP 4xx stays TEMP (HTTP 503, the
 * sender retries), a 5xx stays PERM (per recipient in a 200, or 422 when
 * every recipient is refused).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api.h"
#include "lib/authres.h"
#include "api/checks.h"
#include "lib/hdr.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lmtp/pool.h"

/*
 * Fault injection for the crash-safety tests: with EDGEMAIL_CRASHPOINT set
 * to a point's name the process kills itself there, exactly like kill -9.
 * Points: after_lmtp (delivered, nothing answered), after_spool
 * (committed, nothing answered).
 */
void
crashpoint(const char *where)
{
	const char *want = getenv("EDGEMAIL_CRASHPOINT");

	if (want != NULL && strcmp(want, where) == 0) {
		log_warnx("event=crashpoint at=%s", where);
		raise(SIGKILL);
	}
}

void
outcome_set(struct outcome *out, unsigned http, const char *status,
    const char *fmt, ...)
{
	va_list ap;

	out->http = http;
	out->status = status;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* Is this Authentication-Results field one that claims to be ours?  The
 * authserv-id as RFC 8601 reads it: after comments, maybe quoted. */
static int
ar_claims_us(const struct api *api, const struct hdr_field *f)
{
	char id[AUTHRES_VALUE_MAX];

	return authres_id(f->value, f->value_len, id, sizeof(id)) == 0 &&
	    strcasecmp(id, api->authserv_id) == 0;
}

/*
 * The fields we put on top, then the message's own header section with
 * any forged Authentication-Results for our authserv-id removed.
 */
static int
build_prefix(struct api *api, const char *req_id, const char *key_id,
    const char *delivery_id, const struct envelope *env,
    const struct ingest *in, const struct buf *checked, struct buf *out)
{
	char date[64];
	struct tm tm;
	time_t now = time(NULL);
	size_t pos = 0, copied = 0;
	struct hdr_field f;
	int rc;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (buf_printf(out, "Received: from api-client (key %s)\r\n"
	    "\tby %s (edgemail-api) with HTTPS id %s%s%s%s;\r\n\t%s\r\n",
	    key_id, api->hostname, req_id,
	    env->nrcpt == 1 ? "\r\n\tfor <" : "",
	    env->nrcpt == 1 ? env->rcpts[0].addr : "",
	    env->nrcpt == 1 ? ">" : "", date) != 0)
		return -1;
	/* The inbound checks: our Authentication-Results, X-Spam-* and
	 * X-Edgemail-Junk fields (api/checks.c). */
	if (buf_append(out, checked->data ? checked->data : "",
	    checked->len) != 0)
		return -1;
	/* Deduplicated per mailbox by the global Sieve script (RFC 7352
	 * "duplicate"): a retry of the same request, or a queue retry after
	 * a crash between LMTP and the journal, never gives a second copy. */
	if (buf_printf(out, "X-Edgemail-Delivery-Id: %s\r\n", delivery_id) != 0)
		return -1;
	while ((rc = hdr_next(in->hdr.data, in->hdr.len, &pos, &f)) == 1) {
		if ((hdr_is(&f, "Authentication-Results") && ar_claims_us(api, &f))
		    || hdr_is(&f, "X-Edgemail-Delivery-Id") ||
		    checks_strip_field(api, &f)) {
			if (buf_append(out, in->hdr.data + copied,
			    f.start - copied) != 0)
				return -1;
			copied = f.end;
		}
	}
	return buf_append(out, in->hdr.data + copied, in->hdr.len - copied);
}

/* Commit the deferred recipients to the spool: 202, or 503 if the spool
 * cannot take the message (then nothing was promised).  rcpts/replies are
 * the envelope recipients and their outcomes so far. */
static void
defer(struct api *api, const char *req_id, const char *mail_from,
    const char *const *rcpts, const struct reply *replies, size_t n,
    const struct lmtp_msg *m, struct outcome *out)
{
	enum spool_state *states;
	struct reply r;
	size_t i;

	if ((states = calloc(n, sizeof(*states))) == NULL) {
		reply_set(&r, 451, "4.3.0", "out of memory");
		goto fail;
	}
	/* Refused recipients were reported in this answer already. */
	for (i = 0; i < n; i++)
		states[i] = replies[i].cls == REPLY_OK ? SPOOL_DONE :
		    replies[i].cls == REPLY_PERM ? SPOOL_BOUNCED : SPOOL_PENDING;
	if (spool_commit(api->spool, req_id, mail_from, rcpts, n, states,
	    replies, queue_next_try(api, 1, (int64_t)time(NULL)), m, &r) != 0)
		goto fail;
	free(states);
	crashpoint("after_spool");
	log_info("id=%s event=queued", req_id);
	outcome_set(out, 202, "queued", "%s", "");
	out->queued = 1;
	return;
fail:
	free(states);
	log_warnx("id=%s event=spool_failed code=%d text=\"%s\"", req_id, r.code,
	    r.text);
	outcome_set(out, 503, "unavailable", "%d %s %s", r.code, r.enhanced,
	    r.text);
	out->reply = r;
	out->has_reply = 1;
	out->retry_after = 30;
}

void
pipeline_deliver(struct api *api, const char *req_id, const char *key_id,
    const char *idem_delivery_id, struct envelope *env, struct ingest *in,
    struct lmtp_conn **begun, struct outcome *out)
{
	char delivery_id[65];
	struct buf prefix;
	struct check_result cr;
	struct lmtp_msg m;
	const char **rcpts;
	struct reply *replies;
	size_t i, nok = 0, ntemp = 0, nperm = 0;
	const struct reply *first_temp = NULL, *first_perm = NULL;

	rcpts = envelope_addrs(env);
	replies = calloc(env->nrcpt, sizeof(*replies));
	if (rcpts == NULL || replies == NULL) {
		free(rcpts);
		free(replies);
		outcome_set(out, 503, "unavailable", "out of memory");
		out->retry_after = 5;
		return;
	}
	if (in->hdr_broken)
		log_info("id=%s event=header_section_cut why=\"a line that is "
		    "not a header field; it and the rest are body\"", req_id);
	/* Virus scan, DKIM/SPF/DMARC/ARC, spam: refuse or defer the whole
	 * message here, or deliver it with the fields they add. */
	checks_run(api, req_id, env, in, key_id, &cr);
	if (cr.scan_unfinished)
		in->spill_drop = 1;
	if (cr.verdict == CHECK_REJECT || cr.verdict == CHECK_TEMP) {
		int perm = cr.verdict == CHECK_REJECT;

		outcome_set(out, perm ? 422 : 503, perm ? "rejected" :
		    "unavailable", "%d %s %s", cr.reply.code, cr.reply.enhanced,
		    cr.reply.text);
		out->reply = cr.reply;
		out->has_reply = 1;
		out->retry_after = perm ? 0 : cr.retry_after;
		metrics_delivery(perm ? MD_PERM : MD_TEMP, (unsigned)env->nrcpt);
		check_result_free(&cr);
		free(rcpts);
		free(replies);
		return;
	}
	buf_init(&prefix, (size_t)api->max_header_size + 4096 +
	    cr.headers.len);
	snprintf(delivery_id, sizeof(delivery_id), "%s",
	    idem_delivery_id != NULL ? idem_delivery_id : req_id);
	if (build_prefix(api, req_id, key_id, delivery_id, env, in,
	    &cr.headers, &prefix) != 0) {
		check_result_free(&cr);
		buf_free(&prefix);
		free(rcpts);
		free(replies);
		/* Its room was sized from the limits the header section
		 * passed already: out of memory, worth a retry. */
		outcome_set(out, 503, "unavailable", "out of memory");
		out->retry_after = 5;
		return;
	}
	memset(&m, 0, sizeof(m));
	m.prefix = prefix.data;
	m.prefix_len = prefix.len;
	m.eightbit = in->eightbit;
	m.fd = in->fd;
	if (in->fd >= 0) {
		m.off = 0;
		m.len = in->body_len;
	} else {
		m.mem = in->body.data ? in->body.data : "";
		m.mem_len = in->body.len;
	}
	/* Recipients through the directory (api/directory.c): unknown and
	 * suspended ones refused here, aliases and groups expanded into one
	 * LMTP transaction, one reply per envelope recipient. */
	api_deliver_rcpts(api, req_id, delivery_id, env->mail_from, rcpts,
	    env->nrcpt, &m, begun, replies);
	crashpoint("after_lmtp");

	for (i = 0; i < env->nrcpt; i++) {
		char q[320];

		env->rcpts[i].reply = replies[i];
		switch (replies[i].cls) {
		case REPLY_OK:
			nok++;
			break;
		case REPLY_TEMP:
			ntemp++;
			if (first_temp == NULL)
				first_temp = &env->rcpts[i].reply;
			break;
		case REPLY_PERM:
			nperm++;
			if (first_perm == NULL)
				first_perm = &env->rcpts[i].reply;
			break;
		}
		/* Refusals and deferrals get a line each; deliveries are
		 * counted on the request's "done" line (a line per delivered
		 * recipient was a tenth of the API's CPU at high rates). */
		log_msg(replies[i].cls == REPLY_OK ? LOG_LVL_DEBUG :
		    LOG_LVL_INFO, "id=%s event=rcpt rcpt=%s class=%s code=%d "
		    "enhanced=%s text=%s", req_id, env->rcpts[i].addr,
		    reply_class_name(replies[i].cls), replies[i].code,
		    replies[i].enhanced[0] ? replies[i].enhanced : "-",
		    log_quote(replies[i].text, q, sizeof(q)));
	}
	metrics_delivery(MD_DELIVERED, (unsigned)nok);
	metrics_delivery(MD_TEMP, (unsigned)ntemp);
	metrics_delivery(MD_PERM, (unsigned)nperm);

	out->n_ok = (unsigned)nok;
	out->n_temp = (unsigned)ntemp;
	out->n_perm = (unsigned)nperm;
	out->list_rcpts = 1;
	if (ntemp > 0) {
		log_info("id=%s event=deferred first=\"%d %s\"", req_id,
		    first_temp->code, first_temp->enhanced);
		if (api->queueing)
			defer(api, req_id, env->mail_from, rcpts, replies,
			    env->nrcpt, &m, out);
		else {
			outcome_set(out, 503, "unavailable", "%d %s %s",
			    first_temp->code, first_temp->enhanced,
			    first_temp->text);
			out->reply = *first_temp;
			out->has_reply = 1;
			out->retry_after = 60;
		}
	} else if (nok > 0) {
		outcome_set(out, 200, "delivered", "%s", "");
	} else {
		outcome_set(out, 422, "rejected", "%d %s %s", first_perm->code,
		    first_perm->enhanced, first_perm->text);
		out->reply = *first_perm;
		out->has_reply = 1;
	}
	free(rcpts);
	free(replies);
	buf_free(&prefix);
	check_result_free(&cr);
}
