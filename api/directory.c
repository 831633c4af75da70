/*
 * directory.c - envelope recipients through the directory (lib/directory.h)
 * on their way to Dovecot, for the pipeline and the queue runner.
 *
 * Unknown addresses and suspended mailboxes are refused here, per
 * recipient, without a round trip to Dovecot (550 5.1.1, 550 5.2.1);
 * aliases and groups are expanded (duplicates removed) into ONE LMTP
 * transaction, with the domain's archive mailbox added when archiving is
 * on; each envelope recipient then gets one reply made from its
 * mailboxes' and forwards' replies (dir_plan_outcome).
 *
 * Forwards (targets outside our domains, DESIGN section 7) are committed
 * to the relay's outbound spool (outbound_spool_dir) with the envelope
 * sender rewritten by SRS, and edgemail-submit sends them through the
 * smarthost.  Committing is the forward's "delivery": a failure to commit
 * is TEMP for that recipient, never a reason to lose the local copies.
 * The forward's id in the relay's spool is made from (delivery id,
 * recipient), so every retry of one message, from the queue or from a
 * client that sends the request again with its Idempotency-Key, names
 * the same forward: one that is still queued is not queued again
 * (SPOOL_EXISTS), and a marker under spool_dir/forwarded/ remembers the
 * ones the relay has sent already.  A bounce that comes back to one of
 * our SRS addresses is forwarded to the original sender.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "lib/directory.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lib/srs.h"
#include "lmtp/pool.h"

#define FORWARD_MARKER_DAYS	14

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

/* The marker that says fid was committed; durable, so that a power
 * loss cannot make a retry forward again what the relay sent. */
static void
forward_mark(struct api *api, const char *fid, const char *marker)
{
	char dir[PATH_MAX];
	int fd;

	if ((fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_warnx("event=forward_marker_failed fid=%s err=\"%s\"", fid,
		    strerror(errno));
		return;
	}
	close(fd);
	snprintf(dir, sizeof(dir), "%s/forwarded", api->spool_dir);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/*
 * Commit one forward: the message, from `sender` rewritten by SRS into
 * the domain of `rcpt`, to `targets`.  Idempotent per (delivery_id,
 * rcpt).
 */
static void
forward(struct api *api, const char *id, const char *delivery_id,
    const char *rcpt, const char *mail_from, const char *const *targets,
    size_t n, const struct lmtp_msg *m, int rewrite, struct reply *r)
{
	char fid[SIG_HEX_LEN + 1], key[ADDR_PATH_MAX * 2 + 80];
	char marker[PATH_MAX], sender[ADDR_PATH_MAX + 1];
	int rc;

	if (api->outbound == NULL) {
		reply_set(r, 451, "4.3.0", "forwarding is not available "
		    "(outbound_spool_dir)");
		return;
	}
	snprintf(key, sizeof(key), "%s\n%s", delivery_id, rcpt);
	idem_key_hash(key, fid);
	fid[32] = '\0';
	snprintf(marker, sizeof(marker), "%s/forwarded/%s", api->spool_dir, fid);
	if (access(marker, F_OK) == 0) {
		reply_set(r, 250, "2.1.5", "forwarded before (%s)", fid);
		return;
	}
	sender[0] = '\0';
	if (mail_from[0] != '\0' && rewrite &&
	    srs_forward(api->srs_secret, mail_from, domain_of(rcpt), time(NULL),
	    sender, sizeof(sender)) != 0) {
		log_warnx("id=%s event=srs_too_long sender=%s", id, mail_from);
		sender[0] = '\0';
	} else if (!rewrite)
		snprintf(sender, sizeof(sender), "%s", mail_from);
	rc = spool_commit(api->outbound, fid, sender, targets, n, NULL, NULL,
	    0, m, r);
	if (rc == SPOOL_EXISTS) {
		forward_mark(api, fid, marker);
		reply_set(r, 250, "2.1.5", "forwarded before (%s)", fid);
		return;
	}
	if (rc != 0) {
		log_warnx("id=%s event=forward_failed rcpt=%s code=%d text=\"%s\"",
		    id, rcpt, r->code, r->text);
		return;
	}
	forward_mark(api, fid, marker);
	log_info("id=%s event=forwarded rcpt=%s targets=%zu outbound_id=%s "
	    "sender=%s", id, rcpt, n, fid, sender[0] ? sender : "<>");
	reply_set(r, 250, "2.1.5", "forwarded to %zu outside address%s "
	    "(queued as %s)", n, n == 1 ? "" : "es", fid);
}

/* Forwards of every recipient of the plan; fr[j] for p->forwards[j]. */
static void
forward_plan(struct api *api, const char *id, const char *delivery_id,
    const char *mail_from, const char *const *rcpts, const struct dir_plan *p,
    const struct lmtp_msg *m, struct reply *fr)
{
	const char **targets;
	size_t *idx, i, j, n;
	char *done;

	targets = calloc(p->nforward, sizeof(*targets));
	idx = calloc(p->nforward, sizeof(*idx));
	done = calloc(p->nforward, 1);
	if (targets == NULL || idx == NULL || done == NULL) {
		for (j = 0; j < p->nforward; j++)
			reply_set(&fr[j], 451, "4.3.0", "out of memory");
		goto out;
	}
	for (i = 0; i < p->nrcpt; i++) {
		const struct dir_plan_rcpt *pr = &p->rcpt[i];
		struct reply r;

		if (pr->reply.cls != REPLY_OK)
			continue;
		for (n = 0, j = 0; j < pr->nforward; j++)
			if (!done[pr->fwd[j]]) {
				idx[n] = pr->fwd[j];
				targets[n++] = p->forwards[pr->fwd[j]];
				done[pr->fwd[j]] = 1;
			}
		if (n == 0)
			continue;
		forward(api, id, delivery_id, rcpts[i], mail_from, targets, n, m,
		    1, &r);
		for (j = 0; j < n; j++)
			fr[idx[j]] = r;
	}
out:
	free(targets);
	free(idx);
	free(done);
}

struct lmtp_conn *
api_deliver_begin(struct api *api, const char *mail_from,
    const char *const *rcpts, size_t n)
{
	struct lmtp_conn *c = NULL;
	struct dir_plan p;
	char orig[ADDR_PATH_MAX + 1];
	size_t i;

	if (api->dir == NULL || !directory_in_use(api->dir))
		return lmtp_pool_begin(api->lmtp, mail_from, rcpts, n);
	for (i = 0; i < n; i++)
		if (srs_reverse(api->srs_secret, rcpts[i], time(NULL), orig,
		    sizeof(orig)) == 0)
			return NULL;
	/* The plan api_deliver_rcpts() will make, without its log lines;
	 * if the directory changes in between, lmtp_send() sees another
	 * envelope and drops this one. */
	if (directory_plan(api->dir, NULL, rcpts, n, &p) != 0)
		return NULL;
	if (p.nlmtp > 0)
		c = lmtp_pool_begin(api->lmtp, mail_from,
		    (const char *const *)p.lmtp, p.nlmtp);
	dir_plan_free(&p);
	return c;
}

void
api_deliver_rcpts(struct api *api, const char *id, const char *delivery_id,
    const char *mail_from, const char *const *rcpts, size_t n,
    const struct lmtp_msg *m, struct lmtp_conn **begun, struct reply *replies)
{
	struct dir_plan p;
	struct reply *lr, *fr = NULL, *sub_r;
	const char **sub;
	size_t *map, i, nsub = 0;
	char orig[ADDR_PATH_MAX + 1];

	if (api->dir == NULL || !directory_in_use(api->dir)) {
		lmtp_pool_send_begun(api->lmtp, begun, mail_from, rcpts, n, m,
		    replies);
		return;
	}
	sub = calloc(n, sizeof(*sub));
	map = calloc(n, sizeof(*map));
	sub_r = calloc(n, sizeof(*sub_r));
	if (sub == NULL || map == NULL || sub_r == NULL)
		goto oom;
	/* A bounce to one of our SRS addresses goes back to the sender of
	 * the forwarded message; everything else goes to the directory. */
	for (i = 0; i < n; i++) {
		if (srs_reverse(api->srs_secret, rcpts[i], time(NULL), orig,
		    sizeof(orig)) == 0) {
			const char *t = orig;

			forward(api, id, delivery_id, rcpts[i], mail_from, &t, 1,
			    m, 0, &replies[i]);
			continue;
		}
		map[nsub] = i;
		sub[nsub++] = rcpts[i];
	}
	if (nsub == 0)
		goto done;
	if (directory_plan(api->dir, id, sub, nsub, &p) != 0)
		goto oom;
	lr = calloc(p.nlmtp ? p.nlmtp : 1, sizeof(*lr));
	if (p.nforward > 0)
		fr = calloc(p.nforward, sizeof(*fr));
	if (lr == NULL || (p.nforward > 0 && fr == NULL)) {
		free(lr);
		free(fr);
		dir_plan_free(&p);
		goto oom;
	}
	/* Every recipient refused by the directory: no LMTP at all. */
	if (p.nlmtp > 0)
		lmtp_pool_send_begun(api->lmtp, begun, mail_from,
		    (const char *const *)p.lmtp, p.nlmtp, m, lr);
	if (p.nforward > 0)
		forward_plan(api, id, delivery_id, mail_from, sub, &p, m, fr);
	for (i = p.nlmtp - p.narchive; i < p.nlmtp; i++) {
		char q[320];

		log_info("id=%s event=archive mailbox=%s class=%s code=%d "
		    "text=%s", id, p.lmtp[i], reply_class_name(lr[i].cls),
		    lr[i].code, log_quote(lr[i].text, q, sizeof(q)));
	}
	for (i = 0; i < nsub; i++)
		dir_plan_outcome(&p, i, lr, fr, &sub_r[i]);
	for (i = 0; i < nsub; i++)
		replies[map[i]] = sub_r[i];
	free(lr);
	free(fr);
	dir_plan_free(&p);
done:
	/* Not used when the directory left nothing for LMTP. */
	lmtp_pool_cancel(api->lmtp, begun);
	free(sub);
	free(map);
	free(sub_r);
	return;
oom:
	lmtp_pool_cancel(api->lmtp, begun);
	for (i = 0; i < n; i++)
		reply_set(&replies[i], 451, "4.3.0", "out of memory");
	free(sub);
	free(map);
	free(sub_r);
}

void
api_forward_sweep(struct api *api)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	DIR *d;

	snprintf(path, sizeof(path), "%s/forwarded", api->spool_dir);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    now - st.st_mtime > FORWARD_MARKER_DAYS * 86400)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}
