/*
 * message.c - a submitted message from DATA to the spool.
 *
 * While DATA streams in, the header section is kept in memory (bounded
 * by max_header_size) and the body in memory up to MSG_SPILL bytes, then
 * in an unlinked temporary file in the outbound spool directory.  At the
 * end of data, in order:
 *
 *   1. refusals that need no work: bare CR/LF (554 5.6.0), header too
 *      large (552 5.3.4), no header section (554 5.6.0);
 *   2. From: (and Sender:) must name only addresses the user owns
 *      (553 5.7.1), exactly one From: field;
 *   3. the virus scan (lib/scan, the API's engine): 554 5.7.1 for a
 *      virus, an encrypted archive or an archive bomb, 451 when the
 *      scanner cannot answer;
 *   4. the fields we add on top: Received, and Message-ID / Date when
 *      missing; any X-Edgemail-Delivery-Id from the client is removed
 *      (it would suppress a delivery, see deploy/sieve/junk.sieve);
 *   5. DKIM signatures for the From: domain (lib/dkim_sign);
 *   6. spool commit (fsync) with the envelope recipients, plus the
 *      archive mailbox of the sender's domain when it has one;
 *
 * and only then 250.  Nothing is sent anywhere before the commit; the
 * queue runner (queue.c) takes over after it.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/dkim_sign.h"
#include "lib/hdr.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/scan.h"
#include "smtp-out/submit.h"

/* Body bytes kept in memory; more go to an unlinked file in spool_dir.
 * As in the API: a session holds 64 KiB, not the message (at 1 MiB, 32
 * sessions of 1 MB messages held 59 MiB in make bench).  The spool copy
 * is written either way, so a spilled body costs one more page-cache
 * write, no fsync. */
#define MSG_SPILL	(64 * 1024)
#define MSG_PREFIX_MAX	(64 * 1024)	/* fields we add on top */

struct msgstate {
	struct buf hdr;		/* header section incl. the blank line */
	int	 in_body;
	int	 hdr_too_big;
	struct buf body;	/* body while small ... */
	int	 fd;		/* ... then in this unlinked file */
	off_t	 body_len;
	int	 eightbit;
};

/* ---- storage during DATA ---------------------------------------------- */

int
msg_begin(struct session *s, struct reply *r)
{
	struct msgstate *m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		reply_set(r, 451, "4.3.0", "Out of memory, try again later");
		return -1;
	}
	buf_init(&m->hdr, (size_t)s->sv->max_header_size);
	buf_init(&m->body, MSG_SPILL);
	m->fd = -1;
	s->msg = m;
	return 0;
}

void
msg_abort(struct session *s)
{
	struct msgstate *m = s->msg;

	if (m == NULL)
		return;
	buf_free(&m->hdr);
	buf_free(&m->body);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
	s->msg = NULL;
}


/* An unlinked temporary file in the spool directory (same disk as the
 * queue, so a large message never lands in /tmp). */
static int
spill_open(struct session *s)
{
	char path[1100];
	int fd;

	fd = open(s->sv->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/body.XXXXXX", s->sv->spool_dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -1;
	unlink(path);
	return fd;
}

static int
body_write(struct session *s, struct msgstate *m, const char *p, size_t n)
{
	if (m->fd < 0 && m->body.len + n <= MSG_SPILL)
		return buf_append(&m->body, p, n);
	if (m->fd < 0) {
		if ((m->fd = spill_open(s)) < 0) {
			log_warnx("session=%s event=spill_failed error=\"%s\"",
			    s->id, strerror(errno));
			return -1;
		}
		if (m->body.len > 0 &&
		    io_write_all(m->fd, m->body.data, m->body.len) != 0)
			return -1;
		buf_free(&m->body);
		buf_init(&m->body, MSG_SPILL);
	}
	return io_write_all(m->fd, p, n);
}

int
msg_write(struct session *s, const char *p, size_t n)
{
	struct msgstate *m = s->msg;
	size_t i;

	for (i = 0; i < n && !m->eightbit; i++)
		if ((unsigned char)p[i] >= 0x80)
			m->eightbit = 1;
	/* The header section ends at the first empty line (CRLF CRLF, or
	 * CRLF as the very first line). */
	while (!m->in_body && n > 0) {
		if (buf_putc(&m->hdr, *p) != 0) {
			m->hdr_too_big = 1;
			return 0;	/* refused at the end */
		}
		p++;
		n--;
		if ((m->hdr.len == 2 && memcmp(m->hdr.data, "\r\n", 2) == 0) ||
		    (m->hdr.len >= 4 &&
		    memcmp(m->hdr.data + m->hdr.len - 4, "\r\n\r\n", 4) == 0))
			m->in_body = 1;
	}
	if (n == 0 || m->hdr_too_big)
		return 0;
	m->body_len += (off_t)n;
	return body_write(s, m, p, n);
}

/* ---- checks after DATA ------------------------------------------------ */

struct from_check {
	struct session *s;
	int	 n;
	int	 bad;
	char	 first_domain[ADDR_DOMAIN_MAX + 1];
	char	 offender[ADDR_PATH_MAX + 1];
};

static int
from_one(void *arg, const char *p, size_t len)
{
	struct from_check *fc = arg;
	struct addr a;
	const char *err;

	fc->n++;
	if (addr_parse(p, len, ADDR_ALLOW_UTF8, &a, &err) != 0) {
		if (!fc->bad)
			snprintf(fc->offender, sizeof(fc->offender), "%.*s",
			    (int)(len > 200 ? 200 : len), p);
		fc->bad = 1;
		return 0;
	}
	if (fc->first_domain[0] == '\0')
		snprintf(fc->first_domain, sizeof(fc->first_domain), "%s",
		    a.domain);
	if (!owner_owns(fc->s->sv->owner, fc->s->user, &a) && !fc->bad) {
		addr_format(&a, fc->offender, sizeof(fc->offender));
		fc->bad = 1;
	}
	return 0;
}

/*
 * Walk the header section: From/Sender ownership, which fields exist.
 * Returns 0, or -1 with the refusal in r.
 */
static int
check_header(struct session *s, struct msgstate *m, int *has_msgid,
    int *has_date, char *dkim_domain, size_t dsz, struct reply *r)
{
	struct hdr_field f;
	struct from_check fc;
	struct buf v;
	size_t pos = 0;
	int rc, nfrom = 0, n;

	*has_msgid = *has_date = 0;
	memset(&fc, 0, sizeof(fc));
	fc.s = s;
	buf_init(&v, (size_t)s->sv->max_header_size + 1);
	while ((rc = hdr_next(m->hdr.data, m->hdr.len, &pos, &f)) == 1) {
		if (hdr_is(&f, "Message-ID"))
			*has_msgid = 1;
		else if (hdr_is(&f, "Date"))
			*has_date = 1;
		else if (hdr_is(&f, "From") || hdr_is(&f, "Sender")) {
			if (hdr_is(&f, "From"))
				nfrom++;
			buf_reset(&v);
			if (hdr_unfold(&f, &v) != 0) {
				buf_free(&v);
				reply_set(r, 554, "5.6.0", "Malformed %s: field",
				    hdr_is(&f, "From") ? "From" : "Sender");
				return -1;
			}
			n = hdr_addresses(buf_cstr(&v), v.len, from_one, &fc);
			if (n < 0 || (n == 0 && hdr_is(&f, "From"))) {
				buf_free(&v);
				reply_set(r, 553, "5.7.1", "Malformed %s: field: "
				    "no valid address", hdr_is(&f, "From") ?
				    "From" : "Sender");
				return -1;
			}
		}
	}
	buf_free(&v);
	if (rc < 0) {
		reply_set(r, 554, "5.6.0", "Malformed header section (a line "
		    "that is not a header field)");
		return -1;
	}
	if (nfrom != 1) {
		reply_set(r, 553, "5.7.1", nfrom == 0 ?
		    "The message has no From: field" :
		    "The message has more than one From: field");
		return -1;
	}
	if (fc.bad) {
		log_info("session=%s event=from_refused user=%s from=\"%s\"",
		    s->id, s->user, fc.offender);
		reply_set(r, 553, "5.7.1", "From: address <%s> is not owned by "
		    "user %s", fc.offender, s->user);
		return -1;
	}
	snprintf(dkim_domain, dsz, "%s", fc.first_domain);
	return 0;
}

/* The header section without fields a client may not set. */
static int
copy_header(const struct msgstate *m, struct buf *out)
{
	struct hdr_field f;
	size_t pos = 0, copied = 0;

	while (hdr_next(m->hdr.data, m->hdr.len, &pos, &f) == 1) {
		if (!hdr_is(&f, "X-Edgemail-Delivery-Id"))
			continue;
		if (buf_append(out, m->hdr.data + copied, f.start - copied) != 0)
			return -1;
		copied = f.end;
	}
	if (buf_append(out, m->hdr.data + copied, m->hdr.len - copied) != 0)
		return -1;
	/* A message without a body: end its header section. */
	if (!m->in_body && buf_puts(out, "\r\n") != 0)
		return -1;
	return 0;
}

/* Received (RFC 5321 4.4), with the TLS details (RFC 8314 style). */
static int
trace_fields(struct session *s, const char *id, int has_msgid, int has_date,
    struct buf *out)
{
	char date[64];

	submit_date(date, sizeof(date));
	if (buf_printf(out, "Received: from %s ([%s])\r\n\tby %s "
	    "(edgemail-submit) with %s\r\n\t(version=%s cipher=%s)\r\n"
	    "\tid %s%s%s%s;\r\n\t%s\r\n", s->helo[0] ? s->helo : "unknown",
	    s->conn.peer_ip, s->sv->hostname,
	    s->mail.smtputf8 ? "UTF8SMTPSA" : "ESMTPSA",
	    s->conn.tls_version, s->conn.tls_cipher, id,
	    s->nrcpt == 1 ? "\r\n\tfor <" : "",
	    s->nrcpt == 1 ? s->rcpts[0] : "", s->nrcpt == 1 ? ">" : "",
	    date) != 0)
		return -1;
	if (!has_date && buf_printf(out, "Date: %s\r\n", date) != 0)
		return -1;
	if (!has_msgid && buf_printf(out, "Message-ID: <%s.%lld@%s>\r\n", id,
	    (long long)time(NULL), s->sv->hostname) != 0)
		return -1;
	return 0;
}

static void
scan_check(struct session *s, struct msgstate *m, const struct buf *hdr,
    struct reply *r)
{
	struct scan_input in;
	struct scan_result res;

	reply_set(r, 250, "2.0.0", "clean");
	if (s->sv->scan == NULL)
		return;
	memset(&in, 0, sizeof(in));
	in.prefix = hdr->data;
	in.prefix_len = hdr->len;
	in.fd = m->fd;
	if (m->fd >= 0) {
		in.off = 0;
		in.len = m->body_len;
	} else {
		in.mem = m->body.data != NULL ? m->body.data : "";
		in.mem_len = m->body.len;
	}
	scan_message(s->sv->scan, &in, &res);
	scan_reply(&res, r);
	if (res.verdict != SCAN_CLEAN)
		log_info("session=%s event=scan verdict=%s name=\"%s\" user=%s "
		    "ms=%.1f", s->id, scan_verdict_name(res.verdict), res.name,
		    s->user, res.ms);
}

void
msg_end(struct session *s, int bad_eol, struct reply *r)
{
	struct msgstate *m = s->msg;
	struct buf signed_hdr, prefix;
	struct dkim_input din;
	char id[SUBMIT_ID_LEN + 1], dkim_domain[ADDR_DOMAIN_MAX + 1];
	char archive[ADDR_PATH_MAX + 1], domain[ADDR_DOMAIN_MAX + 1];
	const char **rcpts = NULL;
	size_t nrcpt, i;
	int has_msgid, has_date, nsig = 0;
	int64_t t_scan, t_dkim, t_spool, t0 = monotonic_ms();
	char *at;

	buf_init(&signed_hdr, (size_t)s->sv->max_header_size + MSG_PREFIX_MAX);
	buf_init(&prefix, (size_t)s->sv->max_header_size + 2 * MSG_PREFIX_MAX);
	if (bad_eol) {
		log_info("session=%s event=refused why=bare_eol user=%s", s->id,
		    s->user);
		reply_set(r, 554, "5.6.0", "Message refused: bare CR or LF "
		    "line ending (only CRLF is allowed)");
		goto done;
	}
	if (m->hdr_too_big) {
		reply_set(r, 552, "5.3.4", "Header section exceeds the limit "
		    "(%llu bytes)", s->sv->max_header_size);
		goto done;
	}
	if (m->hdr.len == 0) {
		reply_set(r, 554, "5.6.0", "Empty message");
		goto done;
	}
	if (check_header(s, m, &has_msgid, &has_date, dkim_domain,
	    sizeof(dkim_domain), r) != 0)
		goto done;

	submit_new_id(id);
	if (trace_fields(s, id, has_msgid, has_date, &signed_hdr) != 0 ||
	    copy_header(m, &signed_hdr) != 0) {
		reply_set(r, 552, "5.3.4", "Header section too large");
		goto done;
	}
	scan_check(s, m, &signed_hdr, r);
	t_scan = monotonic_ms();
	if (r->cls != REPLY_OK)
		goto done;

	memset(&din, 0, sizeof(din));
	din.hdr = signed_hdr.data;
	din.hdr_len = signed_hdr.len;
	din.fd = m->fd;
	if (m->fd >= 0) {
		din.off = 0;
		din.len = m->body_len;
	} else {
		din.body = m->body.data != NULL ? m->body.data : "";
		din.body_len = m->body.len;
	}
	if (s->sv->dkim != NULL) {
		nsig = dkim_sign_message(s->sv->dkim, dkim_domain, id, &din,
		    &prefix, r);
		if (nsig == 0 && strcasecmp(dkim_domain, s->mail.addr.domain) != 0)
			nsig = dkim_sign_message(s->sv->dkim,
			    s->mail.addr.domain, id, &din, &prefix, r);
		if (nsig < 0)
			goto done;
	}
	t_dkim = monotonic_ms();
	if (buf_append(&prefix, signed_hdr.data, signed_hdr.len) != 0) {
		reply_set(r, 552, "5.3.4", "Header section too large");
		goto done;
	}

	/* Envelope recipients, plus the sender domain's archive mailbox. */
	if ((rcpts = calloc(s->nrcpt + 1, sizeof(*rcpts))) == NULL) {
		reply_set(r, 451, "4.3.0", "Out of memory, try again later");
		goto done;
	}
	for (i = 0; i < s->nrcpt; i++)
		rcpts[i] = s->rcpts[i];
	nrcpt = s->nrcpt;
	at = strrchr(s->user, '@');
	snprintf(domain, sizeof(domain), "%s", at != NULL ? at + 1 : "");
	if (owner_archive(s->sv->owner, domain, archive, sizeof(archive))) {
		for (i = 0; i < nrcpt; i++)
			if (strcasecmp(rcpts[i], archive) == 0)
				break;
		if (i == nrcpt)
			rcpts[nrcpt++] = archive;
	}
	if (queue_commit(s->sv->queue, id, s->mail_from, rcpts, nrcpt,
	    prefix.data, prefix.len, m->fd < 0 ? (m->body.data ? m->body.data :
	    "") : NULL, m->body.len, m->fd, 0, m->body_len, r) != 0) {
		log_warnx("session=%s id=%s event=spool_failed code=%d text=\"%s\"",
		    s->id, id, r->code, r->text);
		goto done;
	}
	t_spool = monotonic_ms();
	log_info("session=%s id=%s event=accepted user=%s from=%s nrcpt=%zu "
	    "size=%lld dkim=%d ms_scan=%lld ms_dkim=%lld ms_spool=%lld", s->id,
	    id, s->user, s->mail_from, nrcpt,
	    (long long)(prefix.len + (size_t)m->body_len), nsig,
	    (long long)(t_scan - t0), (long long)(t_dkim - t_scan),
	    (long long)(t_spool - t_dkim));
	reply_set(r, 250, "2.0.0", "Ok: queued as %s", id);
done:
	free(rcpts);
	buf_free(&signed_hdr);
	buf_free(&prefix);
	msg_abort(s);
}
