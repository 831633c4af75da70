/*
 * http.c - the libmicrohttpd side of edgemail-api.
 *
 * One thread per connection (the LMTP pool bounds and orders the work
 * that reaches Dovecot, see lmtp/pool.h).  Each request goes through:
 *
 *   first call   routing; framing checks that libmicrohttpd 0.9.75 lets
 *                through (two Content-Length, CL + Transfer-Encoding,
 *                control characters in header values); authentication
 *                headers, key and timestamp window; content type; size
 *                (413 before any body byte is read); envelope
 *   body calls   streamed into struct ingest (hash, CRLF, spool file)
 *   last call    signature over the body hash, replay cache, pipeline
 *
 * A watchdog thread enforces `request_timeout` on every request that is
 * still being received (libmicrohttpd's own timeout is only an idle
 * timeout, so a client sending one byte at a time would hold a thread).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api/api.h"
#include "api/checks.h"
#include "auth/sig.h"
#include "lib/conf.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lmtp/pool.h"

#define TARGET_MAX	(16 * 1024)
/* MHD's memory per connection: the request line (at most TARGET_MAX) and
 * header fields, then its read buffer; zeroed, so all of it is resident.
 * Not 32 KiB: with it the client of an over-long header section now and
 * then got a reset instead of the 431 (MHD stops reading sooner and
 * closes with more of the request unread). */
#define POOL_SIZE	(64 * 1024)
#define IDEM_KEY_MAX	200
#define IDLE_TIMEOUT	30	/* seconds without a byte on a connection */
#define EARLY_MAX_SECS	30	/* an early envelope older than this is dropped */

/* Per-connection record for the watchdog. */
struct watch {
	struct watch *prev, *next;
	int	 fd;
	double	 req_start;	/* the request (or the wait for the next
				 * one on a keep-alive connection) began;
				 * 0: none to watch */
	int	 busy;		/* in the pipeline: not ours to cut */
	int	 signed_ok;	/* a request on it had a good signature */
};

enum req_state { RQ_NEW, RQ_BODY, RQ_DONE };

struct request {
	char	 id[API_ID_LEN + 1];
	double	 t_start;
	enum req_state state;
	struct watch *watch;
	char	*target;		/* raw request target, as signed */
	int	 target_too_long;
	unsigned http;			/* final status, for metrics */

	/* POST /v1/messages */
	char	 key_id[65];
	char	 ts[24];
	int64_t	 ts_val;
	char	 sig[SIG_HEADER_LEN + 2];
	char	 idem[IDEM_KEY_MAX + 1];	/* as sent (and signed) */
	/* The record it names: the client's key id and its key; "" when
	 * this request has no record to finish. */
	char	 idem_rec[64 + IDEM_KEY_MAX + 2];
	struct envelope env;
	struct ingest in;
	int	 in_ready;
	/* The LMTP transaction begun while the body arrives (early
	 * envelope); NULL when none. */
	struct lmtp_conn *begun;
	double	 t_begun;
	int	 early;			/* one was begun, for the log */
	int	 key_shown;		/* signature checked with the headers */

	/* POST /autodiscover/autodiscover.xml (api/autoconfig.c) */
	int	 autoconfig;		/* AUTOCONFIG_*, 0: another endpoint */
	struct buf ac_body;
};

static struct api *api;
static struct MHD_Daemon *daemons[2];
static pthread_t watchdog_tid;
static char *tls_cert_pem, *tls_key_pem;
static atomic_int watchdog_stop;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct watch *watch_head;

static double
now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
request_id(char *out)
{
	unsigned char r[API_ID_LEN / 2];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	hex_encode(r, sizeof(r), out);
}

/* ---- responses ---------------------------------------------------- */

static enum MHD_Result
respond_raw(struct MHD_Connection *con, struct request *rq, unsigned code,
    const char *ctype, char *body, size_t len, int retry_after,
    const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char ra[24];

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(con, code, resp);
	MHD_destroy_response(resp);
	rq->http = code;
	rq->state = RQ_DONE;
	return ret;
}

static enum MHD_Result
respond_json(struct MHD_Connection *con, struct request *rq, unsigned code,
    json_t *j, int retry_after)
{
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	if (s == NULL)
		return MHD_NO;
	return respond_raw(con, rq, code, "application/json", s, strlen(s),
	    retry_after, NULL);
}

static const char *
client_ip(struct MHD_Connection *con, char *out, size_t outsz)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, outsz, "-");
	if (ci == NULL || ci->client_addr == NULL)
		return out;
	if (ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)ci->client_addr)->sin_addr, out, (socklen_t)outsz);
	else if (ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)ci->client_addr)->sin6_addr, out, (socklen_t)outsz);
	return out;
}

/*
 * The answers to POST /v1/messages are written here directly, compact,
 * keys in the order of DESIGN section 4: building them with jansson cost
 * ~320 allocations a request with 20 recipients (12 % of the API's CPU at
 * 10 KB c32, and as much again in malloc).  The rare GET answers use
 * jansson.
 */
static void
json_head(struct buf *b, const char *status, const char *id)
{
	buf_puts(b, "{\"status\":");
	buf_put_json_string(b, status);
	buf_puts(b, ",\"id\":");
	buf_put_json_string(b, id);
}

/* ,"name":"value" */
static void
json_field(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, ",\"%s\":", name);
	buf_put_json_string(b, value);
}

/* Close the object; 0, or -1 (b freed) when any append failed. */
static int
json_close(struct buf *b)
{
	if (buf_putc(b, '}') == -1 || b->failed) {
		buf_free(b);
		return -1;
	}
	return 0;
}

/* The object in b, closed here, as the body; b is given away. */
static enum MHD_Result
respond_buf(struct MHD_Connection *con, struct request *rq, unsigned code,
    struct buf *b, int retry_after)
{
	if (json_close(b) != 0)
		return MHD_NO;
	return respond_raw(con, rq, code, "application/json", b->data, b->len,
	    retry_after, NULL);
}

/* A refusal: {"status": ..., "id": ..., "reason": ...}, logged. */
static enum MHD_Result
refuse(struct MHD_Connection *con, struct request *rq, unsigned code,
    const char *status, const char *reason, int retry_after)
{
	char ip[64], q[300];
	struct buf b;

	log_info("id=%s event=refused http=%u status=%s client=%s reason=%s",
	    rq->id, code, status, client_ip(con, ip, sizeof(ip)),
	    log_quote(reason, q, sizeof(q)));
	buf_init(&b, 0);
	json_head(&b, status, rq->id);
	json_field(&b, "reason", reason);
	if (code == MHD_HTTP_CONTENT_TOO_LARGE)
		buf_printf(&b, ",\"limit\":%lld", api->max_message_size);
	return respond_buf(con, rq, code, &b, retry_after);
}

static enum MHD_Result
respond_outcome(struct MHD_Connection *con, struct request *rq,
    const struct outcome *o, const char *body_hex)
{
	struct buf b;
	char *str;
	size_t i;

	buf_init(&b, 0);
	json_head(&b, o->status, rq->id);
	if (o->http >= 300 && o->reason[0])
		json_field(&b, "reason", o->reason);
	if (o->has_reply) {
		buf_printf(&b, ",\"code\":%d", o->reply.code);
		json_field(&b, "enhanced", o->reply.enhanced);
	}
	if (o->list_rcpts) {
		buf_puts(&b, ",\"recipients\":[");
		for (i = 0; i < rq->env.nrcpt; i++) {
			const struct rcpt *r = &rq->env.rcpts[i];
			const char *st = r->reply.cls == REPLY_OK ? "delivered" :
			    r->reply.cls == REPLY_PERM ? "rejected" : "deferred";

			buf_puts(&b, i ? ",{\"rcpt\":" : "{\"rcpt\":");
			buf_put_json_string(&b, r->addr);
			buf_printf(&b, ",\"status\":\"%s\",\"code\":%d", st,
			    r->reply.code);
			json_field(&b, "enhanced", r->reply.enhanced);
			json_field(&b, "message", r->reply.text);
			buf_putc(&b, '}');
		}
		buf_putc(&b, ']');
	}
	if (json_close(&b) != 0)
		return MHD_NO;
	str = b.data;
	/* The first outcome of an idempotent request is what its retries get;
	 * a temporary failure is not an outcome: the retry tries again. */
	if (rq->idem_rec[0] != '\0') {
		if (o->http == 200 || o->http == 202 || o->http == 422)
			idem_finish(api->idem, rq->idem_rec, body_hex, o->http,
			    str);
		else
			idem_abort(api->idem, rq->idem_rec);
	}
	crashpoint("before_response");
	return respond_raw(con, rq, o->http, "application/json", str, b.len,
	    o->retry_after, NULL);
}

/* ---- header checks ------------------------------------------------- */

struct hdr_scan {
	int	 n_cl;
	int	 n_te;
	int	 te_other;	/* a Transfer-Encoding that is not "chunked" */
	int	 bad_value;
	char	 bad_name[64];
};

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
    size_t key_size, const char *value, size_t value_size)
{
	struct hdr_scan *s = cls;
	size_t i;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		s->n_cl++;
	if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		s->n_te++;
		/* libmicrohttpd reads any other coding (gzip, ...) as a body
		 * that ends when the connection does. */
		s->te_other |= value == NULL || value_size != 7 ||
		    strncasecmp(value, "chunked", 7) != 0;
	}
	for (i = 0; value != NULL && i < value_size; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			s->bad_value = 1;
			snprintf(s->bad_name, sizeof(s->bad_name), "%.*s",
			    (int)(key_size > 60 ? 60 : key_size), key);
			return MHD_NO;
		}
	}
	return MHD_YES;
}

static const char *
header(struct MHD_Connection *con, const char *name)
{
	return MHD_lookup_connection_value(con, MHD_HEADER_KIND, name);
}

/* Content-Type is message/rfc822, parameters allowed. */
static int
ctype_ok(const char *ct)
{
	size_t n = strlen("message/rfc822");

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "message/rfc822", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Authentication headers and the timestamp window; 0 or a refusal. */
static const char *
check_auth_headers(struct MHD_Connection *con, struct request *rq)
{
	const char *kid = header(con, "Edgemail-Key-Id");
	const char *ts = header(con, "Edgemail-Timestamp");
	const char *sig = header(con, "Edgemail-Signature");
	size_t len;
	long long t;

	if (kid == NULL || ts == NULL || sig == NULL)
		return "missing Edgemail-Key-Id, Edgemail-Timestamp or "
		    "Edgemail-Signature";
	if (strlen(kid) >= sizeof(rq->key_id) ||
	    keyring_find(api->keys, kid, &len) == NULL)
		return "unknown key id";
	if (strlen(ts) >= sizeof(rq->ts) || str_to_ll(ts, 0, INT64_MAX / 2, &t) != 0)
		return "malformed Edgemail-Timestamp";
	if (llabs(t - (long long)time(NULL)) > api->max_skew)
		return "Edgemail-Timestamp outside the accepted window (check "
		    "the clock)";
	if (strlen(sig) != SIG_HEADER_LEN)
		return "malformed Edgemail-Signature";
	snprintf(rq->key_id, sizeof(rq->key_id), "%s", kid);
	snprintf(rq->ts, sizeof(rq->ts), "%s", ts);
	snprintf(rq->sig, sizeof(rq->sig), "%s", sig);
	rq->ts_val = t;
	return NULL;
}

static int
cmp_rcpt(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The names an Idempotency-Key gives a request (content_hex: the message
 * below the trace fields, ingest_content_hash):
 *   idem_rec     the record: the client's key id and its key, so two
 *                clients never share one;
 *   ident_hex    what a retry must repeat to get the stored answer: the
 *                content and the envelope (sender, recipients in any
 *                order), else 409;
 *   delivery_id  X-Edgemail-Delivery-Id: key id, key and content, so two
 *                different messages sent under one key (after its record
 *                expired) never share one; Sieve would discard the second.
 */
static int
idem_names(struct request *rq, const char *content_hex, char *ident_hex,
    char *delivery_id)
{
	const char **r;
	struct buf b;
	size_t i;
	int rc;

	snprintf(rq->idem_rec, sizeof(rq->idem_rec), "%s\n%s", rq->key_id,
	    rq->idem);
	buf_init(&b, 0);
	buf_printf(&b, "%s\n%s", rq->idem_rec, content_hex);
	idem_key_hash(b.data, delivery_id);
	if ((r = envelope_addrs(&rq->env)) == NULL) {
		buf_free(&b);
		return -1;
	}
	qsort(r, rq->env.nrcpt, sizeof(*r), cmp_rcpt);
	buf_reset(&b);
	buf_printf(&b, "%s\nfrom %s", content_hex, rq->env.mail_from);
	for (i = 0; i < rq->env.nrcpt; i++)
		buf_printf(&b, "\nrcpt %s", r[i]);
	free(r);
	rc = b.failed ? -1 : 0;
	if (rc == 0)
		idem_key_hash(b.data, ident_hex);
	buf_free(&b);
	return rc;
}

static int
idem_key_ok(const char *k)
{
	size_t i, n = strlen(k);

	if (n == 0 || n > IDEM_KEY_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return 0;
	return 1;
}

/* Is the request's signature right for a body whose SHA-256 is body_hex? */
static int
signature_ok(const struct request *rq, const char *body_hex)
{
	struct buf canon;
	const char *secret;
	size_t slen;
	int ok;

	buf_init(&canon, TARGET_MAX + 1024);
	sig_canonical(&canon, rq->ts, "POST", rq->target, rq->idem, body_hex);
	secret = keyring_find(api->keys, rq->key_id, &slen);
	ok = secret != NULL && !canon.failed &&
	    sig_check(secret, slen, canon.data, canon.len, rq->sig) == 0;
	buf_free(&canon);
	return ok;
}

static int
hex64_lower(const char *s)
{
	size_t i;

	for (i = 0; i < SIG_HEX_LEN; i++)
		if (hex_digit(s[i]) < 0 || (s[i] >= 'A' && s[i] <= 'F'))
			return 0;
	return s[i] == '\0';
}

/*
 * Early envelope: Dovecot's MAIL and RCPT lookups (about half a
 * millisecond per recipient) run while the body still arrives, instead
 * of after it.  Only MAIL and RCPT go ahead; DATA waits for the whole
 * body, its signature and the checks, and a request that fails those
 * drops the transaction (lmtp_cancel), so nothing is delivered early.
 * Only for a client that has shown its key (a good signature before on
 * this connection, or on this request with Edgemail-Content-SHA256), so
 * that a client without one can never hold an LMTP connection, and only
 * when a pooled connection is idle, so that nobody waits for it.
 */
static void
begin_early(struct request *rq)
{
	const char **r;

	if (!api->early_envelope || !(rq->key_shown ||
	    (rq->watch != NULL && rq->watch->signed_ok)))
		return;
	if ((r = envelope_addrs(&rq->env)) == NULL)
		return;
	rq->begun = api_deliver_begin(api, rq->env.mail_from, r,
	    rq->env.nrcpt);
	rq->early = rq->begun != NULL;
	rq->t_begun = now_secs();
	free(r);
}

static enum MHD_Result
messages_first_call(struct MHD_Connection *con, struct request *rq)
{
	struct hdr_scan hs;
	const char *why, *cl, *idem, *query, *decl;
	char err[300];
	long long clen = -1;

	memset(&hs, 0, sizeof(hs));
	MHD_get_connection_values_n(con, MHD_HEADER_KIND, scan_header, &hs);
	if (hs.bad_value) {
		snprintf(err, sizeof(err), "control character in header %s",
		    hs.bad_name);
		return refuse(con, rq, 400, "bad_request", err, 0);
	}
	if (hs.n_cl > 1)
		return refuse(con, rq, 400, "bad_request",
		    "more than one Content-Length", 0);
	if (hs.n_cl > 0 && hs.n_te > 0)
		return refuse(con, rq, 400, "bad_request",
		    "Content-Length together with Transfer-Encoding", 0);
	if (hs.n_te > 1 || hs.te_other)
		return refuse(con, rq, 400, "bad_request",
		    "Transfer-Encoding other than chunked", 0);
	if ((why = check_auth_headers(con, rq)) != NULL)
		return refuse(con, rq, 401, "unauthorized", why, 0);
	if (!ctype_ok(header(con, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return refuse(con, rq, 415, "unsupported_media_type",
		    "Content-Type must be message/rfc822", 0);
	if ((cl = header(con, MHD_HTTP_HEADER_CONTENT_LENGTH)) != NULL &&
	    str_to_ll(cl, 0, INT64_MAX, &clen) != 0)
		return refuse(con, rq, 400, "bad_request",
		    "malformed Content-Length", 0);
	if (clen > (long long)api->max_message_size) {
		snprintf(err, sizeof(err), "message of %lld bytes is over the "
		    "limit of %llu bytes", clen, api->max_message_size);
		return refuse(con, rq, 413, "too_large", err, 0);
	}
	if ((idem = header(con, "Idempotency-Key")) != NULL) {
		if (!idem_key_ok(idem))
			return refuse(con, rq, 400, "bad_request",
			    "Idempotency-Key must be 1-200 printable ASCII "
			    "characters", 0);
		snprintf(rq->idem, sizeof(rq->idem), "%s", idem);
	}
	query = strchr(rq->target, '?');
	switch (envelope_parse(query ? query + 1 : "", api->max_rcpts,
	    &rq->env, err, sizeof(err))) {
	case 0:
		break;
	case -2:
		return refuse(con, rq, 503, "unavailable", err, 5);
	default:
		return refuse(con, rq, 400, "bad_request", err, 0);
	}
	/* A client that declares the body's SHA-256 (the Worker does) has
	 * its signature checked now: a wrong one is refused before the body
	 * is read, a right one shows the key.  The body is checked at the
	 * end like any other, against the hash it really has. */
	if ((decl = header(con, "Edgemail-Content-SHA256")) != NULL) {
		if (!hex64_lower(decl))
			return refuse(con, rq, 400, "bad_request",
			    "Edgemail-Content-SHA256 must be 64 lower-case hex "
			    "digits", 0);
		if (!signature_ok(rq, decl))
			return refuse(con, rq, 401, "unauthorized",
			    "bad signature", 0);
		rq->key_shown = 1;
		if (rq->watch)
			rq->watch->signed_ok = 1;
	}
	if (ingest_init(&rq->in, api, clen, rq->idem[0] != '\0') != 0)
		return refuse(con, rq, 503, "unavailable", "out of memory", 5);
	rq->in_ready = 1;
	rq->state = RQ_BODY;
	begin_early(rq);
	return MHD_YES;
}

static enum MHD_Result
messages_last_call(struct MHD_Connection *con, struct request *rq)
{
	char hex[SIG_HEX_LEN + 1], delivery_id[SIG_HEX_LEN + 1], err[300];
	struct outcome o;
	double t_body = now_secs(), t_deliver, t_done;

	if (ingest_finish(&rq->in, api, hex) != 0)
		return refuse(con, rq, 503, "unavailable", "hash failure", 5);
	if (!signature_ok(rq, hex))
		return refuse(con, rq, 401, "unauthorized", rq->key_shown ?
		    "the body does not match Edgemail-Content-SHA256" :
		    "bad signature", 0);
	if (rq->watch)
		rq->watch->signed_ok = 1;
	/* Refusals that need no replay entry come first: a client may send
	 * the same signed request again after them. */
	if (rq->in.too_big) {
		snprintf(err, sizeof(err), "message or header section over "
		    "the limit (max_message_size %llu, max_header_size %llu)",
		    api->max_message_size, api->max_header_size);
		return refuse(con, rq, 413, "too_large", err, 0);
	}
	if (rq->in.io_error) {
		snprintf(err, sizeof(err), "cannot store the message: %s",
		    strerror(rq->in.io_errno));
		return refuse(con, rq, 503, "unavailable", err, 30);
	}
	/* The window was checked when the headers came; the body can take
	 * request_timeout more.  The entry lives until no request with this
	 * timestamp can pass the header check and still be running: a
	 * replay whose body ends after ts + max_skew finds it. */
	switch (replay_check(api, rq->sig + 3, rq->ts_val + api->max_skew +
	    api->request_timeout + 1)) {
	case 1:
		return refuse(con, rq, 401, "unauthorized",
		    "replayed signature", 0);
	case -1:
		return refuse(con, rq, 503, "unavailable",
		    "replay cache unavailable (Redis down or out of memory)", 5);
	}
	{
		int wait = rate_check(api, rq->key_id);

		if (wait < 0)
			return refuse(con, rq, 503, "unavailable",
			    "shared state (Redis) unavailable", 5);
		if (wait > 0)
			return refuse(con, rq, 429, "rate_limited",
			    "rate_limit_per_key exceeded for this key", wait);
	}

	if (rq->idem[0] != '\0') {
		struct idem_record rec;
		char content[SIG_HEX_LEN + 1];

		if (ingest_content_hash(&rq->in, content) != 0 ||
		    idem_names(rq, content, hex, delivery_id) != 0)
			return refuse(con, rq, 503, "unavailable",
			    "hash failure", 5);
		switch (idem_begin(api->idem, rq->idem_rec, hex,
		    api->request_timeout + api->lmtp_timeout, &rec)) {
		case IDEM_NEW:
			break;
		case IDEM_DONE:
			log_info("id=%s event=idempotent_replay http=%u", rq->id,
			    rec.http);
			return respond_raw(con, rq, rec.http, "application/json",
			    rec.response, strlen(rec.response), 0, NULL);
		case IDEM_CONFLICT:
			rq->idem_rec[0] = '\0';	/* not ours to finish */
			return refuse(con, rq, 409, "conflict", "Idempotency-Key "
			    "was used before with a different message or "
			    "envelope", 0);
		case IDEM_BUSY:
			rq->idem_rec[0] = '\0';
			return refuse(con, rq, 503, "unavailable", "a request with "
			    "this Idempotency-Key is in progress", 2);
		case IDEM_ERROR:
			rq->idem_rec[0] = '\0';
			return refuse(con, rq, 503, "unavailable",
			    "idempotency store unavailable", 10);
		}
	}

	memset(&o, 0, sizeof(o));
	if (rq->watch)
		rq->watch->busy = 1;
	t_deliver = now_secs();
	/* A transaction begun long ago may have met Dovecot's idle
	 * timeout: a fresh one is safer than a retry. */
	if (rq->begun != NULL && t_deliver - rq->t_begun > EARLY_MAX_SECS)
		lmtp_pool_cancel(api->lmtp, &rq->begun);
	pipeline_deliver(api, rq->id, rq->key_id,
	    rq->idem[0] != '\0' ? delivery_id : NULL, &rq->env, &rq->in,
	    &rq->begun, &o);
	if (rq->watch)
		rq->watch->busy = 0;
	t_done = now_secs();
	/* ms = recv_ms (headers to the body's last byte) + the hash, the
	 * signature and the limits + deliver_ms (checks, LMTP or spool). */
	log_info("id=%s event=done http=%u status=%s rcpts=%zu delivered=%u "
	    "deferred=%u refused=%u bytes=%" PRIu64 " ms=%.1f recv_ms=%.1f "
	    "deliver_ms=%.1f early=%d", rq->id, o.http, o.status,
	    rq->env.nrcpt, o.n_ok, o.n_temp, o.n_perm, rq->in.raw_len,
	    (t_done - rq->t_start) * 1000, (t_body - rq->t_start) * 1000,
	    (t_done - t_deliver) * 1000, rq->early);
	return respond_outcome(con, rq, &o, hex);
}

/* ---- other endpoints ------------------------------------------------ */

static enum MHD_Result
serve_get(struct MHD_Connection *con, struct request *rq, const char *path)
{
	if (strcmp(path, "/healthz") == 0)
		return respond_json(con, rq, 200, json_pack("{s:s}", "status",
		    "ok"), 0);
	if (strcmp(path, "/readyz") == 0) {
		struct reply r;
		json_t *j = json_object();
		int ok = 1;

		if (lmtp_pool_probe(api->lmtp, &r) != 0) {
			ok = 0;
			json_object_set_new(j, "lmtp", json_string(r.text));
		} else
			json_object_set_new(j, "lmtp", json_string("ok"));
		if (access(api->spool_dir, W_OK) != 0) {
			ok = 0;
			json_object_set_new(j, "spool", json_string(strerror(errno)));
		} else
			json_object_set_new(j, "spool", json_string("ok"));
		{
			char why[256];
			int sc = checks_scanner_state(api, why, sizeof(why));

			if (sc == 0)
				ok = 0;
			json_object_set_new(j, "scanner", json_string(sc > 0 ?
			    "ok" : sc < 0 ? "off" : why));
		}
		json_object_set_new(j, "status", json_string(ok ? "ready" :
		    "unavailable"));
		return respond_json(con, rq, ok ? 200 : 503, j, ok ? 0 : 5);
	}
	if (strcmp(path, "/metrics") == 0) {
		struct buf b;

		char **ids;
		size_t n = 0;

		buf_init(&b, 1024 * 1024);
		metrics_render(&b);
		if (spool_list(api->spool, &ids, &n) == 0)
			spool_ids_free(ids, n);
		buf_printf(&b, "# HELP edgemail_queue_messages Messages in the "
		    "inbound spool.\n# TYPE edgemail_queue_messages gauge\n"
		    "edgemail_queue_messages{queue=\"inbound\"} %zu\n"
		    "# HELP edgemail_queue_bytes Bytes in the inbound spool.\n"
		    "# TYPE edgemail_queue_bytes gauge\n"
		    "edgemail_queue_bytes{queue=\"inbound\"} %llu\n", n,
		    (unsigned long long)spool_bytes(api->spool));
		return respond_raw(con, rq, 200,
		    "text/plain; version=0.0.4; charset=utf-8",
		    b.data ? b.data : calloc(1, 1), b.len, 0, NULL);
	}
	return refuse(con, rq, 404, "not_found", "no such endpoint", 0);
}

/* Mail client set-up (api/autoconfig.c): a GET is answered at once, a
 * POST once its (small) body is in. */
static enum MHD_Result
autoconfig_respond(struct MHD_Connection *con, struct request *rq)
{
	const char *q = strchr(rq->target, '?'), *ctype;
	char why[128];
	struct buf out;
	unsigned code;

	buf_init(&out, 64 * 1024);
	code = autoconfig_answer(api, rq->autoconfig, q ? q + 1 : "",
	    header(con, MHD_HTTP_HEADER_HOST), rq->ac_body.data,
	    rq->ac_body.len, &out, &ctype, why, sizeof(why));
	if (code != 200) {
		buf_free(&out);
		return refuse(con, rq, code, code == 404 ? "not_found" :
		    "bad_request", why, 0);
	}
	return respond_raw(con, rq, 200, ctype, out.data ? out.data :
	    calloc(1, 1), out.len, 0, NULL);
}

static enum MHD_Result
autoconfig_call(struct MHD_Connection *con, struct request *rq,
    const char *method, const char *upload_data, size_t *upload_data_size)
{
	if (rq->state == RQ_NEW) {
		buf_init(&rq->ac_body, autoconfig_body_max());
		if (rq->autoconfig == AUTOCONFIG_OUTLOOK) {
			if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
				return refuse(con, rq, 405, "method_not_allowed",
				    "POST only", 0);
			rq->state = RQ_BODY;
			return MHD_YES;
		}
		if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
		    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
			return refuse(con, rq, 405, "method_not_allowed",
			    "GET only", 0);
		return autoconfig_respond(con, rq);
	}
	if (*upload_data_size > 0) {
		if (buf_append(&rq->ac_body, upload_data, *upload_data_size) !=
		    0)
			return refuse(con, rq, 413, "too_large",
			    "autodiscover request too large", 0);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return autoconfig_respond(con, rq);
}

/* ---- libmicrohttpd callbacks ---------------------------------------- */

static void *
uri_log_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct request *rq;
	const union MHD_ConnectionInfo *ci;

	(void)cls;
	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return NULL;
	rq->t_start = now_secs();
	request_id(rq->id);
	if (strlen(uri) > TARGET_MAX)
		rq->target_too_long = 1;
	else
		rq->target = strdup(uri);
	rq->in.fd = -1;
	ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci != NULL && ci->socket_context != NULL) {
		rq->watch = ci->socket_context;
		pthread_mutex_lock(&watch_lock);
		rq->watch->req_start = rq->t_start;
		pthread_mutex_unlock(&watch_lock);
	}
	return rq;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *con, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct request *rq = *con_cls;
	char path[256];
	size_t plen;

	(void)cls;
	(void)url;
	(void)version;
	(void)upload_data;
	if (rq == NULL)
		return MHD_NO;
	if (rq->state == RQ_NEW) {
		if (rq->target == NULL)
			return refuse(con, rq, 414, "bad_request",
			    "request target too long", 0);
		plen = strcspn(rq->target, "?");
		snprintf(path, sizeof(path), "%.*s",
		    (int)(plen < sizeof(path) ? plen : sizeof(path) - 1),
		    rq->target);
		if (strcmp(path, "/v1/messages") == 0) {
			if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
				rq->http = 405;
				return respond_raw(con, rq, 405,
				    "application/json", strdup(
				    "{\"status\":\"method_not_allowed\"}"),
				    31, 0, "POST");
			}
			return messages_first_call(con, rq);
		}
		if ((rq->autoconfig = autoconfig_match(path)) != 0)
			return autoconfig_call(con, rq, method, upload_data,
			    upload_data_size);
		if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
		    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
			return refuse(con, rq, 405, "method_not_allowed",
			    "method not allowed", 0);
		return serve_get(con, rq, path);
	}
	if (rq->state == RQ_DONE) {
		/* A response is queued; discard the rest of any body. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* RQ_BODY */
	if (rq->autoconfig)
		return autoconfig_call(con, rq, method, upload_data,
		    upload_data_size);
	if (now_secs() - rq->t_start > (double)api->request_timeout) {
		log_info("id=%s event=timeout phase=body bytes=%" PRIu64,
		    rq->id, rq->in.raw_len);
		return MHD_NO;
	}
	if (*upload_data_size > 0) {
		if (ingest_feed(&rq->in, api, upload_data, *upload_data_size)
		    != 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return messages_last_call(con, rq);
}

static void
completed_cb(void *cls, struct MHD_Connection *con, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)con;
	if (rq == NULL)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->http == 0)
		rq->http = 499;
	metrics_request(rq->http, now_secs() - rq->t_start, rq->in.raw_len);
	if (rq->watch) {
		/* The next request on this connection has request_timeout
		 * from now to send its request line: MHD's idle timer starts
		 * again with every byte, so a line sent a byte at a time
		 * would otherwise hold the connection for ever. */
		pthread_mutex_lock(&watch_lock);
		rq->watch->req_start = now_secs();
		pthread_mutex_unlock(&watch_lock);
	}
	/* Refused, or the client went away: drop the begun transaction. */
	lmtp_pool_cancel(api->lmtp, &rq->begun);
	if (rq->in_ready)
		ingest_free(&rq->in);
	if (rq->autoconfig)
		buf_free(&rq->ac_body);
	envelope_free(&rq->env);
	free(rq->target);
	free(rq);
	*con_cls = NULL;
}

static void
connection_cb(void *cls, struct MHD_Connection *con, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct watch *w;
	const union MHD_ConnectionInfo *ci;

	(void)cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return;
		ci = MHD_get_connection_info(con,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		w->fd = ci ? ci->connect_fd : -1;
		w->req_start = now_secs();	/* the first request starts now */
		pthread_mutex_lock(&watch_lock);
		w->next = watch_head;
		if (watch_head)
			watch_head->prev = w;
		watch_head = w;
		pthread_mutex_unlock(&watch_lock);
		*socket_context = w;
	} else if ((w = *socket_context) != NULL) {
		pthread_mutex_lock(&watch_lock);
		if (w->prev)
			w->prev->next = w->next;
		else
			watch_head = w->next;
		if (w->next)
			w->next->prev = w->prev;
		pthread_mutex_unlock(&watch_lock);
		free(w);
		*socket_context = NULL;
	}
}

static void *
watchdog(void *arg)
{
	(void)arg;
	while (!atomic_load(&watchdog_stop)) {
		double now = now_secs();
		struct watch *w;

		pthread_mutex_lock(&watch_lock);
		for (w = watch_head; w != NULL; w = w->next)
			if (w->req_start > 0 && !w->busy && w->fd >= 0 &&
			    now - w->req_start > (double)api->request_timeout) {
				log_info("event=timeout phase=request fd=%d "
				    "secs=%.0f", w->fd, now - w->req_start);
				shutdown(w->fd, SHUT_RDWR);
				w->req_start = 0;
			}
		pthread_mutex_unlock(&watch_lock);
		usleep(250 * 1000);
	}
	return NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], q[600];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("event=httpd msg=%s", log_quote(msg, q, sizeof(q)));
}

/* "127.0.0.1:8443" or "[::1]:8443" into a socket address. */
static int
parse_listen(const char *spec, struct sockaddr_storage *ss)
{
	char host[256];
	const char *colon;
	long long port;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	if ((colon = strrchr(spec, ':')) == NULL ||
	    str_to_ll(colon + 1, 1, 65535, &port) != 0)
		return -1;
	hlen = (size_t)(colon - spec);
	if (hlen >= sizeof(host))
		return -1;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
	}
}


static struct MHD_Daemon *
start_daemon(const char *listen, int tls, char *cert, char *key)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	long long maxconn = 256;
	char err[256];

	if (parse_listen(listen, &ss) != 0)
		fatalx("bad listen address '%s' (want HOST:PORT)", listen);
	if (conf_get_ll(api->conf, "api_max_connections", 1, 100000, &maxconn,
	    err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (tls)
		flags |= MHD_USE_TLS;
	return MHD_start_daemon(flags, 0, NULL, NULL, access_cb, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)maxconn,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)POOL_SIZE,
	    MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
	    MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
	    MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL,
	    MHD_OPTION_NOTIFY_CONNECTION, connection_cb, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    /* Without TLS the list ends here. */
	    tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
	    MHD_OPTION_HTTPS_MEM_KEY, key,
	    /* AEAD ciphers only, AES-128-GCM first by our choice: 10
	     * AES rounds per block against AES-256-GCM's 14, on every
	     * byte of a body. */
	    MHD_OPTION_HTTPS_PRIORITIES,
	    "NORMAL:%SERVER_PRECEDENCE:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
	    "+CHACHA20-POLY1305:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
	    MHD_OPTION_END);
}

int
http_start(struct api *a)
{
	const char *tls_listen, *http_listen;
	char *cert = NULL, *key = NULL;

	api = a;
	tls_listen = conf_get(api->conf, "api_listen");
	http_listen = conf_get(api->conf, "api_http_listen");
	if (tls_listen != NULL && tls_listen[0] != '\0') {
		const char *cf = conf_get(api->conf, "tls_cert_file");
		const char *kf = conf_get(api->conf, "tls_key_file");

		if ((cert = io_read_file(cf, 1024 * 1024, NULL)) == NULL)
			fatalx("tls_cert_file %s: %s", cf, strerror(errno));
		if ((key = io_read_file(kf, 1024 * 1024, NULL)) == NULL)
			fatalx("tls_key_file %s: %s", kf, strerror(errno));
		if ((daemons[0] = start_daemon(tls_listen, 1, cert, key)) == NULL)
			fatalx("cannot listen on %s (HTTPS)", tls_listen);
		log_info("event=listening proto=https addr=%s", tls_listen);
	}
	if (http_listen != NULL && http_listen[0] != '\0') {
		if ((daemons[1] = start_daemon(http_listen, 0, NULL, NULL)) == NULL)
			fatalx("cannot listen on %s (HTTP)", http_listen);
		log_info("event=listening proto=http addr=%s", http_listen);
	}
	if (daemons[0] == NULL && daemons[1] == NULL)
		fatalx("neither api_listen nor api_http_listen is set");
	tls_cert_pem = cert;	/* must outlive the daemon */
	tls_key_pem = key;
	if (pthread_create(&watchdog_tid, NULL, watchdog, NULL) != 0)
		fatalx("cannot start the watchdog thread");
	return 0;
}

void
http_stop(void)
{
	size_t i;

	for (i = 0; i < 2; i++)
		if (daemons[i] != NULL) {
			MHD_stop_daemon(daemons[i]);
			daemons[i] = NULL;
		}
	atomic_store(&watchdog_stop, 1);
	pthread_join(watchdog_tid, NULL);
	if (tls_key_pem != NULL)
		explicit_bzero(tls_key_pem, strlen(tls_key_pem));
	free(tls_key_pem);
	free(tls_cert_pem);
	tls_key_pem = tls_cert_pem = NULL;
}
