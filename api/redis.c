/*
 * redis.c - the shared-state client (hiredis) for several API instances.
 *
 * With `redis = redis://host:port[/db]` the replay cache, idempotency
 * records and rate-limit counters live in Redis so that every instance
 * behind one tunnel sees them.  One connection, commands serialised by a
 * mutex (each is a single round trip of well under a millisecond on
 * loopback), connect and command timeouts, and a reconnect at the next
 * command after any failure: Redis coming back needs no restart.  Every
 * failure is reported as -1 and the callers answer 503 (fail closed).
 * Redis is never the only copy of a message: the spool stays on disk.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

#include "api/api.h"
#include "lib/log.h"

struct redis {
	pthread_mutex_t lock;
	redisContext *c;
	char	 host[256];
	int	 port;
	int	 db;
	struct timeval timeout;
	time_t	 last_fail_log;
};

static int
parse_url(struct redis *r, const char *url)
{
	const char *p = url, *colon, *slash;
	long long v;
	char num[16];
	size_t n;

	if (strncmp(p, "redis://", 8) == 0)
		p += 8;
	colon = strrchr(p, ':');
	slash = strchr(p, '/');
	if (colon == NULL || (slash != NULL && slash < colon))
		return -1;
	n = (size_t)(colon - p);
	if (n == 0 || n >= sizeof(r->host))
		return -1;
	memcpy(r->host, p, n);
	r->host[n] = '\0';
	n = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, colon + 1, n);
	num[n] = '\0';
	if (str_to_ll(num, 1, 65535, &v) != 0)
		return -1;
	r->port = (int)v;
	r->db = 0;
	if (slash != NULL && slash[1] != '\0') {
		if (str_to_ll(slash + 1, 0, 1000, &v) != 0)
			return -1;
		r->db = (int)v;
	}
	return 0;
}

/* With the lock held: a usable connection or -1. */
static int
ensure(struct redis *r)
{
	redisReply *rep;

	if (r->c != NULL && r->c->err == 0)
		return 0;
	if (r->c != NULL) {
		redisFree(r->c);
		r->c = NULL;
	}
	r->c = redisConnectWithTimeout(r->host, r->port, r->timeout);
	if (r->c == NULL || r->c->err != 0)
		goto fail;
	/* Set again after every reconnect (hiredis 0.14). */
	if (redisSetTimeout(r->c, r->timeout) != REDIS_OK)
		goto fail;
	if (r->db != 0) {
		rep = redisCommand(r->c, "SELECT %d", r->db);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			if (rep)
				freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	log_info("event=redis_connected host=%s port=%d", r->host, r->port);
	return 0;
fail:
	if (time(NULL) != r->last_fail_log) {
		log_warnx("event=redis_unavailable host=%s port=%d err=\"%s\"",
		    r->host, r->port, r->c ? r->c->errstr : "out of memory");
		r->last_fail_log = time(NULL);
	}
	if (r->c != NULL) {
		redisFree(r->c);
		r->c = NULL;
	}
	return -1;
}

struct redis *
redis_open(const char *url, int timeout_ms, char *err, size_t errsz)
{
	struct redis *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (parse_url(r, url) != 0) {
		snprintf(err, errsz, "bad redis URL '%s' (want "
		    "redis://host:port[/db])", url);
		free(r);
		return NULL;
	}
	r->timeout.tv_sec = timeout_ms / 1000;
	r->timeout.tv_usec = (timeout_ms % 1000) * 1000;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_lock(&r->lock);
	ensure(r);		/* not fatal: it may come up later */
	pthread_mutex_unlock(&r->lock);
	return r;
}

void
redis_close(struct redis **rp)
{
	struct redis *r = *rp;

	if (r == NULL)
		return;
	if (r->c != NULL)
		redisFree(r->c);
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}

/* Run a command; returns the reply (caller frees) or NULL. */
static redisReply *
command(struct redis *r, const char *fmt, ...)
{
	redisReply *rep = NULL;
	va_list ap;

	int attempt;

	pthread_mutex_lock(&r->lock);
	/* A connection that was idle while Redis restarted fails on first
	 * use: reconnect and try once more before reporting failure. */
	for (attempt = 0; attempt < 2 && rep == NULL; attempt++) {
		if (ensure(r) != 0)
			break;
		va_start(ap, fmt);
		rep = redisvCommand(r->c, fmt, ap);
		va_end(ap);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			if (rep != NULL)
				freeReplyObject(rep);
			rep = NULL;
			if (r->c != NULL && r->c->err == 0)
				r->c->err = REDIS_ERR_OTHER;	/* reconnect */
		}
	}
	pthread_mutex_unlock(&r->lock);
	return rep;
}

int
redis_set_nx(struct redis *r, const char *key, const char *val, size_t len,
    int64_t ttl)
{
	redisReply *rep = command(r, "SET %s %b NX EX %lld", key, val, len,
	    (long long)ttl);
	int rc;

	if (rep == NULL)
		return -1;
	rc = rep->type == REDIS_REPLY_NIL ? 0 : 1;
	freeReplyObject(rep);
	return rc;
}

int
redis_set(struct redis *r, const char *key, const char *val, size_t len,
    int64_t ttl)
{
	redisReply *rep = command(r, "SET %s %b EX %lld", key, val, len,
	    (long long)ttl);

	if (rep == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}

char *
redis_get(struct redis *r, const char *key, int *missing_r)
{
	redisReply *rep = command(r, "GET %s", key);
	char *s = NULL;

	*missing_r = 0;
	if (rep == NULL)
		return NULL;
	if (rep->type == REDIS_REPLY_STRING) {
		if ((s = malloc(rep->len + 1)) != NULL) {
			memcpy(s, rep->str, rep->len);
			s[rep->len] = '\0';
		}
	} else
		*missing_r = 1;
	freeReplyObject(rep);
	return s;
}

int
redis_del(struct redis *r, const char *key)
{
	redisReply *rep = command(r, "DEL %s", key);

	if (rep == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}

long long
redis_incr(struct redis *r, const char *key, int64_t ttl)
{
	redisReply *rep = command(r, "INCR %s", key);
	long long v;

	if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
		if (rep)
			freeReplyObject(rep);
		return -1;
	}
	v = rep->integer;
	freeReplyObject(rep);
	if (v == 1 && (rep = command(r, "EXPIRE %s %lld", key,
	    (long long)ttl)) != NULL)
		freeReplyObject(rep);
	return v;
}
