/*
 * replay.c - in-process replay cache: every accepted signature is kept
 * until its timestamp window closes, and a second request with the same
 * signature inside the window is refused (DESIGN section 4).
 *
 * Only requests with a valid signature get here, so the set grows with
 * legitimate traffic only.  Expired entries are swept as new ones arrive.
 * With `redis` set the cache is in Redis (SET NX EX), shared by every
 * instance (DESIGN section 3).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"

#define REPLAY_BUCKETS	4096
#define REPLAY_KEY_LEN	64

struct replay_entry {
	struct replay_entry *next;
	int64_t	 expires;
	char	 key[REPLAY_KEY_LEN + 1];
};

struct replay {
	pthread_mutex_t lock;
	struct replay_entry *bucket[REPLAY_BUCKETS];
	size_t	 sweep_pos;
};

struct replay *
replay_new(void)
{
	struct replay *r = calloc(1, sizeof(*r));

	if (r != NULL)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
replay_free(struct replay **rp)
{
	struct replay *r = *rp;
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < REPLAY_BUCKETS; i++)
		while (r->bucket[i] != NULL) {
			struct replay_entry *e = r->bucket[i];

			r->bucket[i] = e->next;
			free(e);
		}
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}

static size_t
replay_hash(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % REPLAY_BUCKETS;
}

/* Drop expired entries from a few buckets: amortised cleaning. */
static void
replay_sweep(struct replay *r, int64_t now)
{
	size_t n;

	for (n = 0; n < 8; n++) {
		struct replay_entry **ep = &r->bucket[r->sweep_pos];

		while (*ep != NULL) {
			if ((*ep)->expires < now) {
				struct replay_entry *e = *ep;

				*ep = e->next;
				free(e);
			} else
				ep = &(*ep)->next;
		}
		r->sweep_pos = (r->sweep_pos + 1) % REPLAY_BUCKETS;
	}
}

/* The in-process cache: 1 seen, 0 new (now remembered), -1 no memory. */
static int
replay_local(struct replay *r, const char *sig, int64_t expires, int64_t now)
{
	struct replay_entry *e;
	size_t h = replay_hash(sig);
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	replay_sweep(r, now);
	for (e = r->bucket[h]; e != NULL; e = e->next)
		if (e->expires >= now && strcmp(e->key, sig) == 0) {
			rc = 1;
			goto out;
		}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		rc = -1;	/* fail closed, as a temporary failure */
		goto out;
	}
	snprintf(e->key, sizeof(e->key), "%s", sig);
	e->expires = expires;
	e->next = r->bucket[h];
	r->bucket[h] = e;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int
replay_check(struct api *api, const char *sig, int64_t expires)
{
	int64_t now = (int64_t)time(NULL);
	char key[128];

	if (api->redis == NULL)
		return replay_local(api->replay, sig, expires, now);
	snprintf(key, sizeof(key), "edgemail:replay:%s", sig);
	switch (redis_set_nx(api->redis, key, "1", 1, expires - now)) {
	case 1:
		return 0;
	case 0:
		return 1;
	default:
		return -1;
	}
}
