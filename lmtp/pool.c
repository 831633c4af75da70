/*
 * pool.c - bounded FIFO pool of LMTP connections (see pool.h).
 *
 * Fairness without a thundering herd: a caller that finds no free slot
 * queues a waiter record (with its own condition variable) at the tail;
 * a caller that gives a slot back hands it straight to the head waiter
 * and wakes only that one.  The slot never becomes free in between, so
 * nobody can overtake the queue, and each release costs one wake-up
 * whatever the number of waiters.  Connections are used outside the
 * lock; the lock only guards the bookkeeping.
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

struct waiter {
	struct waiter *next;
	pthread_cond_t cond;
	int	 granted;	/* the slot was handed to us */
};

struct lmtp_pool {
	struct lmtp_server server;
	char	 lhlo[256];
	int	 timeout_ms;
	unsigned max;
	int	 idle_secs;

	pthread_mutex_t lock;
	unsigned busy;			/* slots handed out */
	unsigned begun;			/* of them, held by lmtp_pool_begin */
	struct waiter *head, *tail;	/* FIFO of callers waiting for a slot */
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
	free(p);
	*pp = NULL;
}

/* Take a slot (waiting in FIFO order); returns an idle connection to
 * reuse, or NULL (then the caller connects a new one in its slot). */
static struct lmtp_conn *
pool_acquire(struct lmtp_pool *p)
{
	struct lmtp_conn *c = NULL, *stale[POOL_MAX_IDLE];
	unsigned nstale = 0, i;
	time_t now;

	pthread_mutex_lock(&p->lock);
	if (p->busy < p->max && p->head == NULL)
		p->busy++;
	else {
		struct waiter w;

		memset(&w, 0, sizeof(w));
		pthread_cond_init(&w.cond, NULL);
		/* w lives on our stack: pool_release() dequeues it before
		 * it sets granted, and we return only after that. */
		if (p->tail != NULL)
			p->tail->next = &w;	/* cppcheck-suppress autoVariables */
		else
			p->head = &w;	/* cppcheck-suppress autoVariables */
		p->tail = &w;	/* cppcheck-suppress autoVariables */
		while (!w.granted)
			pthread_cond_wait(&w.cond, &p->lock);
		pthread_cond_destroy(&w.cond);
		/* pool_release dequeued us and kept busy for us. */
	}
	now = time(NULL);
	while (p->nidle > 0) {
		struct idle_conn ic = p->idle[--p->nidle];

		if (now - ic.since <= p->idle_secs) {
			c = ic.c;
			break;
		}
		/* Too old: the server may have dropped it. */
		stale[nstale++] = ic.c;
	}
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < nstale; i++)
		lmtp_close(&stale[i]);
	return c;
}

/* Give the slot back, with a reusable connection or NULL. */
static void
pool_release(struct lmtp_pool *p, struct lmtp_conn *c)
{
	struct waiter *w;

	pthread_mutex_lock(&p->lock);
	if (c != NULL && p->nidle < POOL_MAX_IDLE) {
		p->idle[p->nidle].c = c;
		p->idle[p->nidle].since = time(NULL);
		p->nidle++;
		c = NULL;
	}
	if ((w = p->head) != NULL) {
		/* Hand the slot to the longest waiter: busy stays. */
		p->head = w->next;
		if (p->head == NULL)
			p->tail = NULL;
		w->granted = 1;
		pthread_cond_signal(&w->cond);
	} else
		p->busy--;
	pthread_mutex_unlock(&p->lock);
	if (c != NULL)
		lmtp_close(&c);
}

/* A begun transaction was sent or dropped: its slot is an ordinary one
 * again. */
static void
begun_done(struct lmtp_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->begun--;
	pthread_mutex_unlock(&p->lock);
}

/* An idle connection, if one is free right now, nobody waits, and at
 * most half the slots are begun ones: whatever the clients that upload
 * slowly do, the other half is left for messages that are complete. */
static struct lmtp_conn *
pool_try_idle(struct lmtp_pool *p)
{
	struct lmtp_conn *c = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->busy < p->max && p->head == NULL && p->nidle > 0 &&
	    p->begun < (p->max + 1) / 2 &&
	    time(NULL) - p->idle[p->nidle - 1].since <= p->idle_secs) {
		c = p->idle[--p->nidle].c;
		p->busy++;
		p->begun++;
	}
	pthread_mutex_unlock(&p->lock);
	if (c != NULL && !lmtp_idle_ok(c)) {
		lmtp_close(&c);
		begun_done(p);
		pool_release(p, NULL);
	}
	return c;
}

void
lmtp_pool_cancel(struct lmtp_pool *p, struct lmtp_conn **begun)
{
	struct lmtp_conn *c;

	if (begun == NULL || (c = *begun) == NULL)
		return;
	*begun = NULL;
	if (lmtp_cancel(c) != 0)
		lmtp_close(&c);
	begun_done(p);
	pool_release(p, c);
}

struct lmtp_conn *
lmtp_pool_begin(struct lmtp_pool *p, const char *mail_from,
    const char *const *rcpts, size_t nrcpt)
{
	struct lmtp_conn *c;

	if ((c = pool_try_idle(p)) != NULL &&
	    lmtp_begin(c, mail_from, rcpts, nrcpt) != 0)
		lmtp_pool_cancel(p, &c);	/* sets c to NULL */
	return c;
}

int
lmtp_pool_send(struct lmtp_pool *p, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, const struct lmtp_msg *m,
    struct reply *rcpt_r)
{
	return lmtp_pool_send_begun(p, NULL, mail_from, rcpts, nrcpt, m,
	    rcpt_r);
}

int
lmtp_pool_send_begun(struct lmtp_pool *p, struct lmtp_conn **begun,
    const char *mail_from, const char *const *rcpts, size_t nrcpt,
    const struct lmtp_msg *m, struct reply *rcpt_r)
{
	struct lmtp_conn *c = NULL;
	struct reply r;
	size_t i;

	if (begun != NULL && *begun != NULL) {
		/* Its slot is ours already. */
		c = *begun;
		*begun = NULL;
		begun_done(p);
	} else if ((c = pool_acquire(p)) != NULL && !lmtp_idle_ok(c))
		/* A kept connection the server has closed meanwhile
		 * (Dovecot's idle timeout, a restart) would fail this
		 * message: a new one. */
		lmtp_close(&c);
	if (c == NULL)
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
