/*
 * relay.c - one SMTP transaction to the relayhost with libcurl.
 *
 * STARTTLS is required (CURLUSESSL_ALL, TLS >= 1.2, the certificate
 * verified against relayhost_ca_file or the system's CAs) and AUTH uses
 * the credentials of relayhost_auth_file.  CURLOPT_MAIL_RCPT_ALLLOWFAILS
 * (so spelled in libcurl 7.88) keeps the transaction going past refused
 * recipients.  libcurl reports no per-recipient result, so the protocol
 * trace (CURLOPT_DEBUGFUNCTION) is followed: the command sent (MAIL,
 * RCPT n, DATA) and the reply that answers it, which gives each
 * recipient its own outcome:
 *
 *   RCPT refused            -> that reply (4xx TEMP, 5xx PERM)
 *   RCPT accepted           -> the reply after the final dot
 *   MAIL or DATA refused    -> that reply for every recipient still open
 *   no reply (connection, TLS, AUTH, timeout) -> TEMP 451 4.4.x
 *
 * A credentials line never reaches the log (the AUTH command is not
 * looked at).  Messages are already CRLF (refused otherwise at DATA), so
 * libcurl's dot-stuffing is right and CURLOPT_CRLF stays off.  One curl
 * handle per queue runner thread keeps the connection to the relayhost
 * open between messages.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "lib/buf.h"
#include "lib/conf.h"
#include "lib/log.h"
#include "smtp-out/submit.h"

#define RELAY_LINE_MAX	2048

struct relay {
	char	 url[600];
	char	 name[300];		/* relayhost as configured, for logs */
	char	 user[256];
	char	 pass[256];
	char	 ca_file[1024];
	long	 timeout_ms;
	int	 configured;
};

enum phase { PH_NONE, PH_MAIL, PH_RCPT, PH_DATA, PH_BODY };

struct txn {
	const char *const *rcpts;
	size_t	 n;
	struct reply *out;
	unsigned char *final;		/* out[i] is the final outcome */
	unsigned char *accepted;
	enum phase phase;
	size_t	 rcpt_next;		/* RCPT commands sent so far */
	size_t	 rcpt_cur;
	struct buf in;			/* partial reply line */
	/* the message */
	int	 fd;
	off_t	 pos, end;
	int	 read_error;
};

/* ---- configuration ------------------------------------------------------- */

/* "[host]:port", "host:port" or "host" -> host and port. */
static int
split_hostport(const char *s, char *host, size_t hostsz, char *port,
    size_t portsz)
{
	const char *end, *colon;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		snprintf(host, hostsz, "%.*s", (int)(end - s - 1), s + 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strrchr(s, ':');
		snprintf(host, hostsz, "%.*s", colon != NULL ?
		    (int)(colon - s) : (int)strlen(s), s);
	}
	snprintf(port, portsz, "%s", colon != NULL ? colon + 1 : "25");
	return host[0] != '\0' && port[0] != '\0' ? 0 : -1;
}

/* Find the relayhost's line in the credentials file:
 *   [host]:port  user:password       (Postfix sasl_passwd style) */
static int
load_credentials(struct relay *rl, const char *path, const char *host,
    const char *port, char *err, size_t errsz)
{
	FILE *f;
	char line[1024], h[300], p[16];
	int lineno = 0, found = 0;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errsz, "relayhost_auth_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *k, *v, *colon, *e;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		for (k = line; *k == ' ' || *k == '\t'; k++)
			;
		if (*k == '#' || *k == '\0')
			continue;
		for (v = k; *v != '\0' && *v != ' ' && *v != '\t'; v++)
			;
		if (*v == '\0')
			goto bad;
		*v++ = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); )
			*--e = '\0';
		if ((colon = strchr(v, ':')) == NULL)
			goto bad;
		if (strcmp(k, "*") != 0 &&
		    (split_hostport(k, h, sizeof(h), p, sizeof(p)) != 0 ||
		    strcasecmp(h, host) != 0 || strcmp(p, port) != 0))
			continue;
		*colon = '\0';
		snprintf(rl->user, sizeof(rl->user), "%s", v);
		snprintf(rl->pass, sizeof(rl->pass), "%s", colon + 1);
		found = 1;
		if (strcmp(k, "*") != 0)
			break;		/* an exact match wins over "*" */
	}
	fclose(f);
	if (!found) {
		snprintf(err, errsz, "relayhost_auth_file %s: no line for %s:%s",
		    path, host, port);
		return -1;
	}
	return 0;
bad:
	fclose(f);
	snprintf(err, errsz, "relayhost_auth_file %s:%d: want \"[host]:port "
	    "user:password\"", path, lineno);
	return -1;
}

struct relay *
relay_new(struct conf *conf, const char *hostname, char *err, size_t errsz)
{
	struct relay *rl;
	const char *rh, *auth;
	char host[256], port[16], e[256];
	long long t;

	if ((rl = calloc(1, sizeof(*rl))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (conf_get_duration(conf, "relay_timeout", &t, e, sizeof(e)) != 0) {
		snprintf(err, errsz, "%s", e);
		free(rl);
		return NULL;
	}
	rl->timeout_ms = (long)t * 1000;
	snprintf(rl->ca_file, sizeof(rl->ca_file), "%s",
	    conf_get(conf, "relayhost_ca_file"));
	rh = conf_get(conf, "relayhost");
	if (*rh == '\0')
		return rl;
	if (split_hostport(rh, host, sizeof(host), port, sizeof(port)) != 0 ||
	    strspn(port, "0123456789") != strlen(port)) {
		snprintf(err, errsz, "bad relayhost '%s' (want [host]:port)", rh);
		free(rl);
		return NULL;
	}
	snprintf(rl->name, sizeof(rl->name), "%s", rh);
	snprintf(rl->url, sizeof(rl->url), strchr(host, ':') != NULL ?
	    "smtp://[%s]:%s/%s" : "smtp://%s:%s/%s", host, port, hostname);
	auth = conf_get(conf, "relayhost_auth_file");
	if (*auth != '\0' &&
	    load_credentials(rl, auth, host, port, err, errsz) != 0) {
		free(rl);
		return NULL;
	}
	rl->configured = 1;
	return rl;
}

void
relay_free(struct relay **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	OPENSSL_cleanse((*rp)->pass, sizeof((*rp)->pass));
	free(*rp);
	*rp = NULL;
}

int
relay_configured(const struct relay *r)
{
	return r != NULL && r->configured;
}

void
relay_handle_free(void **handle)
{
	if (handle != NULL && *handle != NULL) {
		curl_easy_cleanup(*handle);
		*handle = NULL;
	}
}

/* ---- the transaction ------------------------------------------------------ */

static void
set_open(struct txn *t, const struct reply *r, int only_accepted)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!t->final[i] && (!only_accepted || t->accepted[i])) {
			t->out[i] = *r;
			t->final[i] = 1;
		}
}

/* A whole reply line from the relayhost. */
static void
on_reply_line(struct txn *t, const char *line, size_t len)
{
	struct reply r;
	int more;

	if (reply_parse_line(line, len, &r, &more) != 0 || more)
		return;
	switch (t->phase) {
	case PH_MAIL:
		if (r.cls != REPLY_OK)
			set_open(t, &r, 0);
		break;
	case PH_RCPT:
		if (t->rcpt_cur >= t->n)
			break;
		if (r.cls == REPLY_OK)
			t->accepted[t->rcpt_cur] = 1;
		else {
			t->out[t->rcpt_cur] = r;
			t->final[t->rcpt_cur] = 1;
		}
		break;
	case PH_DATA:
		if (r.code == 354)
			t->phase = PH_BODY;
		else
			set_open(t, &r, 1);
		break;
	case PH_BODY:
		set_open(t, &r, 1);
		t->phase = PH_NONE;
		break;
	case PH_NONE:
		break;
	}
}

static int
on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	struct txn *t = arg;
	char *nl;

	(void)h;
	if (type == CURLINFO_HEADER_OUT) {
		if (size >= 10 && strncasecmp(data, "MAIL FROM:", 10) == 0)
			t->phase = PH_MAIL;
		else if (size >= 8 && strncasecmp(data, "RCPT TO:", 8) == 0) {
			t->phase = PH_RCPT;
			t->rcpt_cur = t->rcpt_next++;
		} else if (size >= 4 && strncasecmp(data, "DATA", 4) == 0 &&
		    (size == 4 || data[4] == '\r' || data[4] == '\n'))
			t->phase = PH_DATA;
		/* Anything else (EHLO, STARTTLS, AUTH with its secret,
		 * QUIT) is not looked at. */
		return 0;
	}
	if (type != CURLINFO_HEADER_IN)
		return 0;
	if (buf_append(&t->in, data, size) != 0) {
		buf_reset(&t->in);
		return 0;
	}
	while (t->in.len > 0 &&
	    (nl = memchr(t->in.data, '\n', t->in.len)) != NULL) {
		size_t n = (size_t)(nl - t->in.data);

		on_reply_line(t, t->in.data, n > 0 && nl[-1] == '\r' ? n - 1 : n);
		buf_consume(&t->in, n + 1);
	}
	return 0;
}

static size_t
on_read(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct txn *t = arg;
	size_t want = size * nmemb;
	ssize_t n;

	if (t->pos >= t->end)
		return 0;
	if ((off_t)want > t->end - t->pos)
		want = (size_t)(t->end - t->pos);
	do {
		n = pread(t->fd, ptr, want, t->pos);
	} while (n < 0 && errno == EINTR);
	if (n <= 0) {
		t->read_error = 1;
		return CURL_READFUNC_ABORT;
	}
	t->pos += n;
	return (size_t)n;
}

void
relay_send(struct relay *rl, void **handle, const char *mail_from,
    const char *const *rcpts, size_t nrcpt, int fd, off_t off, off_t len,
    struct reply *rcpt_r)
{
	struct curl_slist *list = NULL, *l;
	struct txn t;
	struct reply r;
	char from[ADDR_PATH_MAX + 3], rc[ADDR_PATH_MAX + 3];
	char errbuf[CURL_ERROR_SIZE];
	CURL *h = *handle;
	CURLcode cc;
	size_t i;

	memset(&t, 0, sizeof(t));
	t.rcpts = rcpts;
	t.n = nrcpt;
	t.out = rcpt_r;
	t.fd = fd;
	t.pos = off;
	t.end = off + len;
	buf_init(&t.in, RELAY_LINE_MAX);
	t.final = calloc(nrcpt, 1);
	t.accepted = calloc(nrcpt, 1);
	if (h == NULL)
		*handle = h = curl_easy_init();
	if (h == NULL || t.final == NULL || t.accepted == NULL) {
		reply_set(&r, 451, "4.3.0", "Out of memory");
		for (i = 0; i < nrcpt; i++)
			rcpt_r[i] = r;
		goto done;
	}
	for (i = 0; i < nrcpt; i++) {
		snprintf(rc, sizeof(rc), "<%s>", rcpts[i]);
		if ((l = curl_slist_append(list, rc)) == NULL) {
			reply_set(&r, 451, "4.3.0", "Out of memory");
			set_open(&t, &r, 0);
			goto done;
		}
		list = l;
	}
	snprintf(from, sizeof(from), "<%s>", mail_from);
	errbuf[0] = '\0';
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, rl->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (rl->ca_file[0] != '\0')
		curl_easy_setopt(h, CURLOPT_CAINFO, rl->ca_file);
	if (rl->user[0] != '\0') {
		curl_easy_setopt(h, CURLOPT_USERNAME, rl->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, rl->pass);
	}
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, list);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &t);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, &t);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    rl->timeout_ms < 30000 ? rl->timeout_ms : 30000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rl->timeout_ms);

	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);

		switch (cc) {
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
			reply_set(&r, 451, "4.4.1", "relayhost %s unreachable: %s",
			    rl->name, why);
			break;
		case CURLE_USE_SSL_FAILED:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
			reply_set(&r, 451, "4.7.5", "relayhost %s: TLS failed: %s",
			    rl->name, why);
			break;
		case CURLE_LOGIN_DENIED:
			reply_set(&r, 451, "4.7.0", "relayhost %s refused our "
			    "credentials", rl->name);
			break;
		default:
			reply_set(&r, 451, "4.4.2", "relayhost %s: %s", rl->name,
			    why);
			break;
		}
		set_open(&t, &r, 0);
		log_info("event=relay_error relayhost=%s curl=%d error=\"%s\"",
		    rl->name, (int)cc, why);
	}
	/* Anything still open got no answer of its own. */
	reply_set(&r, 451, "4.4.2", "relayhost %s: no reply for this recipient",
	    rl->name);
	set_open(&t, &r, 0);
done:
	curl_slist_free_all(list);
	buf_free(&t.in);
	free(t.final);
	free(t.accepted);
}
