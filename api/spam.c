/*
 * spam.c - ask rspamd about a message over its HTTP protocol
 * (POST /checkv2, JSON answer) with libcurl and one deadline.
 *
 * The message is streamed from where the API holds it (our header
 * fields, the header section, the body in memory or in the spool file):
 * nothing is copied.  The envelope goes in rspamd's request headers
 * (From, Rcpt, Queue-Id, and IP/Helo when the edge told us).  Any
 * failure (connect, timeout, HTTP status, unreadable JSON) comes back as
 * r->ok = 0 with why; the caller decides between fail-closed and
 * fail-open.
 *
 * libcurl is loaded by spam_init() (lib/dynload.h), so an API without
 * rspamd does not map it with the Kerberos, LDAP and SSH libraries it
 * brings (1.5 MiB resident).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "api/checks.h"
#include "lib/buf.h"
#include "lib/dynload.h"

#define RSPAMD_REPLY_MAX	(1024 * 1024)

static struct {
	__typeof__(curl_global_init) *global_init;
	__typeof__(curl_global_cleanup) *global_cleanup;
	__typeof__(curl_easy_init) *easy_init;
	__typeof__(curl_easy_setopt) *easy_setopt;
	__typeof__(curl_easy_perform) *easy_perform;
	__typeof__(curl_easy_getinfo) *easy_getinfo;
	__typeof__(curl_easy_strerror) *easy_strerror;
	__typeof__(curl_easy_cleanup) *easy_cleanup;
	__typeof__(curl_slist_append) *slist_append;
	__typeof__(curl_slist_free_all) *slist_free_all;
} curl;

#define CURLFN(f)	{ "curl_" #f, (void **)&curl.f }
static const struct dynsym curl_syms[] = {
	CURLFN(global_init),
	CURLFN(global_cleanup),
	CURLFN(easy_init),
	CURLFN(easy_setopt),
	CURLFN(easy_perform),
	CURLFN(easy_getinfo),
	CURLFN(easy_strerror),
	CURLFN(easy_cleanup),
	CURLFN(slist_append),
	CURLFN(slist_free_all),
};
#undef CURLFN

int
spam_init(char *err, size_t errsz)
{
	char why[200];

	if (dynload(CURL_SONAME, curl_syms,
	    sizeof(curl_syms) / sizeof(curl_syms[0]), why, sizeof(why)) != 0) {
		snprintf(err, errsz, "rspamd_url is set, but libcurl: %s", why);
		return -1;
	}
	if (curl.global_init(CURL_GLOBAL_DEFAULT) != 0) {
		snprintf(err, errsz, "curl_global_init failed");
		return -1;
	}
	return 0;
}

void
spam_cleanup(void)
{
	curl.global_cleanup();
}

struct reader {
	const struct spam_request *rq;
	off_t	 pos;		/* over prefix + hdr + body */
	int	 io_error;
};

static size_t
read_cb(char *dst, size_t size, size_t nmemb, void *arg)
{
	struct reader *rd = arg;
	const struct spam_request *rq = rd->rq;
	size_t want = size * nmemb, done = 0, k;
	off_t p1 = (off_t)rq->prefix_len, p2 = p1 + (off_t)rq->hdr_len;
	ssize_t n;

	while (done < want) {
		off_t at = rd->pos;

		if (at < p1) {
			k = (size_t)(p1 - at);
			k = k < want - done ? k : want - done;
			memcpy(dst + done, rq->prefix + at, k);
		} else if (at < p2) {
			k = (size_t)(p2 - at);
			k = k < want - done ? k : want - done;
			memcpy(dst + done, rq->hdr + (at - p1), k);
		} else if (rq->fd < 0) {
			if ((size_t)(at - p2) >= rq->mem_len)
				break;
			k = rq->mem_len - (size_t)(at - p2);
			k = k < want - done ? k : want - done;
			memcpy(dst + done, rq->mem + (at - p2), k);
		} else {
			if (at - p2 >= rq->len)
				break;
			k = (size_t)(rq->len - (at - p2));
			k = k < want - done ? k : want - done;
			n = pread(rq->fd, dst + done, k, at - p2);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rd->io_error = 1;
				return CURL_READFUNC_ABORT;
			}
			k = (size_t)n;
		}
		done += k;
		rd->pos += (off_t)k;
	}
	return done;
}

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;

	if (buf_append(b, p, size * nmemb) != 0)
		return 0;	/* over the limit: abort */
	return size * nmemb;
}

/* Header line "Name: value" when value is safe (no CR/LF). */
static struct curl_slist *
add_header(struct curl_slist *l, const char *name, const char *value)
{
	char line[600];
	struct curl_slist *n;

	if (value == NULL || *value == '\0' || strpbrk(value, "\r\n") != NULL)
		return l;
	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >=
	    sizeof(line))
		return l;
	if ((n = curl.slist_append(l, line)) == NULL)
		return l;
	return n;
}

static void
parse_reply(const char *body, struct spam_result *r)
{
	json_t *j, *a, *s, *req, *syms;
	json_error_t err;
	const char *key;
	json_t *val;
	size_t w = 0;

	if ((j = json_loads(body, 0, &err)) == NULL) {
		snprintf(r->why, sizeof(r->why), "unreadable answer: %s",
		    err.text);
		return;
	}
	a = json_object_get(j, "action");
	s = json_object_get(j, "score");
	req = json_object_get(j, "required_score");
	if (!json_is_string(a) || !json_is_number(s)) {
		snprintf(r->why, sizeof(r->why), "answer without action/score");
		json_decref(j);
		return;
	}
	snprintf(r->action, sizeof(r->action), "%s", json_string_value(a));
	r->score = json_number_value(s);
	r->required = json_is_number(req) ? json_number_value(req) : 0;
	syms = json_object_get(j, "symbols");
	if (json_is_object(syms)) {
		json_object_foreach(syms, key, val) {
			size_t kl = strlen(key);

			if (w + kl + 2 >= sizeof(r->symbols))
				break;
			if (w > 0)
				r->symbols[w++] = ',';
			memcpy(r->symbols + w, key, kl);
			w += kl;
			r->symbols[w] = '\0';
		}
	}
	json_decref(j);
	r->ok = 1;
}

void
spam_check(const char *url, long timeout_ms, const struct spam_request *rq,
    struct spam_result *r)
{
	char full[1024], errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hl = NULL;
	struct reader rd;
	struct buf body;
	CURL *c;
	CURLcode cc;
	long status = 0;
	size_t i, n = strlen(url);
	off_t total;

	memset(r, 0, sizeof(*r));
	memset(&rd, 0, sizeof(rd));
	rd.rq = rq;
	while (n > 0 && url[n - 1] == '/')
		n--;
	if (n >= 8 && strncmp(url + n - 8, "/checkv2", 8) == 0)
		snprintf(full, sizeof(full), "%.*s", (int)n, url);
	else
		snprintf(full, sizeof(full), "%.*s/checkv2", (int)n, url);
	if ((c = curl.easy_init()) == NULL) {
		snprintf(r->why, sizeof(r->why), "curl_easy_init failed");
		return;
	}
	buf_init(&body, RSPAMD_REPLY_MAX);
	total = (off_t)rq->prefix_len + (off_t)rq->hdr_len +
	    (rq->fd >= 0 ? rq->len : (off_t)rq->mem_len);
	hl = add_header(hl, "Queue-Id", rq->req_id);
	hl = add_header(hl, "From", rq->mail_from);
	for (i = 0; i < rq->nrcpt; i++)
		hl = add_header(hl, "Rcpt", rq->rcpts[i]);
	hl = add_header(hl, "IP", rq->ip);
	hl = add_header(hl, "Helo", rq->helo);
	hl = add_header(hl, "Content-Type", "message/rfc822");
	hl = add_header(hl, "Expect", "");
	errbuf[0] = '\0';
	curl.easy_setopt(c, CURLOPT_URL, full);
	curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl.easy_setopt(c, CURLOPT_POST, 1L);
	curl.easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl.easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
	curl.easy_setopt(c, CURLOPT_READDATA, &rd);
	curl.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)total);
	curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl.easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < 5000 ? timeout_ms : 5000L);
	curl.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl.easy_perform(c);
	curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK)
		snprintf(r->why, sizeof(r->why), "rspamd: %s",
		    errbuf[0] ? errbuf : curl.easy_strerror(cc));
	else if (status != 200)
		snprintf(r->why, sizeof(r->why), "rspamd: HTTP status %ld",
		    status);
	else
		parse_reply(buf_cstr(&body), r);
	if (rd.io_error)
		snprintf(r->why, sizeof(r->why), "cannot read the message");
	curl.slist_free_all(hl);
	curl.easy_cleanup(c);
	buf_free(&body);
}
