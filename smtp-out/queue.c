/*
 * queue.c - the relay's outbound queue runner.
 *
 * Messages live in the outbound spool (lib/spool, its own directory);
 * this file only decides when each is tried and what happens to each
 * recipient.  In memory there is a min-heap of (due time, queue id):
 * filled from the spool directory at start (so a restart delivers what a
 * crash left), fed by queue_commit() for new messages, and by the runners
 * themselves for retries.  `nthreads` runners pop due entries; a message
 * is worked on by one runner at a time (the `busy` list).
 *
 * One attempt of a message:
 *   - recipients in our domains are expanded through the directory
 *     (aliases, catch-alls) and delivered by LMTP in one transaction,
 *     with X-Edgemail-Delivery-Id on top (the global Sieve script drops a
 *     second copy to the same mailbox, so a crash between LMTP and the
 *     journal never gives a duplicate); their forwards to other domains
 *     become a new queued message for the relayhost;
 *   - other recipients go to the relayhost in one SMTP transaction
 *     (relay.c), with one outcome per recipient;
 *   - OK -> done; PERM -> failed; TEMP -> retried after
 *     queue_retry_min * 2^(attempts-1), at most queue_retry_max, until
 *     max_queue_lifetime has passed since the message arrived -> failed;
 *   - failed recipients are reported to the sender in one DSN (RFC 3464),
 *     delivered into their mailbox by LMTP when the sender is ours,
 *     otherwise queued for the relayhost with the null sender; a bounce
 *     is never bounced;
 *   - when every recipient is final the message leaves the spool;
 *     otherwise each changed recipient is journalled (fdatasync) and the
 *     message goes back into the heap for its earliest retry.
 *
 * Other programs change the spool too: edgemailctl (queue flush, retry,
 * hold, release, delete: journal records) and edgemail-api (forwards to
 * other domains, new files).  A rescan every queue_run_interval compares
 * each file's size with the size the runner last saw; a new or changed
 * file is tried at once.  The map (id -> due, size, busy) makes an older
 * heap entry for the same message stale, so a message is never in the
 * heap twice in effect and never worked on by two runners.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/hdr.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lib/srs.h"
#include "lmtp/lmtp.h"
#include "lmtp/pool.h"
#include "smtp-out/submit.h"

#define Q_THREADS_MAX	64
#define Q_DSN_HDR_MAX	(64 * 1024)	/* original header in a DSN */
#define Q_HOLD_RECHECK	300		/* seconds */

struct qent {
	int64_t	 due;
	char	 id[SPOOL_ID_MAX + 1];
};

/* What the runners know of one queued message. */
struct qmsg {
	char	 id[SPOOL_ID_MAX + 1];
	int64_t	 due;		/* the heap entry that counts */
	off_t	 size;		/* file size after our last look, -1 unknown */
	int	 busy;		/* a runner works on it */
	int	 seen;		/* found by the current rescan */
	struct qmsg *next;
};

#define Q_MAP_BUCKETS	4096

struct queue {
	struct submit *sv;
	struct lmtp_pool *lmtp;
	struct relay *relay;
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* runners: work is due */
	pthread_cond_t scan_cv;		/* the rescan thread: time to stop */
	struct qent *heap;
	size_t	 n, cap;
	struct qmsg *map[Q_MAP_BUCKETS];
	int	 stop;
	pthread_t threads[Q_THREADS_MAX];
	int	 nthreads;
	pthread_t scanner;
	int	 scanner_started;
	long long retry_min, retry_max, lifetime, run_interval;
	char	 srs_secret[256];	/* "": no SRS key (edgemail-api makes it) */
};

/* ---- the heap ------------------------------------------------------------ */

static void
heap_swap(struct queue *q, size_t a, size_t b)
{
	struct qent t = q->heap[a];

	q->heap[a] = q->heap[b];
	q->heap[b] = t;
}

static size_t
map_slot(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % Q_MAP_BUCKETS;
}

/* Called locked.  create: add an entry when missing. */
static struct qmsg *
map_get(struct queue *q, const char *id, int create)
{
	struct qmsg *m;
	size_t b = map_slot(id);

	for (m = q->map[b]; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	if (!create || (m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->size = -1;
	m->due = -1;
	m->next = q->map[b];
	q->map[b] = m;
	return m;
}

static void
map_del(struct queue *q, const char *id)
{
	struct qmsg **pp, *m;

	for (pp = &q->map[map_slot(id)]; (m = *pp) != NULL; pp = &m->next)
		if (strcmp(m->id, id) == 0) {
			*pp = m->next;
			free(m);
			return;
		}
}

/* Schedule id at due (called locked); an older entry becomes stale. */
static int
heap_push(struct queue *q, const char *id, int64_t due)
{
	struct qmsg *qm;
	size_t i;

	if ((qm = map_get(q, id, 1)) == NULL)
		return -1;
	if (q->n == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 256;
		struct qent *p = reallocarray(q->heap, ncap, sizeof(*p));

		if (p == NULL)
			return -1;
		q->heap = p;
		q->cap = ncap;
	}
	qm->due = due;
	i = q->n++;
	q->heap[i].due = due;
	snprintf(q->heap[i].id, sizeof(q->heap[i].id), "%s", id);
	while (i > 0 && q->heap[(i - 1) / 2].due > q->heap[i].due) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	pthread_cond_signal(&q->cv);
	return 0;
}

static void
heap_pop(struct queue *q, struct qent *out)
{
	size_t i = 0, c;

	*out = q->heap[0];
	q->heap[0] = q->heap[--q->n];
	for (;;) {
		c = 2 * i + 1;
		if (c >= q->n)
			break;
		if (c + 1 < q->n && q->heap[c + 1].due < q->heap[c].due)
			c++;
		if (q->heap[i].due <= q->heap[c].due)
			break;
		heap_swap(q, i, c);
		i = c;
	}
}

/* ---- set-up -------------------------------------------------------------- */

struct queue *
queue_new(struct submit *sv, struct lmtp_pool *lmtp, char *err, size_t errsz)
{
	struct queue *q;
	char e[256];

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	q->sv = sv;
	q->lmtp = lmtp;
	if (conf_get_duration(sv->conf, "queue_retry_min", &q->retry_min, e,
	    sizeof(e)) != 0 || conf_get_duration(sv->conf, "queue_retry_max",
	    &q->retry_max, e, sizeof(e)) != 0 ||
	    conf_get_duration(sv->conf, "max_queue_lifetime", &q->lifetime, e,
	    sizeof(e)) != 0 || conf_get_duration(sv->conf, "queue_run_interval",
	    &q->run_interval, e, sizeof(e)) != 0) {
		snprintf(err, errsz, "%s", e);
		free(q);
		return NULL;
	}
	if (q->retry_min < 1)
		q->retry_min = 1;
	if (q->retry_max < q->retry_min)
		q->retry_max = q->retry_min;
	if (q->run_interval < 1)
		q->run_interval = 1;
	/* Forwards from edgemail-api carry an SRS sender: their bounces
	 * go to the original sender.  Whichever program starts first makes
	 * the key; without one (unwritable) SRS bounces are not recognised. */
	if (srs_secret_load(conf_get(sv->conf, "srs_secret_file"),
	    q->srs_secret, sizeof(q->srs_secret), err, errsz) != 0) {
		log_warnx("event=no_srs_key reason=\"%s\"", err);
		q->srs_secret[0] = '\0';
	}
	if ((q->relay = relay_new(sv->conf, sv->hostname, err, errsz)) == NULL) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->scan_cv, NULL);
	return q;
}

void
queue_free(struct queue **qp)
{
	struct queue *q;
	size_t b;
	struct qmsg *m, *next;

	if (qp == NULL || (q = *qp) == NULL)
		return;

	relay_free(&q->relay);
	for (b = 0; b < Q_MAP_BUCKETS; b++)
		for (m = q->map[b]; m != NULL; m = next) {
			next = m->next;
			free(m);
		}
	free(q->heap);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	pthread_cond_destroy(&q->scan_cv);
	free(q);
	*qp = NULL;
}

void
queue_kick(struct queue *q, const char *id)
{
	pthread_mutex_lock(&q->mu);
	if (heap_push(q, id, 0) != 0)
		log_warnx("id=%s event=queue_kick_failed (out of memory: "
		    "picked up at the next start)", id);
	pthread_mutex_unlock(&q->mu);
}

int
queue_commit(struct queue *q, const char *id, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, const char *prefix,
    size_t prefix_len, const char *body, size_t body_len, int fd, off_t off,
    off_t len, struct reply *r)
{
	struct lmtp_msg m;

	memset(&m, 0, sizeof(m));
	m.prefix = prefix;
	m.prefix_len = prefix_len;
	m.fd = fd;
	if (fd >= 0) {
		m.off = off;
		m.len = len;
	} else {
		m.mem = body;
		m.mem_len = body_len;
	}
	int rc;

	if ((rc = spool_commit(q->sv->spool, id, mail_from, rcpts, nrcpt, NULL,
	    NULL, 0, &m, r)) != 0)
		return rc;
	queue_kick(q, id);
	return 0;
}

/* ---- one attempt ---------------------------------------------------------- */

static int64_t
backoff(const struct queue *q, int attempts)
{
	long long d = q->retry_min;

	while (--attempts > 0 && d < q->retry_max)
		d *= 2;
	return d < q->retry_max ? d : q->retry_max;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* The original header section of a spooled message (bounded). */
static void
read_header(const struct spool_msg *m, struct buf *out)
{
	char chunk[8192];
	off_t pos = m->msg_off, end = m->msg_off + m->msg_len;
	ssize_t n;
	size_t hend;

	while (pos < end && out->len < Q_DSN_HDR_MAX) {
		size_t want = sizeof(chunk);

		if ((off_t)want > end - pos)
			want = (size_t)(end - pos);
		if ((n = pread(m->fd, chunk, want, pos)) <= 0)
			break;
		if (buf_append(out, chunk, (size_t)n) != 0)
			break;
		pos += n;
		if (out->len >= 4 && memmem(out->data, out->len, "\r\n\r\n", 4))
			break;
	}
	hend = out->data != NULL ? hdr_section_end(out->data, out->len) : 0;
	out->len = hend;
	if (out->data != NULL)
		out->data[hend] = '\0';
}

/*
 * Queue the forwards of recipient i of m (outside targets of an alias)
 * once: retries of m (a mailbox of the same alias said 4xx) must not
 * send them again.  The forward's id is made from m's id and i, so a
 * crash between the commit and the journal record finds it queued
 * (SPOOL_EXISTS) instead of queueing a second copy.
 */
static void
forward_once(struct queue *q, struct spool_msg *m, size_t i,
    char *const *fwd, size_t nfwd, struct reply *out)
{
	char fid[SPOOL_ID_MAX + 1];
	struct lmtp_msg src;
	int rc;

	snprintf(fid, sizeof(fid), "%.24s-f%zu", m->id, i);
	spool_msg_source(m, &src);
	rc = queue_commit(q, fid, m->mail_from, (const char *const *)fwd, nfwd,
	    NULL, 0, NULL, 0, src.fd, src.off, src.len, out);
	if (rc != 0 && rc != SPOOL_EXISTS)
		return;
	reply_set(out, 250, "2.1.5", "Forwarded");
	if (spool_set_forwarded(q->sv->spool, m, i) != 0)
		log_warnx("id=%s event=journal_failed rcpt=%s (forward %s "
		    "is queued)", m->id, m->rcpts[i].addr, fid);
	log_info("id=%s event=forward rcpt=%s new_id=%s nforward=%zu%s", m->id,
	    m->rcpts[i].addr, fid, nfwd, rc == SPOOL_EXISTS ? " before=1" : "");
}

/*
 * LMTP for the recipients in `idx` (all in our domains): expand each,
 * deliver the union of mailboxes in one transaction, queue forwards.
 */
static void
deliver_local(struct queue *q, struct spool_msg *m, const size_t *idx,
    size_t n, struct reply *out)
{
	char ***mbox = calloc(n, sizeof(char **));
	size_t *nmbox = calloc(n, sizeof(size_t));
	const char **all = NULL;
	struct reply *rep = NULL;
	struct lmtp_msg lm;
	char prefix[128];
	size_t i, j, k, nall = 0, cap = 0;
	int oom = 0;

	if (mbox == NULL || nmbox == NULL) {
		for (i = 0; i < n; i++)
			reply_set(&out[i], 451, "4.3.0", "Out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		char **fwd = NULL;
		size_t nfwd = 0;
		const char *addr = m->rcpts[idx[i]].addr;

		if (owner_expand(q->sv->owner, addr, &mbox[i], &nmbox[i], &fwd,
		    &nfwd, &out[i]) != 0) {
			mbox[i] = NULL;
			nmbox[i] = 0;
			continue;
		}
		reply_set(&out[i], 250, "2.1.5", "Forwarded");
		if (nfwd > 0 && !m->rcpts[idx[i]].forwarded)
			forward_once(q, m, idx[i], fwd, nfwd, &out[i]);
		if (nfwd > 0) {
			owner_strings_free(fwd, nfwd);
			if (out[i].cls != REPLY_OK) {
				owner_strings_free(mbox[i], nmbox[i]);
				mbox[i] = NULL;
				nmbox[i] = 0;
				continue;
			}
		}
		for (j = 0; j < nmbox[i]; j++) {
			for (k = 0; k < nall; k++)
				if (strcasecmp(all[k], mbox[i][j]) == 0)
					break;
			if (k < nall)
				continue;
			if (nall == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				const char **p = reallocarray(all, ncap,
				    sizeof(*p));

				if (p == NULL) {
					oom = 1;
					break;
				}
				all = p;
				cap = ncap;
			}
			all[nall++] = mbox[i][j];
		}
	}
	/* Every mailbox in the transaction, or none: a recipient whose
	 * mailboxes did not all make it in must not look delivered. */
	if (oom || (nall > 0 && (rep = calloc(nall, sizeof(*rep))) == NULL)) {
		for (i = 0; i < n; i++)
			if (nmbox[i] > 0)
				reply_set(&out[i], 451, "4.3.0", "Out of memory");
		goto done;
	}
	if (nall > 0) {
		spool_msg_source(m, &lm);
		snprintf(prefix, sizeof(prefix), "X-Edgemail-Delivery-Id: %s\r\n",
		    m->id);
		lm.prefix = prefix;
		lm.prefix_len = strlen(prefix);
		lmtp_pool_send(q->lmtp, m->mail_from, all, nall, &lm, rep);
		/* Each envelope recipient: TEMP if any of its mailboxes is,
		 * else OK if any is, else the first refusal. */
		for (i = 0; i < n; i++) {
			int any_ok = 0, any_temp = -1, first_perm = -1;

			for (j = 0; j < nmbox[i]; j++) {
				for (k = 0; k < nall; k++)
					if (strcasecmp(all[k], mbox[i][j]) == 0)
						break;
				if (k == nall)
					continue;
				if (rep[k].cls == REPLY_OK)
					any_ok = 1;
				else if (rep[k].cls == REPLY_TEMP && any_temp < 0)
					any_temp = (int)k;
				else if (rep[k].cls == REPLY_PERM && first_perm < 0)
					first_perm = (int)k;
			}
			if (nmbox[i] == 0)
				continue;
			if (any_temp >= 0)
				out[i] = rep[any_temp];
			else if (any_ok)
				reply_set(&out[i], 250, "2.0.0", "Delivered");
			else if (first_perm >= 0)
				out[i] = rep[first_perm];
		}
	}
done:
	for (i = 0; mbox != NULL && i < n; i++)
		owner_strings_free(mbox[i], nmbox[i]);
	free(mbox);
	free(nmbox);
	free(all);
	free(rep);
}

/* The relayhost for the recipients in `idx`. */
static void
deliver_remote(struct queue *q, void **handle, struct spool_msg *m,
    const size_t *idx, size_t n, struct reply *out)
{
	const char **rcpts;
	size_t i;

	if (!relay_configured(q->relay)) {
		for (i = 0; i < n; i++)
			reply_set(&out[i], 451, "4.4.0", "No relayhost "
			    "configured: waiting in the queue");
		return;
	}
	if ((rcpts = calloc(n, sizeof(*rcpts))) == NULL) {
		for (i = 0; i < n; i++)
			reply_set(&out[i], 451, "4.3.0", "Out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		rcpts[i] = m->rcpts[idx[i]].addr;
	relay_send(q->relay, handle, m->mail_from, rcpts, n, m->fd, m->msg_off,
	    m->msg_len, out);
	free(rcpts);
}

/*
 * Report the failed recipients to the sender.  Returns 0 when the DSN
 * is delivered or queued (or owed to nobody), -1 to try again later.
 */
static int
bounce(struct queue *q, struct spool_msg *m)
{
	struct dsn_rcpt *dr;
	struct buf hdr, dsn;
	struct reply r;
	size_t i, nf = 0;
	char id[SUBMIT_ID_LEN + 1], srs_orig[ADDR_PATH_MAX + 1];
	const char *to = m->mail_from;
	int rc = -1;

	if (*to == '\0') {
		log_info("id=%s event=bounce_dropped why=null_sender", m->id);
		return 0;
	}
	if (q->srs_secret[0] != '\0' && strncasecmp(to, "SRS0=", 5) == 0 &&
	    srs_reverse(q->srs_secret, to, time(NULL), srs_orig,
	    sizeof(srs_orig)) == 0) {
		log_info("id=%s event=bounce_srs to=%s", m->id, srs_orig);
		to = srs_orig;
	}
	if ((dr = calloc(m->nrcpt, sizeof(*dr))) == NULL)
		return -1;
	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == SPOOL_FAILED) {
			dr[nf].addr = m->rcpts[i].addr;
			dr[nf].reply = &m->rcpts[i].last;
			dr[nf].failed = 1;
			nf++;
		}
	buf_init(&hdr, Q_DSN_HDR_MAX + 8192);
	buf_init(&dsn, Q_DSN_HDR_MAX + 64 * 1024);
	read_header(m, &hdr);
	submit_new_id(id);
	if (dsn_build(&dsn, q->sv->hostname, m->id, to, dr, nf, hdr.data,
	    hdr.len, m->created) != 0) {
		log_warnx("id=%s event=bounce_failed why=build", m->id);
		goto out;
	}
	if (owner_is_local(q->sv->owner, domain_of(to))) {
		struct lmtp_msg lm;
		char **mb = NULL, **fw = NULL;
		size_t nmb = 0, nfw = 0;
		struct reply *rep;

		/* Into the sender's own mailbox. */
		if (owner_expand(q->sv->owner, to, &mb, &nmb, &fw, &nfw, &r) != 0) {
			/* A sender that is no more: dropped; out of
			 * memory: tried again. */
			log_info("id=%s event=bounce_%s to=%s why=\"%s\"", m->id,
			    r.cls == REPLY_TEMP ? "deferred" : "dropped", to,
			    r.text);
			rc = r.cls == REPLY_TEMP ? -1 : 0;
			goto out;
		}
		owner_strings_free(fw, nfw);
		if (nmb == 0 || (rep = calloc(nmb, sizeof(*rep))) == NULL) {
			owner_strings_free(mb, nmb);
			rc = nmb == 0 ? 0 : -1;
			goto out;
		}
		memset(&lm, 0, sizeof(lm));
		lm.fd = -1;
		lm.mem = dsn.data;
		lm.mem_len = dsn.len;
		lm.eightbit = 1;
		lmtp_pool_send(q->lmtp, "", (const char *const *)mb, nmb, &lm, rep);
		rc = 0;
		for (i = 0; i < nmb; i++)
			if (rep[i].cls == REPLY_TEMP)
				rc = -1;
		log_info("id=%s event=bounce to=%s via=lmtp code=%d nfailed=%zu",
		    m->id, to, rep[0].code, nf);
		free(rep);
		owner_strings_free(mb, nmb);
	} else {
		const char *rc1[1] = { to };

		rc = queue_commit(q, id, "", rc1, 1, NULL, 0, dsn.data, dsn.len,
		    -1, 0, 0, &r);
		log_info("id=%s event=bounce to=%s via=queue dsn_id=%s rc=%d",
		    m->id, to, id, rc);
	}
out:
	buf_free(&hdr);
	buf_free(&dsn);
	free(dr);
	return rc;
}

/* Journal the recipients marked in changed (and unmark them); -1 at the
 * first failure (disk full: the next attempt starts from what is on
 * disk). */
static int
journal_changed(struct queue *q, struct spool_msg *m, unsigned char *changed)
{
	size_t i;

	for (i = 0; i < m->nrcpt; i++) {
		if (!changed[i])
			continue;
		if (spool_record(q->sv->spool, m, i) != 0) {
			log_warnx("id=%s event=journal_failed error=\"%s\"",
			    m->id, strerror(errno));
			return -1;
		}
		changed[i] = 0;
	}
	return 0;
}

/* One attempt; returns when to try again (0: nothing left) and the file
 * size after it in *size_r. */
static int64_t
attempt(struct queue *q, void **handle, const char *id, off_t *size_r)
{
	struct spool_msg m;
	struct reply *out = NULL;
	size_t *loc = NULL, *rem = NULL, nloc = 0, nrem = 0, i;
	unsigned char *changed = NULL;
	int64_t now = time(NULL), next = 0;
	int expired, all_final = 1, need_bounce = 0;

	if (spool_load(q->sv->spool, id, &m) != 0) {
		log_debug("id=%s event=queue_gone", id);
		return 0;
	}
	*size_r = m.file_len;
	if (m.hold) {
		spool_msg_free(&m);
		return now + Q_HOLD_RECHECK;
	}
	expired = now >= m.created + q->lifetime;
	if ((loc = calloc(m.nrcpt, sizeof(*loc))) == NULL ||
	    (rem = calloc(m.nrcpt, sizeof(*rem))) == NULL ||
	    (changed = calloc(m.nrcpt, 1)) == NULL ||
	    (out = calloc(m.nrcpt, sizeof(*out))) == NULL) {
		next = now + 60;
		goto done;
	}
	for (i = 0; i < m.nrcpt; i++) {
		struct spool_rcpt *r = &m.rcpts[i];

		if (r->state != SPOOL_PENDING || r->next_try > now)
			continue;
		if (owner_is_local(q->sv->owner, domain_of(r->addr)))
			loc[nloc++] = i;
		else
			rem[nrem++] = i;
	}
	if (nloc > 0) {
		struct reply *lr = calloc(nloc, sizeof(*lr));

		if (lr != NULL) {
			deliver_local(q, &m, loc, nloc, lr);
			for (i = 0; i < nloc; i++)
				out[loc[i]] = lr[i];
			free(lr);
		} else
			for (i = 0; i < nloc; i++)
				reply_set(&out[loc[i]], 451, "4.3.0", "Out of memory");
	}
	if (nrem > 0) {
		struct reply *rr = calloc(nrem, sizeof(*rr));

		if (rr != NULL) {
			deliver_remote(q, handle, &m, rem, nrem, rr);
			for (i = 0; i < nrem; i++)
				out[rem[i]] = rr[i];
			free(rr);
		} else
			for (i = 0; i < nrem; i++)
				reply_set(&out[rem[i]], 451, "4.3.0", "Out of memory");
	}
	/* Outcomes of the recipients tried now. */
	for (i = 0; i < nloc + nrem; i++) {
		size_t k = i < nloc ? loc[i] : rem[i - nloc];
		struct spool_rcpt *r = &m.rcpts[k];
		char qt[320];

		r->attempts++;
		r->last = out[k];
		changed[k] = 1;
		switch (out[k].cls) {
		case REPLY_OK:
			r->state = SPOOL_DONE;
			break;
		case REPLY_PERM:
			r->state = SPOOL_FAILED;
			break;
		case REPLY_TEMP:
			if (expired) {
				r->state = SPOOL_FAILED;
				snprintf(r->last.text, sizeof(r->last.text),
				    "delivery time expired; last error: %d %s %.180s",
				    out[k].code, out[k].enhanced, out[k].text);
				r->last.code = 550;
				snprintf(r->last.enhanced,
				    sizeof(r->last.enhanced), "5.4.7");
				r->last.cls = REPLY_PERM;
			} else
				r->next_try = now + backoff(q, r->attempts);
			break;
		}
		log_info("id=%s event=rcpt rcpt=%s via=%s class=%s code=%d "
		    "enhanced=%s attempt=%d text=%s", m.id, r->addr,
		    i < nloc ? "lmtp" : "relay", reply_class_name(out[k].cls),
		    out[k].code, out[k].enhanced[0] ? out[k].enhanced : "-",
		    r->attempts, log_quote(out[k].text, qt, sizeof(qt)));
	}
	/* Recipients that expired without being tried (waiting). */
	for (i = 0; i < m.nrcpt; i++) {
		struct spool_rcpt *r = &m.rcpts[i];

		if (r->state == SPOOL_PENDING && expired && !changed[i]) {
			r->state = SPOOL_FAILED;
			reply_set(&r->last, 550, "5.4.7",
			    "delivery time expired");
			changed[i] = 1;
		}
		if (r->state == SPOOL_FAILED)
			need_bounce = 1;
	}
	/* The outcomes go on disk before the bounce goes out: a crash
	 * after it must neither send them again nor bounce twice.  (A
	 * message that needs no bounce is journalled below, or removed.) */
	if (need_bounce && journal_changed(q, &m, changed) == 0 &&
	    bounce(q, &m) == 0) {
		for (i = 0; i < m.nrcpt; i++)
			if (m.rcpts[i].state == SPOOL_FAILED) {
				m.rcpts[i].state = SPOOL_BOUNCED;
				changed[i] = 1;
			}
	}
	for (i = 0; i < m.nrcpt; i++) {
		enum spool_state st = m.rcpts[i].state;

		if (st == SPOOL_PENDING || st == SPOOL_FAILED) {
			int64_t t = st == SPOOL_FAILED ? now + q->retry_min :
			    m.rcpts[i].next_try;

			all_final = 0;
			if (next == 0 || t < next)
				next = t;
		}
	}
	if (all_final) {
		/* Nothing left: the file goes; no journal needed. */
		if (spool_remove(q->sv->spool, m.id) != 0)
			log_warnx("id=%s event=spool_remove_failed error=\"%s\"",
			    m.id, strerror(errno));
		else
			log_info("id=%s event=removed", m.id);
		next = 0;
		goto done;
	}
	(void)journal_changed(q, &m, changed);
	if (next <= now)
		next = now + 1;
	*size_r = m.file_len;
done:
	free(loc);
	free(rem);
	free(changed);
	free(out);
	spool_msg_free(&m);
	return next;
}

/* ---- the runners ---------------------------------------------------------- */

static void *
runner(void *arg)
{
	struct queue *q = arg;
	void *handle = NULL;
	struct qmsg *qm;
	struct qent e;
	struct timespec ts;
	int64_t now, next;
	off_t size;

	pthread_mutex_lock(&q->mu);
	while (!q->stop) {
		if (q->n == 0) {
			pthread_cond_wait(&q->cv, &q->mu);
			continue;
		}
		now = time(NULL);
		if (q->heap[0].due > now) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(q->heap[0].due - now);
			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
			continue;
		}
		heap_pop(q, &e);
		qm = map_get(q, e.id, 0);
		if (qm == NULL || qm->busy || qm->due != e.due)
			continue;	/* stale entry, or another runner has it */
		qm->busy = 1;
		pthread_mutex_unlock(&q->mu);
		size = -1;
		next = attempt(q, &handle, e.id, &size);
		pthread_mutex_lock(&q->mu);
		qm->busy = 0;
		qm->size = size;
		if (next == 0)
			map_del(q, e.id);
		else if (heap_push(q, e.id, next) != 0)
			log_warnx("id=%s event=requeue_failed", e.id);
	}
	pthread_mutex_unlock(&q->mu);
	relay_handle_free(&handle);
	return NULL;
}

/* Look for new or changed files (other programs' work, see above). */
static void
rescan(struct queue *q)
{
	char **ids = NULL, path[1200];
	size_t n = 0, i, b;
	struct qmsg *qm;
	struct stat st;
	int fresh = 0;

	if (spool_list(q->sv->spool, &ids, &n) != 0)
		return;
	pthread_mutex_lock(&q->mu);
	for (i = 0; i < n; i++) {
		/* The file of a committed message (lib/spool.h). */
		snprintf(path, sizeof(path), "%s/queue/%s", q->sv->spool_dir,
		    ids[i]);
		if (stat(path, &st) != 0)
			continue;
		qm = map_get(q, ids[i], 0);
		if (qm != NULL) {
			qm->seen = 1;
			if (qm->busy || qm->size == st.st_size || qm->size < 0)
				continue;
		}
		if (heap_push(q, ids[i], 0) == 0) {
			if ((qm = map_get(q, ids[i], 0)) != NULL) {
				qm->size = st.st_size;
				qm->seen = 1;
			}
			fresh++;
		}
	}
	/* Files gone (edgemailctl queue delete): forget them. */
	for (b = 0; b < Q_MAP_BUCKETS; b++) {
		struct qmsg **pp = &q->map[b];

		while ((qm = *pp) != NULL) {
			if (!qm->seen && !qm->busy && qm->size >= 0) {
				*pp = qm->next;
				free(qm);
				continue;
			}
			qm->seen = 0;
			pp = &qm->next;
		}
	}
	pthread_mutex_unlock(&q->mu);
	spool_ids_free(ids, n);
	if (fresh > 0)
		log_debug("event=queue_rescan changed=%d", fresh);
}

static void *
scanner(void *arg)
{
	struct queue *q = arg;
	struct timespec ts;

	pthread_mutex_lock(&q->mu);
	while (!q->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)q->run_interval;
		pthread_cond_timedwait(&q->scan_cv, &q->mu, &ts);
		if (q->stop)
			break;
		pthread_mutex_unlock(&q->mu);
		rescan(q);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int
queue_start(struct queue *q, int nthreads)
{
	char **ids = NULL;
	size_t n = 0, i;
	int k;

	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > Q_THREADS_MAX)
		nthreads = Q_THREADS_MAX;
	if (spool_list(q->sv->spool, &ids, &n) != 0)
		return -1;
	pthread_mutex_lock(&q->mu);
	for (i = 0; i < n; i++)
		heap_push(q, ids[i], 0);
	for (k = 0; k < nthreads; k++)
		if (pthread_create(&q->threads[k], NULL, runner, q) != 0)
			break;
	q->nthreads = k;
	if (pthread_create(&q->scanner, NULL, scanner, q) == 0)
		q->scanner_started = 1;
	pthread_mutex_unlock(&q->mu);
	spool_ids_free(ids, n);
	if (n > 0)
		log_info("event=queue_loaded messages=%zu", n);
	return q->nthreads > 0 ? 0 : -1;
}

void
queue_stop(struct queue *q)
{
	int k;

	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_cond_broadcast(&q->scan_cv);
	pthread_mutex_unlock(&q->mu);
	for (k = 0; k < q->nthreads; k++)
		pthread_join(q->threads[k], NULL);
	q->nthreads = 0;
	if (q->scanner_started)
		pthread_join(q->scanner, NULL);
	q->scanner_started = 0;
}
