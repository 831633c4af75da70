/*
 * ingest.c - the request body as it streams in.
 *
 * No request ever holds a whole large message in memory: the body is kept
 * in a small buffer and spilled to an unlinked file in the spool directory
 * (O_TMPFILE) once it passes INGEST_MEM_MAX.  Spill files are kept open
 * for the next request (see spill_take).  On the way in we
 *   - hash the raw bytes (the signature covers them exactly as sent),
 *   - normalise line ends to CRLF once (LMTP and SMTP need it),
 *   - keep the header section in memory (bounded by max_header_size),
 *     since the pipeline reads and rewrites header fields,
 *   - note whether there are 8-bit bytes (BODY=8BITMIME).
 * Going over max_message_size only sets a flag: the HTTP layer cannot
 * answer in the middle of an upload, so it drains and answers 413.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "lib/hdr.h"
#include "lib/io.h"
#include "lib/log.h"

#define INGEST_MEM_MAX	(64 * 1024)
#define INGEST_SLICE	(8 * 1024)	/* input converted at a time */

/*
 * The spill files of finished requests wait here for the next ones.
 * Making a file and freeing it for every message cost a third of the
 * API's CPU on a 1 MB message (ext4's inode and orphan-list journalling,
 * a page allocated per 4 KiB written and the truncation that frees them
 * all on close); a kept file is written again from offset 0 over pages
 * the page cache still has.  Every reader of a spill file (LMTP, the
 * scanner, DKIM, rspamd) reads [0, body_len) and never to its end, so
 * what an earlier, longer message left behind is never read.  A file
 * that grew past SPILL_KEEP_MAX is closed, not kept: the pool holds at
 * most SPILL_POOL * SPILL_KEEP_MAX bytes of (unlinked) spool disk, which
 * spool_max_bytes does not count, and a kept file holds the bytes of the
 * messages before until they are written over.  A scan that failed
 * (edgemail-scand gone quiet for WIRE_TIMEOUT, say) may still be
 * reading its descriptor of the file: such a file is closed, never
 * written again for the next request (spill_drop, set by the pipeline).
 */
#define SPILL_POOL	32
#define SPILL_KEEP_MAX	(4LL * 1024 * 1024)

static struct {
	pthread_mutex_t mu;
	int	 n;
	int	 fd[SPILL_POOL];
	off_t	 size[SPILL_POOL];
} spills = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A kept spill file rewound, or a new one; -1 with errno. */
static int
spill_take(const struct api *api, off_t *size)
{
	int fd = -1;

	pthread_mutex_lock(&spills.mu);
	if (spills.n > 0) {
		spills.n--;
		fd = spills.fd[spills.n];
		*size = spills.size[spills.n];
	}
	pthread_mutex_unlock(&spills.mu);
	if (fd >= 0 && lseek(fd, 0, SEEK_SET) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	*size = 0;
	return open(api->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

/* A request is done with its spill file: kept for the next one unless a
 * write to it failed or a scan may still read it (drop), it is too
 * large or the pool is full. */
static void
spill_give(int fd, off_t size, int drop)
{
	if (!drop && size <= SPILL_KEEP_MAX) {
		pthread_mutex_lock(&spills.mu);
		if (spills.n < SPILL_POOL) {
			spills.fd[spills.n] = fd;
			spills.size[spills.n] = size;
			spills.n++;
			fd = -1;
		}
		pthread_mutex_unlock(&spills.mu);
	}
	if (fd >= 0)
		close(fd);
}

int
ingest_init(struct ingest *in, const struct api *api, long long expect,
    int content_hash)
{
	memset(in, 0, sizeof(*in));
	in->fd = -1;
	if ((in->sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(in->sha, EVP_sha256(), NULL) != 1)
		return -1;
	if (content_hash && ((in->body_sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(in->body_sha, EVP_sha256(), NULL) != 1))
		return -1;
	crlf_init(&in->crlf);
	buf_init(&in->hdr, (size_t)api->max_header_size);
	buf_init(&in->body, INGEST_MEM_MAX);
	/* The header section comes out of it; CRLF for bare LF can add to
	 * it, and then the buffer grows. */
	if (expect > 0 && expect < INGEST_MEM_MAX &&
	    buf_reserve(&in->body, (size_t)expect) != 0)
		return -1;
	return 0;
}

void
ingest_free(struct ingest *in)
{
	EVP_MD_CTX_free(in->sha);
	in->sha = NULL;
	EVP_MD_CTX_free(in->body_sha);
	in->body_sha = NULL;
	buf_free(&in->hdr);
	buf_free(&in->body);
	if (in->fd >= 0)
		spill_give(in->fd, in->spill_size,
		    in->io_error || in->spill_drop);
	in->fd = -1;
	free(in->scratch);
	in->scratch = NULL;
}

static int
spill_open(struct ingest *in, const struct api *api)
{
	in->fd = spill_take(api, &in->spill_size);
	if (in->fd < 0)
		return -1;
	if (io_write_all(in->fd, in->body.data, in->body.len) != 0)
		return -1;
	buf_free(&in->body);
	return 0;
}

/* Append normalised body bytes to memory or the spill file. */
static void
body_put(struct ingest *in, const struct api *api, const char *p, size_t n)
{
	if (in->io_error || n == 0)
		return;
	if (in->body_sha != NULL)
		EVP_DigestUpdate(in->body_sha, p, n);
	in->body_len += (off_t)n;
	if (in->fd < 0 && buf_append(&in->body, p, n) == 0)
		return;
	if ((in->fd < 0 && spill_open(in, api) != 0) ||
	    io_write_all(in->fd, p, n) != 0) {
		in->io_error = 1;
		in->io_errno = errno;
	}
	if (in->spill_size < in->body_len)
		in->spill_size = in->body_len;
}

/*
 * Move normalised bytes into the header section until its blank line.
 * A line that is neither a field nor a continuation of one ends the
 * section there, as if a blank line came before it (it and what follows
 * are body): every reader of the header section (the checks, Dovecot,
 * the user's client) then sees the same fields.  Without that, a
 * "From:" after a broken line would be shown to the user by Dovecot
 * but be invisible to DMARC.
 */
static size_t
hdr_put(struct ingest *in, const struct api *api, const char *p, size_t n)
{
	size_t used = 0;

	while (used < n && !in->in_body) {
		const char *nl = memchr(p + used, '\n', n - used);
		size_t seg = nl ? (size_t)(nl - (p + used)) + 1 : n - used;
		size_t line_start, line_len;
		int kind;

		/* Where does the line we are completing start? */
		line_start = in->hdr.len;
		while (line_start > 0 && in->hdr.data[line_start - 1] != '\n')
			line_start--;
		if (buf_append(&in->hdr, p + used, seg) != 0) {
			in->too_big = 1;
			return n;
		}
		used += seg;
		if (nl == NULL)
			break;
		line_len = in->hdr.len - line_start;
		if (line_len == 2) {
			in->in_body = 1;	/* the empty line "\r\n" */
			break;
		}
		kind = hdr_line_kind(in->hdr.data + line_start, line_len);
		if (kind == HDR_LINE_FIELD ||
		    (kind == HDR_LINE_CONT && line_start > 0))
			continue;
		in->in_body = 1;
		in->hdr_broken = 1;
		body_put(in, api, in->hdr.data + line_start, line_len);
		in->hdr.len = line_start;
		if (buf_append(&in->hdr, "\r\n", 2) != 0)
			in->too_big = 1;
	}
	return used;
}

/* Whether a byte has its high bit set: eight bytes at a time, no branch
 * (the compiler makes it vector code), then the rest. */
static int
has_8bit(const char *p, size_t n)
{
	uint64_t w, acc = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= (unsigned char)p[i];
	return (acc & 0x8080808080808080ULL) != 0;
}

int
ingest_feed(struct ingest *in, const struct api *api, const char *p, size_t n)
{
	size_t out, used, off, k, clean;

	in->raw_len += n;
	if (EVP_DigestUpdate(in->sha, p, n) != 1)
		return -1;
	if (in->too_big || in->raw_len > api->max_message_size) {
		in->too_big = 1;
		return 0;		/* keep hashing nothing more; drain */
	}
	if (!in->eightbit)
		in->eightbit = has_8bit(p, n);
	/* CRLF conversion at most doubles its input: converted a slice at
	 * a time, the scratch stays 16 KiB however much MHD hands over at
	 * once (up to half its 64 KiB pool). */
	if (in->scratch == NULL &&
	    (in->scratch = malloc(2 * INGEST_SLICE + 2)) == NULL)
		return -1;
	for (off = 0; off < n; off += k) {
		k = n - off < INGEST_SLICE ? n - off : INGEST_SLICE;
		/* Body bytes with CRLF line ends already go out as they
		 * are; only the rest is copied through the converter. */
		if (in->in_body) {
			clean = crlf_clean_prefix(&in->crlf, p + off, k);
			body_put(in, api, p + off, clean);
			if (clean == k)
				continue;
		} else
			clean = 0;
		out = crlf_convert(&in->crlf, p + off + clean, k - clean,
		    in->scratch);
		used = in->in_body ? 0 : hdr_put(in, api, in->scratch, out);
		body_put(in, api, in->scratch + used, out - used);
	}
	return 0;
}

int
ingest_finish(struct ingest *in, const struct api *api, char *sha256_hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char tail[4];
	size_t n;

	if (EVP_DigestFinal_ex(in->sha, md, &mdlen) != 1)
		return -1;
	hex_encode(md, mdlen, sha256_hex);
	if (in->too_big)
		return 0;
	n = crlf_finish(&in->crlf, tail);
	if (n > 0) {
		if (in->in_body)
			body_put(in, api, tail, n);
		else if (buf_append(&in->hdr, tail, n) != 0)
			in->too_big = 1;
	}
	return 0;
}

/* Fields that each hop puts on top of a message; a retry through the edge
 * arrives with fresh ones (new timestamps), so they are not "the body". */
static int
is_trace_field(const struct hdr_field *f)
{
	static const char *names[] = {
		"Received", "Received-SPF", "Authentication-Results",
		"ARC-Seal", "ARC-Message-Signature",
		"ARC-Authentication-Results", "Return-Path", "Delivered-To",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (hdr_is(f, names[i]))
			return 1;
	return 0;
}

int
ingest_content_hash(struct ingest *in, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t pos = 0, start = 0;
	struct hdr_field f;
	EVP_MD_CTX *ctx;
	int ok;

	if (in->body_sha == NULL)
		return -1;	/* not asked for at ingest_init */

	while (hdr_next(in->hdr.data, in->hdr.len, &pos, &f) == 1 &&
	    is_trace_field(&f))
		start = f.end;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, in->hdr.data ? in->hdr.data + start : "",
	    in->hdr.len - start) == 1 &&
	    EVP_DigestFinal_ex(in->body_sha, md, &mdlen) == 1 &&
	    EVP_DigestUpdate(ctx, md, mdlen) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	hex_encode(md, mdlen, hex);
	return 0;
}
