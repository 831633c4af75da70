/*
 * pool.h - a bounded, fair pool of LMTP connections.
 *
 * Dovecot is the bottleneck of every delivery, so the programs that feed
 * it (the API, the relay's queue runner) share at most `max` LMTP
 * connections and hand them out strictly first-come first-served: a
 * request that has waited longest gets the next free connection, so no
 * request starves under load (fair queueing keeps p99 close to p50).
 * Idle connections are kept for reuse (saving connect + LHLO) but closed
 * after `idle_secs`.
 */
#ifndef EDGEMAIL_LMTP_POOL_H
#define EDGEMAIL_LMTP_POOL_H

#include "lmtp/lmtp.h"

struct lmtp_pool;

struct lmtp_pool *lmtp_pool_new(const struct lmtp_server *s,
	    const char *lhlo_name, int timeout_ms, unsigned max, int idle_secs);
void	lmtp_pool_free(struct lmtp_pool **pp);
/*
 * Deliver through a pooled connection (waiting for one in FIFO order).
 * Same contract as lmtp_send(); a connect failure gives every recipient
 * the TEMP reply of the connect.  Returns 0 if at least the transaction
 * ran, -1 if no connection could be had.
 */
int	lmtp_pool_send(struct lmtp_pool *p, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt, const struct lmtp_msg *m,
	    struct reply *rcpt_r);
/*
 * Begin a transaction ahead of its message (lmtp_begin) on an idle
 * connection that is free right now; NULL, never waiting, when there is
 * none, nobody may overtake a waiter, half the slots are begun ones
 * already, or the server does not pipeline.
 * The connection keeps its slot until lmtp_pool_send_begun() is given
 * it (and takes it over) or lmtp_pool_cancel() gives it back.
 */
struct lmtp_conn *lmtp_pool_begin(struct lmtp_pool *p, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt);
void	lmtp_pool_cancel(struct lmtp_pool *p, struct lmtp_conn **begun);
/* lmtp_pool_send() on *begun when there is one (*begun is then NULL). */
int	lmtp_pool_send_begun(struct lmtp_pool *p, struct lmtp_conn **begun,
	    const char *mail_from, const char *const *rcpts, size_t nrcpt,
	    const struct lmtp_msg *m, struct reply *rcpt_r);
/* Connect and LHLO once, without a transaction (readiness probe). */
int	lmtp_pool_probe(struct lmtp_pool *p, struct reply *r);

#endif
