/*
 * queue.c - the queue runner of edgemail-api.
 *
 * Recipients that got a temporary failure are in the spool (lib/spool.h)
 * with a next-try time.  One thread wakes every `queue_run_interval` (or
 * when kicked), retries what is due through the same fair LMTP pool as
 * live requests, journals every outcome, backs off exponentially with
 * jitter up to `queue_retry_max`, and after `max_queue_lifetime` gives up.
 * A recipient that failed for good is reported to the sender with a DSN
 * (RFC 3464, null sender, so it can never loop): delivered by LMTP when
 * the sender is in one of our domains, else committed to the relay's
 * outbound spool, which sends it out.  A message whose recipients are
 * all final is removed.  Held messages are left alone.  The runner also
 * sweeps expired idempotency records.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "lib/directory.h"
#include "lib/hdr.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lmtp/lmtp.h"

static struct api *api;
static pthread_t runner_tid;
static pthread_mutex_t runner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t runner_cond = PTHREAD_COND_INITIALIZER;
static int runner_stop, runner_kicked;

int64_t
queue_next_try(const struct api *a, int attempts, int64_t now)
{
	double delay = (double)a->retry_min;
	unsigned int r = 0;
	int i;

	for (i = 1; i < attempts && delay < (double)a->retry_max; i++)
		delay *= 2;
	if (delay > (double)a->retry_max)
		delay = (double)a->retry_max;
	/* +-20 % jitter, so deferred mail does not come back in waves. */
	if (getrandom(&r, sizeof(r), 0) == (ssize_t)sizeof(r))
		delay *= 0.8 + 0.4 * ((double)(r % 1000) / 1000.0);
	if (delay < 1)
		delay = 1;
	return now + (int64_t)delay;
}

void
queue_kick(void)
{
	pthread_mutex_lock(&runner_lock);
	runner_kicked = 1;
	pthread_cond_signal(&runner_cond);
	pthread_mutex_unlock(&runner_lock);
}

/* The header section of a queued message (at most 64 KiB of it). */
static void
queued_header(const struct spool_msg *m, struct buf *hdr)
{
	size_t hlen = m->msg_len > 64 * 1024 ? 64 * 1024 : (size_t)m->msg_len;
	char *orig;
	ssize_t n;

	buf_init(hdr, 64 * 1024 + 1);
	if ((orig = malloc(hlen + 1)) != NULL &&
	    (n = pread(m->fd, orig, hlen, m->msg_off)) > 0)
		buf_append(hdr, orig, hdr_section_end(orig, (size_t)n));
	free(orig);
}

/* The X-Edgemail-Delivery-Id the pipeline put on a queued message: the
 * same for every retry (api_deliver_rcpts keys forwards on it). */
static void
queued_delivery_id(const struct spool_msg *m, char *out, size_t outsz)
{
	struct buf hdr, v;

	queued_header(m, &hdr);
	buf_init(&v, 256);
	snprintf(out, outsz, "%s", m->id);
	/* hdr_find unfolds and trims the value. */
	if (hdr.data != NULL &&
	    hdr_find(hdr.data, hdr.len, "X-Edgemail-Delivery-Id", &v) == 1 &&
	    v.len > 0 && v.len < outsz)
		snprintf(out, outsz, "%s", v.data);
	buf_free(&v);
	buf_free(&hdr);
}

/* Is the sender of m in one of our domains (its DSN stays inside)? */
static int
sender_is_local(const struct spool_msg *m)
{
	const char *at = strrchr(m->mail_from, '@');

	return at != NULL && api->dir != NULL && directory_in_use(api->dir) &&
	    directory_is_local_domain(api->dir, at + 1);
}

/* Build and deliver a DSN for the failed recipients of m. 0: done (or no
 * DSN possible), -1: try again later. */
static int
send_dsn(struct spool_msg *m)
{
	struct buf b, hdr;
	char date[64], dsn_id[SPOOL_ID_MAX + 1];
	struct tm tm;
	time_t now = time(NULL);
	size_t i, nbounced = 0;
	struct reply r;
	struct lmtp_msg lm;
	const char *rcpt = m->mail_from;
	int rc = 0, src;

	if (m->mail_from[0] == '\0')
		return 0;	/* null sender: never bounce a bounce */
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* The original header section, for text/rfc822-headers. */
	queued_header(m, &hdr);

	buf_init(&b, 256 * 1024);
	buf_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\nMessage-ID: <dsn.%s@%s>\r\nAuto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s/dsn\"\r\n\r\n"
	    "This is a MIME-encapsulated message.\r\n\r\n--%s/dsn\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is the mail system at %s.\r\n\r\n"
	    "Your message could not be delivered to one or more recipients:\r\n\r\n",
	    api->hostname, m->mail_from, date, m->id, api->hostname, m->id,
	    m->id, api->hostname);
	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == SPOOL_FAILED)
			buf_printf(&b, "<%s>: %d %s %s\r\n", m->rcpts[i].addr,
			    m->rcpts[i].last.code, m->rcpts[i].last.enhanced,
			    m->rcpts[i].last.text);
	buf_printf(&b, "\r\n--%s/dsn\r\nContent-Type: message/delivery-status\r\n"
	    "\r\nReporting-MTA: dns; %s\r\nX-Edgemail-Queue-ID: %s\r\n",
	    m->id, api->hostname, m->id);
	for (i = 0; i < m->nrcpt; i++) {
		const struct spool_rcpt *sr = &m->rcpts[i];

		if (sr->state != SPOOL_FAILED)
			continue;
		buf_printf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\n"
		    "Status: %s\r\nDiagnostic-Code: smtp; %d %s\r\n", sr->addr,
		    sr->last.enhanced[0] ? sr->last.enhanced : "5.0.0",
		    sr->last.code, sr->last.text);
	}
	buf_printf(&b, "\r\n--%s/dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n",
	    m->id);
	buf_append(&b, hdr.data ? hdr.data : "", hdr.len);
	if (buf_printf(&b, "\r\n--%s/dsn--\r\n", m->id) != 0) {
		buf_free(&b);
		buf_free(&hdr);
		return 0;
	}
	memset(&lm, 0, sizeof(lm));
	lm.fd = -1;
	lm.mem = b.data;
	lm.mem_len = b.len;
	/* One id per DSN of this message (the recipients bounced before it
	 * count), so that a DSN committed just before a crash is not sent
	 * twice, and a later one for other recipients is still sent. */
	for (i = 0; i < m->nrcpt; i++)
		nbounced += m->rcpts[i].state == SPOOL_BOUNCED;
	snprintf(dsn_id, sizeof(dsn_id), "%.20s-dsn%zu", m->id, nbounced);
	if (sender_is_local(m))
		api_deliver_rcpts(api, m->id, dsn_id, "", &rcpt, 1, &lm, NULL,
		    &r);
	else if (api->outbound == NULL)
		reply_set(&r, 451, "4.3.0", "no outbound spool "
		    "(outbound_spool_dir) for a DSN to an outside sender");
	else if ((src = spool_commit(api->outbound, dsn_id, "", &rcpt, 1, NULL,
	    NULL, 0, &lm, &r)) == 0 || src == SPOOL_EXISTS)
		reply_set(&r, 250, "2.0.0", "DSN queued for the relay as %s",
		    dsn_id);
	if (r.cls == REPLY_TEMP)
		rc = -1;
	log_info("id=%s event=dsn to=%s class=%s code=%d", m->id, m->mail_from,
	    reply_class_name(r.cls), r.code);
	buf_free(&b);
	buf_free(&hdr);
	return rc;
}

/* Work on one queued message. */
static void
run_message(const char *id, int64_t now)
{
	struct spool_msg m;
	struct lmtp_msg lm;
	const char **rcpts = NULL;
	struct reply *replies = NULL;
	size_t *idx = NULL, i, n = 0, nfinal = 0, nfailed = 0;

	if (spool_load(api->spool, id, &m) != 0) {
		log_warnx("id=%s event=queue_unreadable", id);
		return;
	}
	if (m.hold)
		goto out;
	rcpts = calloc(m.nrcpt, sizeof(*rcpts));
	replies = calloc(m.nrcpt, sizeof(*replies));
	idx = calloc(m.nrcpt, sizeof(*idx));
	if (rcpts == NULL || replies == NULL || idx == NULL)
		goto out;
	for (i = 0; i < m.nrcpt; i++)
		if (m.rcpts[i].state == SPOOL_PENDING && m.rcpts[i].next_try <= now) {
			idx[n] = i;
			rcpts[n++] = m.rcpts[i].addr;
		}
	if (n > 0) {
		char delivery_id[65];

		spool_msg_source(&m, &lm);
		queued_delivery_id(&m, delivery_id, sizeof(delivery_id));
		/* Through the directory, like a live request: aliases and
		 * groups expand, suspended mailboxes are refused. */
		api_deliver_rcpts(api, m.id, delivery_id, m.mail_from, rcpts, n,
		    &lm, NULL, replies);
	}
	for (i = 0; i < n; i++) {
		struct spool_rcpt *sr = &m.rcpts[idx[i]];
		char q[320];

		sr->attempts++;
		sr->last = replies[i];
		if (replies[i].cls == REPLY_OK)
			sr->state = SPOOL_DONE;
		else if (replies[i].cls == REPLY_PERM)
			sr->state = SPOOL_FAILED;
		else if (now - m.created > api->queue_lifetime) {
			sr->state = SPOOL_FAILED;
			reply_set(&sr->last, 550, "5.4.7", "delivery time expired: "
			    "%d %s %s", replies[i].code, replies[i].enhanced,
			    replies[i].text);
		} else
			sr->next_try = queue_next_try(api, sr->attempts, now);
		spool_record(api->spool, &m, idx[i]);
		log_info("id=%s event=retry rcpt=%s attempt=%d state=%s code=%d "
		    "text=%s", m.id, sr->addr, sr->attempts,
		    spool_state_name(sr->state), sr->last.code,
		    log_quote(sr->last.text, q, sizeof(q)));
		metrics_delivery(replies[i].cls == REPLY_OK ? MD_DELIVERED :
		    replies[i].cls == REPLY_PERM ? MD_PERM : MD_TEMP, 1);
	}
	for (i = 0; i < m.nrcpt; i++)
		if (m.rcpts[i].state == SPOOL_FAILED)
			nfailed++;
	if (nfailed > 0 && send_dsn(&m) == 0)
		for (i = 0; i < m.nrcpt; i++)
			if (m.rcpts[i].state == SPOOL_FAILED) {
				m.rcpts[i].state = SPOOL_BOUNCED;
				spool_record(api->spool, &m, i);
			}
	for (i = 0; i < m.nrcpt; i++)
		if (m.rcpts[i].state == SPOOL_DONE ||
		    m.rcpts[i].state == SPOOL_BOUNCED)
			nfinal++;
	if (nfinal == m.nrcpt) {
		spool_remove(api->spool, m.id);
		log_info("id=%s event=queue_done", m.id);
	}
out:
	free(rcpts);
	free(replies);
	free(idx);
	spool_msg_free(&m);
}

static void *
runner(void *arg)
{
	time_t last_sweep = 0;

	(void)arg;
	for (;;) {
		struct timespec until;
		char **ids;
		size_t n, i;
		int64_t now;

		pthread_mutex_lock(&runner_lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += api->run_interval;
		while (!runner_stop && !runner_kicked &&
		    pthread_cond_timedwait(&runner_cond, &runner_lock, &until) == 0)
			;
		runner_kicked = 0;
		if (runner_stop) {
			pthread_mutex_unlock(&runner_lock);
			break;
		}
		pthread_mutex_unlock(&runner_lock);

		now = (int64_t)time(NULL);
		if (spool_list(api->spool, &ids, &n) == 0) {
			for (i = 0; i < n; i++)
				run_message(ids[i], now);
			spool_ids_free(ids, n);
		}
		if (now - last_sweep >= 60) {
			idem_sweep(api->idem);
			api_forward_sweep(api);
			last_sweep = now;
		}
	}
	return NULL;
}

int
queue_start(struct api *a)
{
	api = a;
	return pthread_create(&runner_tid, NULL, runner, NULL) == 0 ? 0 : -1;
}

void
queue_stop(void)
{
	pthread_mutex_lock(&runner_lock);
	runner_stop = 1;
	pthread_cond_signal(&runner_cond);
	pthread_mutex_unlock(&runner_lock);
	pthread_join(runner_tid, NULL);
}
