/*
 * directory.c - envelope recipients through the directory (lib/directory.h)
 * on their way to Dovecot, for the pipeline and the queue runner.
 *
 * Unknown addresses and suspended mailboxes are refused here, per
 * recipient, without a round trip to Dovecot (550 5.1.1, 550 5.2.1);
 * aliases and groups are expanded (duplicates removed) into ONE LMTP
 * transaction, with the domain's archive mailbox added when archiving is
 * on; each envelope recipient then gets one reply made from its
 * mailboxes' replies (dir_plan_outcome).  Forwards (targets outside our
 * domains) belong to the relay's outbound spool; nothing feeds it from
 * here yet, so they are logged and left out, and a recipient that has
 * only forwards is refused (550 5.3.0) rather than silently dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "lib/directory.h"
#include "lib/log.h"
#include "lmtp/pool.h"

void
api_deliver_rcpts(struct api *api, const char *id, const char *mail_from,
    const char *const *rcpts, size_t n, const struct lmtp_msg *m,
    struct reply *replies)
{
	struct dir_plan p;
	struct reply *lr;
	size_t i;

	if (api->dir == NULL || !directory_in_use(api->dir)) {
		lmtp_pool_send(api->lmtp, mail_from, rcpts, n, m, replies);
		return;
	}
	if (directory_plan(api->dir, id, rcpts, n, &p) != 0) {
		for (i = 0; i < n; i++)
			reply_set(&replies[i], 451, "4.3.0", "out of memory");
		return;
	}
	lr = calloc(p.nlmtp ? p.nlmtp : 1, sizeof(*lr));
	if (lr == NULL) {
		for (i = 0; i < n; i++)
			reply_set(&replies[i], 451, "4.3.0", "out of memory");
		dir_plan_free(&p);
		return;
	}
	/* Every recipient refused by the directory: no LMTP at all. */
	if (p.nlmtp > 0)
		lmtp_pool_send(api->lmtp, mail_from, (const char *const *)p.lmtp,
		    p.nlmtp, m, lr);
	for (i = p.nlmtp - p.narchive; i < p.nlmtp; i++) {
		char q[320];

		log_info("id=%s event=archive mailbox=%s class=%s code=%d "
		    "text=%s", id, p.lmtp[i], reply_class_name(lr[i].cls),
		    lr[i].code, log_quote(lr[i].text, q, sizeof(q)));
	}
	for (i = 0; i < n; i++)
		dir_plan_outcome(&p, i, lr, &replies[i]);
	free(lr);
	dir_plan_free(&p);
}
