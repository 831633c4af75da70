/*
 * replay.c - in-process replay cache: every accepted signature is kept
 * until no request with its timestamp can still be accepted (the window,
 * plus request_timeout for a body that ends late), and a second request
 * with the same signature is refused (DESIGN section 4).
 *
 * Only requests with a valid signature get here, so the set grows with
 * legitimate traffic only.  Expired entries are swept as new ones arrive.
 * With `redis` set the cache is in Redis (SET NX EX), shared by every
 * instance (DESIGN section 3).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "api/api.h"

#define REPLAY_BUCKETS	4096
#define REPLAY_KEY_LEN	8	/* bytes of SHA-256(signature) kept */

/*
 * 12 bytes a signature, in one array per bucket: the signatures of the
 * last minutes are all kept, so at a few thousand requests a second the
 * cache is megabytes (a list node with the hex signature took 96 bytes
 * with malloc's header; 1 MiB of the API's RSS per 11,000 requests).
 * 64 bits of a hash of an HMAC, plus the 12 bits of the bucket: with a
 * million signatures in the window, a new one is taken for a replay
 * with odds of 1 in 10^16 (and then gets 401, and the sender's retry
 * signs anew).
 */
struct replay_slot {
	uint32_t expires;	/* seconds since the epoch (to 2106) */
	unsigned char key[REPLAY_KEY_LEN];
};

struct replay_bucket {
	struct replay_slot *v;
	uint32_t n, cap;
};

struct replay {
	pthread_mutex_t lock;
	struct replay_bucket bucket[REPLAY_BUCKETS];
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
		free(r->bucket[i].v);
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}

/* Drop a bucket's expired entries; its array shrinks with it. */
static void
bucket_sweep(struct replay_bucket *b, int64_t now)
{
	struct replay_slot *v;
	uint32_t i, k = 0;

	for (i = 0; i < b->n; i++)
		if ((int64_t)b->v[i].expires >= now)
			b->v[k++] = b->v[i];
	b->n = k;
	if (k == 0) {
		free(b->v);
		b->v = NULL;
		b->cap = 0;
	} else if (k <= b->cap / 4 &&
	    (v = realloc(b->v, (size_t)b->cap / 2 * sizeof(*v))) != NULL) {
		b->v = v;
		b->cap /= 2;
	}
}

/* A few buckets per new signature: amortised cleaning. */
static void
replay_sweep(struct replay *r, int64_t now)
{
	size_t n;

	for (n = 0; n < 8; n++) {
		bucket_sweep(&r->bucket[r->sweep_pos], now);
		r->sweep_pos = (r->sweep_pos + 1) % REPLAY_BUCKETS;
	}
}

/* The in-process cache: 1 seen, 0 new (now remembered), -1 no memory. */
static int
replay_local(struct replay *r, const char *sig, int64_t expires, int64_t now)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct replay_bucket *b;
	struct replay_slot *v;
	uint32_t i, ncap;
	int rc = 0;

	SHA256((const unsigned char *)sig, strlen(sig), md);
	b = &r->bucket[((size_t)md[REPLAY_KEY_LEN] << 8 |
	    md[REPLAY_KEY_LEN + 1]) % REPLAY_BUCKETS];
	pthread_mutex_lock(&r->lock);
	replay_sweep(r, now);
	for (i = 0; i < b->n; i++)
		if ((int64_t)b->v[i].expires >= now &&
		    memcmp(b->v[i].key, md, REPLAY_KEY_LEN) == 0) {
			rc = 1;
			goto out;
		}
	if (b->n == b->cap) {
		ncap = b->cap ? b->cap * 2 : 4;
		if ((v = realloc(b->v, (size_t)ncap * sizeof(*v))) == NULL) {
			rc = -1;	/* fail closed, as a temporary failure */
			goto out;
		}
		b->v = v;
		b->cap = ncap;
	}
	b->v[b->n].expires = (uint32_t)expires;
	memcpy(b->v[b->n].key, md, REPLAY_KEY_LEN);
	b->n++;
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
	switch (redis_set_nx(api->redis, key, "1", 1,
	    expires > now ? expires - now : 1)) {
	case 1:
		return 0;
	case 0:
		return 1;
	default:
		return -1;
	}
}
