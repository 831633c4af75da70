/*
 * idem.c - Idempotency-Key records, embedded mode (files under idem/).
 *
 * A record is named after the SHA-256 of the key and holds the SHA-256 of
 * the body and, once the request is finished, its HTTP status and JSON
 * answer.  While a request runs, the record says "progress", so a
 * concurrent duplicate is told to come back (503) instead of delivering a
 * second time; a progress marker older than `stale_after` (a crashed
 * process) is taken over.
 *
 * With `redis` set the same records live in Redis (SET NX EX) so that
 * several API instances share them; the logic here is the same, only the
 * four storage operations differ.
 *
 * Records are written without fsync on purpose: a record lost in a crash
 * only means a retry is delivered again, and every delivery carries an
 * X-Edgemail-Delivery-Id that the global Sieve script deduplicates per
 * mailbox (RFC 7352), so the mailbox still gets one copy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "api/api.h"
#include "lib/log.h"

#define IDEM_MAGIC	"EDGEMAIL-IDEM/1"
#define IDEM_MAX_FILE	(256 * 1024)

struct idem {
	char	 dir[PATH_MAX - 80];
	int64_t	 ttl;
	long long started;	/* with our pid, tells our markers apart */
	char	 host[128];
	struct redis *redis;	/* NULL: files under dir */
};

struct idem *
idem_open(const char *dir, int64_t ttl, struct redis *redis, char *err,
    size_t errsz)
{
	struct idem *d;

	if (redis == NULL && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	d->ttl = ttl;
	d->started = (long long)time(NULL);
	d->redis = redis;
	if (gethostname(d->host, sizeof(d->host)) != 0 || d->host[0] == '\0')
		snprintf(d->host, sizeof(d->host), "localhost");
	d->host[strcspn(d->host, " \t\n")] = '\0';
	return d;
}

void
idem_close(struct idem **dp)
{
	free(*dp);
	*dp = NULL;
}

void
idem_key_hash(const char *key, char *hex)
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)key, strlen(key), md);
	hex_encode(md, sizeof(md), hex);
}

/* A record's name: a file path, or a Redis key. */
static void
record_path(const struct idem *d, const char *key, char *out, size_t outsz)
{
	char hex[SHA256_DIGEST_LENGTH * 2 + 1];

	idem_key_hash(key, hex);
	if (d->redis != NULL)
		snprintf(out, outsz, "edgemail:idem:%s", hex);
	else
		snprintf(out, outsz, "%s/%s", d->dir, hex);
}

/* The four storage operations. */
static int
write_record(const struct idem *d, const char *path, const char *content,
    size_t len)
{
	char tmp[PATH_MAX];
	int fd;
	ssize_t w;

	if (d->redis != NULL)
		return redis_set(d->redis, path, content, len, d->ttl);

	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)gettid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -1;
	w = write(fd, content, len);
	if (close(fd) != 0 || w != (ssize_t)len || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* 1 created, 0 exists, -1 error */
static int
create_record(const struct idem *d, const char *path, const char *content,
    size_t len)
{
	ssize_t n;
	int fd;

	if (d->redis != NULL)
		return redis_set_nx(d->redis, path, content, len, d->ttl);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	n = write(fd, content, len);
	close(fd);
	return n == (ssize_t)len ? 1 : -1;
}

/* malloc'd content, or NULL (error, or vanished: *missing_r) */
static char *
read_record(const struct idem *d, const char *path, int *missing_r)
{
	char *buf;
	ssize_t n;
	int fd;

	*missing_r = 0;
	if (d->redis != NULL)
		return redis_get(d->redis, path, missing_r);
	/* Thread stacks are small: the record is read into the heap. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		*missing_r = errno == ENOENT;
		return NULL;
	}
	if ((buf = malloc(IDEM_MAX_FILE + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	n = read(fd, buf, IDEM_MAX_FILE);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static void
remove_record(const struct idem *d, const char *path)
{
	if (d->redis != NULL)
		redis_del(d->redis, path);
	else
		unlink(path);
}

enum idem_state
idem_begin(struct idem *d, const char *key, const char *body_hex,
    int64_t stale_after, struct idem_record *rec)
{
	char path[PATH_MAX], line[256], state[16], hash[80], *buf, *nl;
	char host[128];
	long long created;
	unsigned http;
	int64_t now = (int64_t)time(NULL);
	int len, missing;

	memset(rec, 0, sizeof(*rec));
	record_path(d, key, path, sizeof(path));
	len = snprintf(line, sizeof(line), IDEM_MAGIC " progress %lld %s 0 "
	    "%d %lld %s\n", (long long)now, body_hex, (int)getpid(),
	    d->started, d->host);
	switch (create_record(d, path, line, (size_t)len)) {
	case 1:
		return IDEM_NEW;
	case -1:
		return IDEM_ERROR;
	}
	if ((buf = read_record(d, path, &missing)) == NULL)
		return missing ? IDEM_BUSY : IDEM_ERROR;	/* racing a finish */
	if (sscanf(buf, IDEM_MAGIC " %15s %lld %79s %u", state, &created, hash,
	    &http) != 4)
		goto take_over;		/* torn record: start afresh */
	if (created + d->ttl < now)
		goto take_over;		/* expired */
	if (strcmp(hash, body_hex) != 0) {
		free(buf);
		return IDEM_CONFLICT;
	}
	if (strcmp(state, "progress") == 0) {
		int pid = 0, local;
		long long started = 0;

		host[0] = '\0';
		sscanf(buf, IDEM_MAGIC " %*s %*d %*s %*u %d %lld %127s", &pid,
		    &started, host);
		local = strcmp(host, d->host) == 0;
		/* Its request died: timed out, or its process (on this host)
		 * is gone after a crash or restart.  Retrying is safe because
		 * deliveries are deduplicated per mailbox. */
		if (created + stale_after < now || (local && (pid <= 0 ||
		    (kill(pid, 0) != 0 && errno == ESRCH) ||
		    (pid == getpid() && started != d->started))))
			goto take_over;
		free(buf);
		return IDEM_BUSY;
	}
	if (strcmp(state, "done") != 0 || (nl = strchr(buf, '\n')) == NULL)
		goto take_over;
	rec->http = http;
	rec->response = strdup(nl + 1);
	free(buf);
	return rec->response ? IDEM_DONE : IDEM_ERROR;
take_over:
	free(buf);
	return write_record(d, path, line, (size_t)len) == 0 ? IDEM_NEW :
	    IDEM_ERROR;
}

int
idem_finish(struct idem *d, const char *key, const char *body_hex,
    unsigned http, const char *response)
{
	char path[PATH_MAX];
	struct buf b;
	int rc;

	record_path(d, key, path, sizeof(path));
	buf_init(&b, IDEM_MAX_FILE);
	if (buf_printf(&b, IDEM_MAGIC " done %lld %s %u\n%s",
	    (long long)time(NULL), body_hex, http, response) != 0) {
		buf_free(&b);
		remove_record(d, path);	/* too big to keep: forget the key */
		return -1;
	}
	rc = write_record(d, path, b.data, b.len);
	buf_free(&b);
	return rc;
}

void
idem_abort(struct idem *d, const char *key)
{
	char path[PATH_MAX];

	record_path(d, key, path, sizeof(path));
	remove_record(d, path);
}

void
idem_sweep(struct idem *d)
{
	DIR *dir;
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	unsigned removed = 0;

	if (d->redis != NULL)
		return;		/* Redis expires its keys itself */
	if ((dir = opendir(d->dir)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(dir), de->d_name, &st, 0) != 0)
			continue;
		if ((int64_t)(now - st.st_mtime) > d->ttl &&
		    unlinkat(dirfd(dir), de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	if (removed > 0)
		log_info("event=idem_sweep removed=%u", removed);
}
