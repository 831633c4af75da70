/*
 * spool.c - the durable queue (see spool.h for the file format).
 *
 * Durability argument, in the order things happen in spool_commit():
 *   1. write envelope + message to tmp/ID.RANDOM (a crash leaves a tmp
 *      file that spool_open() removes: the message was never
 *      acknowledged; the random suffix keeps a writer killed half-way
 *      from blocking the next attempt with the same id);
 *   2. fsync the file (its data is on disk);
 *   3. link it as queue/ID (atomic: the name appears complete, and an
 *      existing queue/ID is never replaced: SPOOL_EXISTS), then unlink
 *      the tmp name;
 *   4. fsync queue/ (the new name itself is on disk).
 * Two fsyncs per committed message; one fdatasync per journal record.
 *
 * The journal is appended after the message.  A record torn by a crash
 * (no newline yet, or a zero-filled block after a power loss) is cut off
 * when the file is next loaded, and an append that fails half-way is
 * cut back at once, so the next record never continues a broken one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lmtp/lmtp.h"

#define SPOOL_MAGIC	"EDGEMAIL-SPOOL/1\n"
#define SPOOL_HDR_MAX	(512 * 1024)
#define COPY_CHUNK	(64 * 1024)

struct spool {
	char	 dir[PATH_MAX - 64];
	int	 queue_fd;	/* queue/ directory, for fsync */
	uint64_t max_bytes;
	int	 owner;		/* spool_open: the program whose queue it is */
	pthread_mutex_t lock;
	uint64_t bytes;		/* bytes under queue/ */
};

static const char *state_names[] = {
	[SPOOL_PENDING] = "pending",
	[SPOOL_DONE] = "done",
	[SPOOL_FAILED] = "failed",
	[SPOOL_BOUNCED] = "bounced",
};

const char *
spool_state_name(enum spool_state st)
{
	return (unsigned)st < 4 ? state_names[st] : "?";
}

static int
state_parse(const char *s, enum spool_state *st)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, state_names[i]) == 0) {
			*st = (enum spool_state)i;
			return 0;
		}
	return -1;
}

static int
id_valid(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n > SPOOL_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-' ||
		    id[i] == '_'))
			return 0;
	return 1;
}

static int
mkdir_p(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

static struct spool *
spool_open_mode(const char *dir, uint64_t max_bytes, int recover, char *err,
    size_t errsz);

struct spool *
spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errsz)
{
	return spool_open_mode(dir, max_bytes, 1, err, errsz);
}

struct spool *
spool_attach(const char *dir, uint64_t max_bytes, char *err, size_t errsz)
{
	return spool_open_mode(dir, max_bytes, 0, err, errsz);
}

static struct spool *
spool_open_mode(const char *dir, uint64_t max_bytes, int recover, char *err,
    size_t errsz)
{
	struct spool *s;
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (str_copy(s->dir, sizeof(s->dir), dir) != 0) {
		snprintf(err, errsz, "spool path too long");
		free(s);
		return NULL;
	}
	s->max_bytes = max_bytes;
	s->owner = recover;
	s->queue_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (mkdir_p(dir) != 0 || mkdir_p(path) != 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/* Recovery: anything under tmp/ was never acknowledged. */
	if (recover && (d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    unlinkat(dirfd(d), de->d_name, 0) == 0)
				log_info("event=spool_recover removed=tmp/%s",
				    de->d_name);
		closedir(d);
	}
	snprintf(path, sizeof(path), "%s/queue", dir);
	if (mkdir_p(path) != 0 ||
	    (s->queue_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((d = opendir(path)) != NULL) {
		struct stat st;

		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    fstatat(dirfd(d), de->d_name, &st, 0) == 0)
				s->bytes += (uint64_t)st.st_size;
		closedir(d);
	}
	return s;
fail:
	spool_close(&s);
	return NULL;
}

void
spool_close(struct spool **sp)
{
	struct spool *s = *sp;

	if (s == NULL)
		return;
	if (s->queue_fd >= 0)
		close(s->queue_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
	*sp = NULL;
}


/* Copy the message source (prefix + fd range or memory) into fd. */
static int
copy_source(int fd, const struct lmtp_msg *m)
{
	char *chunk;
	off_t off, left;

	if (m->prefix_len > 0 && io_write_all(fd, m->prefix, m->prefix_len) != 0)
		return -1;
	if (m->fd < 0)
		return m->mem_len > 0 ? io_write_all(fd, m->mem, m->mem_len) : 0;
	if ((chunk = malloc(COPY_CHUNK)) == NULL)
		return -1;
	for (off = m->off, left = m->len; left > 0; ) {
		size_t want = left > COPY_CHUNK ? COPY_CHUNK : (size_t)left;
		ssize_t r = pread(m->fd, chunk, want, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || io_write_all(fd, chunk, (size_t)r) != 0) {
			if (r == 0)
				errno = EIO;
			free(chunk);
			return -1;
		}
		off += r;
		left -= r;
	}
	free(chunk);
	return 0;
}

/* One journal line for rcpt i, text made single-line and bounded. */
static void
journal_line(struct buf *b, const struct spool_rcpt *r, size_t i)
{
	char text[sizeof(r->last.text)];
	size_t k;

	snprintf(text, sizeof(text), "%s", r->last.text);
	for (k = 0; text[k]; k++)
		if ((unsigned char)text[k] < 0x20 || text[k] == 0x7f)
			text[k] = ' ';
	buf_printf(b, "R %zu %s %d %lld %d %s %s\n", i,
	    spool_state_name(r->state), r->attempts, (long long)r->next_try,
	    r->last.code, r->last.enhanced[0] ? r->last.enhanced : "-", text);
}

int
spool_commit(struct spool *s, const char *id, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, const enum spool_state *states,
    const struct reply *replies, int64_t next_try, const struct lmtp_msg *m,
    struct reply *r)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	struct buf hdr, jr;
	off_t msg_len;
	size_t i;
	int fd = -1, saved, rc = -1;
	uint64_t total;
	uint32_t rnd;

	if (!id_valid(id)) {
		reply_set(r, 451, "4.3.0", "bad spool id");
		return -1;
	}
	msg_len = (off_t)m->prefix_len + (m->fd >= 0 ? m->len : (off_t)m->mem_len);
	buf_init(&hdr, SPOOL_HDR_MAX);
	buf_init(&jr, SPOOL_HDR_MAX);
	buf_puts(&hdr, SPOOL_MAGIC);
	buf_printf(&hdr, "id: %s\ncreated: %lld\nfrom: %s\n", id,
	    (long long)time(NULL), mail_from);
	for (i = 0; i < nrcpt; i++)
		buf_printf(&hdr, "rcpt: %s\n", rcpts[i]);
	if (buf_printf(&hdr, "size: %lld\n\n", (long long)msg_len) != 0) {
		reply_set(r, 451, "4.3.0", "envelope too large for the spool");
		goto fail;
	}
	for (i = 0; states != NULL && i < nrcpt; i++) {
		struct spool_rcpt sr;

		if (states[i] == SPOOL_PENDING && replies == NULL)
			continue;
		memset(&sr, 0, sizeof(sr));
		sr.state = states[i];
		sr.attempts = 1;
		if (sr.state == SPOOL_PENDING)
			sr.next_try = next_try;
		if (replies != NULL)
			sr.last = replies[i];
		journal_line(&jr, &sr, i);
	}
	total = (uint64_t)msg_len + hdr.len + jr.len;
	pthread_mutex_lock(&s->lock);
	if (s->max_bytes > 0 && s->bytes + total > s->max_bytes) {
		pthread_mutex_unlock(&s->lock);
		reply_set(r, 452, "4.3.1", "spool full (spool_max_bytes)");
		goto fail;
	}
	s->bytes += total;	/* reserve; given back on failure */
	pthread_mutex_unlock(&s->lock);

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%08x", s->dir, id, rnd);
	snprintf(dst, sizeof(dst), "%s/queue/%s", s->dir, id);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
	    io_write_all(fd, hdr.data, hdr.len) != 0 || copy_source(fd, m) != 0 ||
	    (jr.len > 0 && io_write_all(fd, jr.data, jr.len) != 0) ||
	    fsync(fd) != 0 || close(fd) != 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
		unlink(tmp);
		reply_set(r, 451, saved == ENOSPC ? "4.3.1" : "4.3.0",
		    "cannot write the spool: %s", strerror(saved));
		goto unreserve;
	}
	fd = -1;
	/* link, not rename: rename would replace a queued message that
	 * has the same id, after both were acknowledged. */
	if (link(tmp, dst) != 0) {
		saved = errno;
		unlink(tmp);
		if (saved == EEXIST) {
			reply_set(r, 451, "4.3.0", "spool id %s is queued already",
			    id);
			rc = SPOOL_EXISTS;
		} else
			reply_set(r, 451, "4.3.0", "cannot commit to the spool: "
			    "%s", strerror(saved));
		goto unreserve;
	}
	unlink(tmp);
	if (fsync(s->queue_fd) != 0) {
		saved = errno;
		unlink(dst);
		reply_set(r, 451, "4.3.0", "cannot commit to the spool: %s",
		    strerror(saved));
		goto unreserve;
	}
	buf_free(&hdr);
	buf_free(&jr);
	reply_set(r, 250, "2.0.0", "queued as %s", id);
	return 0;
unreserve:
	pthread_mutex_lock(&s->lock);
	s->bytes -= total;
	pthread_mutex_unlock(&s->lock);
fail:
	buf_free(&hdr);
	buf_free(&jr);
	r->cls = REPLY_TEMP;
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_list(struct spool *s, char ***ids_r, size_t *n_r)
{
	char path[PATH_MAX], **ids = NULL, **tmp;
	size_t n = 0, cap = 0;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/queue", s->dir);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!id_valid(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((tmp = realloc(ids, cap * sizeof(*ids))) == NULL)
				goto fail;
			ids = tmp;
		}
		if ((ids[n] = strdup(de->d_name)) == NULL)
			goto fail;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(ids, n, sizeof(*ids), cmp_str);
	*ids_r = ids;
	*n_r = n;
	return 0;
fail:
	closedir(d);
	spool_ids_free(ids, n);
	return -1;
}

void
spool_ids_free(char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

void
spool_msg_free(struct spool_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	free(m->rcpts);
	m->rcpts = NULL;
	m->nrcpt = 0;
}

/* Apply one journal line; unknown or malformed lines are skipped (a
 * torn last line after a crash must not make the message unreadable). */
static void
journal_apply(struct spool_msg *m, char *line)
{
	char state[16], enh[16];
	unsigned long long idx;
	long long next;
	int attempts, code, off = 0, hold;

	if (sscanf(line, "H %d", &hold) == 1) {
		m->hold = hold != 0;
		return;
	}
	if (sscanf(line, "F %llu", &idx) == 1) {
		if (idx < m->nrcpt)
			m->rcpts[idx].forwarded = 1;
		return;
	}
	if (sscanf(line, "R %llu %15s %d %lld %d %15s %n", &idx, state,
	    &attempts, &next, &code, enh, &off) < 6 || off == 0 ||
	    idx >= m->nrcpt)
		return;
	{
		struct spool_rcpt *r = &m->rcpts[idx];
		enum spool_state st;

		if (state_parse(state, &st) != 0)
			return;
		r->state = st;
		r->attempts = attempts;
		r->next_try = next;
		reply_set(&r->last, code, strcmp(enh, "-") == 0 ? "" : enh,
		    "%s", line + off);
	}
}

int
spool_load(struct spool *s, const char *id, struct spool_msg *m)
{
	char path[PATH_MAX], *hdr = NULL, *p, *line, *end;
	struct stat st;
	ssize_t n;
	size_t cap = 0, nrcpt = 0, hlen;
	long long size = -1, created = 0;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (!id_valid(id))
		return -1;
	snprintf(path, sizeof(path), "%s/queue/%s", s->dir, id);
	if ((m->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)) < 0 ||
	    fstat(m->fd, &st) != 0)
		goto fail;
	m->file_len = st.st_size;
	hlen = st.st_size < SPOOL_HDR_MAX ? (size_t)st.st_size : SPOOL_HDR_MAX;
	if ((hdr = malloc(hlen + 1)) == NULL ||
	    (n = pread(m->fd, hdr, hlen, 0)) < (ssize_t)strlen(SPOOL_MAGIC))
		goto fail;
	hdr[n] = '\0';
	if (strncmp(hdr, SPOOL_MAGIC, strlen(SPOOL_MAGIC)) != 0 ||
	    (end = strstr(hdr, "\n\n")) == NULL)
		goto fail;
	m->msg_off = (off_t)(end - hdr) + 2;
	/* First pass: count recipients. */
	for (p = hdr; p < end; p = strchr(p, '\n') + 1)
		if (strncmp(p, "rcpt: ", 6) == 0)
			cap++;
	if (cap == 0 || (m->rcpts = calloc(cap, sizeof(*m->rcpts))) == NULL)
		goto fail;
	end[1] = '\0';
	for (line = hdr + strlen(SPOOL_MAGIC); *line; line = p + 1) {
		p = strchr(line, '\n');
		*p = '\0';
		if (strncmp(line, "id: ", 4) == 0)
			snprintf(m->id, sizeof(m->id), "%s", line + 4);
		else if (strncmp(line, "from: ", 6) == 0)
			snprintf(m->mail_from, sizeof(m->mail_from), "%s", line + 6);
		else if (strncmp(line, "rcpt: ", 6) == 0 && nrcpt < cap)
			snprintf(m->rcpts[nrcpt++].addr,
			    sizeof(m->rcpts[0].addr), "%s", line + 6);
		else if (strncmp(line, "size: ", 6) == 0)
			str_to_ll(line + 6, 0, LLONG_MAX, &size);
		else if (strncmp(line, "created: ", 9) == 0)
			str_to_ll(line + 9, 0, LLONG_MAX, &created);
	}
	m->nrcpt = nrcpt;
	m->created = created;
	if (size < 0 || m->msg_off + size > st.st_size)
		goto fail;
	m->msg_len = size;
	free(hdr);
	hdr = NULL;

	/* Replay the journal after the message. */
	if (st.st_size > m->msg_off + size) {
		size_t jlen = (size_t)(st.st_size - m->msg_off - size);
		char *j;

		if (jlen > 16 * 1024 * 1024 || (j = malloc(jlen + 1)) == NULL)
			goto fail;
		n = pread(m->fd, j, jlen, m->msg_off + size);
		if (n < 0) {
			free(j);
			goto fail;
		}
		j[n] = '\0';
		for (line = j; (p = memchr(line, '\n', (size_t)(j + n - line)))
		    != NULL; line = p + 1) {
			char *z = memrchr(line, '\0', (size_t)(p - line));

			*p = '\0';
			/* Zeros before a record were a block zero-filled by
			 * a crash: the record starts after them. */
			journal_apply(m, z != NULL ? z + 1 : line);
		}
		/* A torn last record: the queue's owner cuts it off; a
		 * program working on another's queue (edgemailctl, which
		 * may read while the owner is appending) starts its next
		 * record on a new line instead. */
		if (line < j + n) {
			off_t good = m->msg_off + size + (off_t)(line - j);

			log_warnx("id=%s event=spool_torn_journal bytes=%zd",
			    m->id, (ssize_t)(j + n - line));
			if (!s->owner)
				m->torn = 1;
			else if (ftruncate(m->fd, good) != 0 ||
			    fdatasync(m->fd) != 0) {
				free(j);
				goto fail;
			} else
				m->file_len = good;
		}
		free(j);
	}
	return 0;
fail:
	free(hdr);
	spool_msg_free(m);
	return -1;
}

void
spool_msg_source(const struct spool_msg *m, struct lmtp_msg *out)
{
	memset(out, 0, sizeof(*out));
	out->fd = m->fd;
	out->off = m->msg_off;
	out->len = m->msg_len;
	out->eightbit = 1;	/* not recorded; 8BITMIME is harmless */
}

static int
journal_append(struct spool *s, struct spool_msg *m, const char *p, size_t n)
{
	if (m->torn) {
		if (io_write_all(m->fd, "\n", 1) != 0)
			return -1;
		m->torn = 0;
		m->file_len++;
	}
	if (io_write_all(m->fd, p, n) != 0 || fdatasync(m->fd) != 0) {
		/* A half-written record: the owner cuts it off (load does
		 * too, if this fails); anyone else may not know the file's
		 * length (the owner appends too), and starts anew instead. */
		if (!s->owner)
			m->torn = 1;
		else if (ftruncate(m->fd, m->file_len) == 0)
			(void)fdatasync(m->fd);
		return -1;
	}
	m->file_len += (off_t)n;
	pthread_mutex_lock(&s->lock);
	s->bytes += n;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int
spool_record(struct spool *s, struct spool_msg *m, size_t i)
{
	struct buf b;
	int rc;

	if (i >= m->nrcpt)
		return -1;
	buf_init(&b, 4096);
	journal_line(&b, &m->rcpts[i], i);
	rc = b.failed ? -1 : journal_append(s, m, b.data, b.len);
	buf_free(&b);
	return rc;
}

int
spool_set_hold(struct spool *s, struct spool_msg *m, int hold)
{
	int rc = journal_append(s, m, hold ? "H 1\n" : "H 0\n", 4);

	if (rc == 0)
		m->hold = hold != 0;
	return rc;
}

int
spool_set_forwarded(struct spool *s, struct spool_msg *m, size_t i)
{
	char line[32];
	int rc;

	if (i >= m->nrcpt)
		return -1;
	snprintf(line, sizeof(line), "F %zu\n", i);
	if ((rc = journal_append(s, m, line, strlen(line))) == 0)
		m->rcpts[i].forwarded = 1;
	return rc;
}

int
spool_remove(struct spool *s, const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	if (!id_valid(id))
		return -1;
	snprintf(path, sizeof(path), "%s/queue/%s", s->dir, id);
	if (stat(path, &st) != 0 || unlink(path) != 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	s->bytes -= s->bytes >= (uint64_t)st.st_size ? (uint64_t)st.st_size :
	    s->bytes;
	pthread_mutex_unlock(&s->lock);
	fsync(s->queue_fd);
	return 0;
}

uint64_t
spool_bytes(struct spool *s)
{
	uint64_t b;

	pthread_mutex_lock(&s->lock);
	b = s->bytes;
	pthread_mutex_unlock(&s->lock);
	return b;
}
