/*
 * pool.c - bounded FIFO pool of LMTP connections (see pool.h).
 *
 * Fairness uses a ticket queue: each caller takes a ticket and waits until
 * its number is served and a connection slot is free.  Connections are
 * used outside the lock; the lock only guards the bookkeeping.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lmtp/pool.h"

#define POOL_MAX_IDLE	64

struct idle_conn {
	struct lmtp_conn *c;
	time_t	 since;
};

struct lmtp_pool {
	struct lmtp_server server;
	char	 lhlo[256];
	int	 timeout_ms;
	unsigned max;
	int	 idle_secs;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long next_ticket;
	unsigned long serving;
	unsigned busy;			/* connections handed out */
	struct idle_conn idle[POOL_MAX_IDLE];
	unsigned nidle;
};

struct lmtp_pool *
lmtp_pool_new(const struct lmtp_server *s, const char *lhlo_name,
    int timeout_ms, unsigned max, int idle_secs)
{
	struct lmtp_pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->server = *s;
	snprintf(p->lhlo, sizeof(p->lhlo), "%s", lhlo_name);
	p->timeout_ms = timeout_ms;
	p->max = max == 0 ? 1 : max;
	p->idle_secs = idle_secs;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	return p;
}

void
lmtp_pool_free(struct lmtp_pool **pp)
{
	struct lmtp_pool *p = *pp;
	unsigned i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nidle; i++)
		lmtp_close(&p->idle[i].c);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
	*pp = NULL;
}

/* Wait for our turn and a free slot; returns an idle connection or NULL
 * (then the caller connects a new one in the slot it now holds). */
static struct lmtp_conn *
pool_acquire(struct lmtp_pool *p)
{
	struct lmtp_conn *c = NULL;
	unsigned long ticket;
	time_t now;

	pthread_mutex_lock(&p->lock);
	ticket = p->next_ticket++;
	while (ticket != p->serving || p->busy >= p->max)
		pthread_cond_wait(&p->cond, &p->lock);
	p->serving++;
	p->busy++;
	now = time(NULL);
	while (p->nidle > 0) {
		struct idle_conn ic = p->idle[--p->nidle];

		if (now - ic.since <= p->idle_secs) {
			c = ic.c;
			break;
		}
		/* Too old: the server may have dropped it; close outside
		 * the hot path would be nicer, but this is rare. */
		lmtp_close(&ic.c);
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return c;
}

static void
pool_release(struct lmtp_pool *p, struct lmtp_conn *c)
{
	pthread_mutex_lock(&p->lock);
	p->busy--;
	if (c != NULL && p->nidle < POOL_MAX_IDLE) {
		p->idle[p->nidle].c = c;
		p->idle[p->nidle].since = time(NULL);
		p->nidle++;
		c = NULL;
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (c != NULL)
		lmtp_close(&c);
}

int
lmtp_pool_send(struct lmtp_pool *p, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, const struct lmtp_msg *m,
    struct reply *rcpt_r)
{
	struct lmtp_conn *c;
	struct reply r;
	size_t i;

	if ((c = pool_acquire(p)) == NULL)
		c = lmtp_connect(&p->server, p->lhlo, p->timeout_ms, &r);
	if (c == NULL) {
		for (i = 0; i < nrcpt; i++)
			rcpt_r[i] = r;
		pool_release(p, NULL);
		return -1;
	}
	if (lmtp_send(c, mail_from, rcpts, nrcpt, m, rcpt_r) != 0)
		lmtp_close(&c);
	pool_release(p, c);
	return 0;
}

int
lmtp_pool_probe(struct lmtp_pool *p, struct reply *r)
{
	struct lmtp_conn *c;

	if ((c = lmtp_connect(&p->server, p->lhlo, p->timeout_ms, r)) == NULL)
		return -1;
	lmtp_close(&c);
	return 0;
}
