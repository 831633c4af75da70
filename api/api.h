/*
 * api.h - edgemail-api: the HTTPS ingestion service (DESIGN section 4).
 *
 * Shape of the program:
 *   main.c      configuration, TLS, daemons, signals
 *   http.c      libmicrohttpd glue: routing, request framing checks,
 *               authentication headers, responses, the per-request deadline
 *   ingest.c    the body as it streams in: SHA-256, CRLF normalisation,
 *               header section kept in memory, body spilled to a file
 *   pipeline.c  after the body: signature, replay, envelope, headers we
 *               add, LMTP delivery, the outcome as an HTTP answer
 *   replay.c    the replay cache (signatures seen within their window)
 *   metrics.c   Prometheus counters and the latency histogram
 */
#ifndef EDGEMAIL_API_H
#define EDGEMAIL_API_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "auth/sig.h"
#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/crlf.h"
#include "lib/reply.h"

struct conf;
struct directory;
struct keyring;
struct lmtp_pool;
struct replay;
struct spool;
struct idem;
struct redis;
struct checks;

#define API_MAX_RCPTS_HARD	1000	/* max_recipients is capped here */
#define API_ID_LEN		16

/* Everything the request handlers share; read-only after start-up except
 * where a member says otherwise. */
struct api {
	struct conf *conf;
	struct keyring *keys;
	struct lmtp_pool *lmtp;
	struct replay *replay;		/* has its own lock */
	struct spool *spool;		/* deferred messages (lib/spool.h) */
	struct idem *idem;		/* Idempotency-Key records */
	struct redis *redis;		/* shared state, or NULL (embedded) */
	struct checks *checks;		/* inbound checks (api/checks.h) */
	struct directory *dir;		/* lib/directory.h, reloads itself */
	struct spool *outbound;		/* the relay's spool, for forwards */
	char	 srs_secret[128];	/* SRS key (srs_secret_file) */
	long long rate_limit;		/* messages per minute per key, 0 = off */
	char	 hostname[256];
	char	 authserv_id[256];
	char	 spool_dir[1024];
	unsigned long long max_message_size;
	unsigned long long max_header_size;
	long long max_rcpts;
	long long max_skew;
	long long request_timeout;
	long long lmtp_timeout;
	long long retry_min;		/* queue backoff */
	long long retry_max;
	long long queue_lifetime;
	long long run_interval;
	int	 queueing;		/* defer to the spool (else 503) */
	int	 early_envelope;	/* lmtp_early_envelope */
};

/* One envelope recipient and its outcome. */
struct rcpt {
	char	 addr[ADDR_PATH_MAX + 1];	/* local@domain */
	struct reply reply;
};

/* The message as it arrives (ingest.c). */
struct ingest {
	EVP_MD_CTX *sha;		/* over the raw body bytes, as signed */
	EVP_MD_CTX *body_sha;		/* normalised body; NULL without idempotency */
	struct crlf_state crlf;
	struct buf hdr;			/* header section, CRLF, incl. blank line */
	int	 in_body;
	int	 hdr_broken;		/* a line that is no field ended it */
	struct buf body;		/* body in memory while small ... */
	int	 fd;			/* ... then in an unlinked spool file */
	off_t	 spill_size;		/* that file's size (it may be reused) */
	off_t	 body_len;		/* normalised body bytes */
	uint64_t raw_len;		/* bytes received */
	int	 eightbit;
	int	 too_big;		/* max_message_size or max_header_size passed */
	int	 io_error;		/* writing the spool file failed (errno kept) */
	int	 spill_drop;		/* close the spill file, do not keep it */
	int	 io_errno;
	char	*scratch;		/* conversion buffer, 2 * INGEST_SLICE + 2 */
};

/* expect: the Content-Length (-1: unknown), so that a small body is
 * held in one buffer of its size, not grown by doubling; content_hash:
 * keep the hash ingest_content_hash() needs (requests with an
 * Idempotency-Key), not computed otherwise. */
int	ingest_init(struct ingest *in, const struct api *api, long long expect,
	    int content_hash);
/* Feed n raw bytes; -1 only on internal failure (out of memory). */
int	ingest_feed(struct ingest *in, const struct api *api, const char *p,
	    size_t n);
/* All bytes are in: flush line ends, finish the hash into hex (65 bytes). */
int	ingest_finish(struct ingest *in, const struct api *api,
	    char *sha256_hex);
void	ingest_free(struct ingest *in);
/*
 * After ingest_finish: the hash that identifies "the same message" for
 * Idempotency-Key: header section without the trace fields that hops
 * add on top (Received, ARC-*, Authentication-Results...), plus body.
 * A retry that passed through the edge again has new trace fields but the
 * same content, so it is the same message, not a 409.
 */
int	ingest_content_hash(struct ingest *in, char *hex);

/* Envelope and authentication data of one POST /v1/messages. */
struct envelope {
	char	 mail_from[ADDR_PATH_MAX + 1];	/* "" = null reverse-path */
	struct rcpt *rcpts;
	size_t	 nrcpt;
};

/* Parse "mail_from=..&rcpt=..&rcpt=.." strictly; -1 with why (bad
 * input), -2 when out of memory. */
int	envelope_parse(const char *query, long long max_rcpts,
	    struct envelope *env, char *why, size_t whysz);
void	envelope_free(struct envelope *env);
/* The recipients' addresses, in order, as one array to free(); NULL when
 * out of memory. */
const char **envelope_addrs(const struct envelope *env);

/* What the pipeline answers; turned into an HTTP response by http.c. */
struct outcome {
	unsigned http;			/* 200, 422, 503, ... */
	const char *status;		/* "delivered", "rejected", ... */
	char	 reason[256];		/* for refusals */
	struct reply reply;		/* policy refusal: code/enhanced */
	int	 has_reply;
	int	 retry_after;		/* seconds, 0 = none */
	int	 list_rcpts;		/* include recipients[] */
	int	 queued;		/* some recipients are in the spool */
	unsigned n_ok, n_temp, n_perm;	/* recipient outcomes, for the log */
};

/* directory.c: deliver to envelope recipients through the directory
 * (refusals, aliases, groups, archive) in one LMTP transaction; one
 * reply per recipient in replies.  id names the attempt in the log;
 * delivery_id is the message's X-Edgemail-Delivery-Id, the same for
 * every attempt and every retry of one message (a forward is committed
 * once per delivery_id and recipient). */
struct lmtp_msg;
struct lmtp_conn;
/* begun: a transaction api_deliver_begin() began for this delivery, or
 * NULL; it is used (or dropped, when the envelope came out different)
 * and set to NULL. */
void	api_deliver_rcpts(struct api *api, const char *id,
	    const char *delivery_id, const char *mail_from,
	    const char *const *rcpts, size_t n, const struct lmtp_msg *m,
	    struct lmtp_conn **begun, struct reply *replies);
/* Begin the LMTP transaction of a delivery before the message is here
 * (lmtp_pool_begin with the recipients the directory will give), so
 * Dovecot looks them up while the body arrives; NULL when no connection
 * is idle, or the delivery is not one plain LMTP transaction (a bounce
 * to an SRS address, every recipient refused or forwarded).  Give it
 * back with lmtp_pool_cancel(api->lmtp, ...) if it is not delivered. */
struct lmtp_conn *api_deliver_begin(struct api *api, const char *mail_from,
	    const char *const *rcpts, size_t n);
/* Remove forward markers older than two weeks. */
void	api_forward_sweep(struct api *api);

/* autoconfig.c: Thunderbird autoconfig and Outlook autodiscover for the
 * directory's domains.  autoconfig_match: which endpoint a path is (0:
 * none).  autoconfig_answer: the XML into out and the HTTP status (why
 * filled for 4xx); query: after '?', host: the Host header, body: the
 * POST body (Outlook). */
enum { AUTOCONFIG_THUNDERBIRD = 1, AUTOCONFIG_OUTLOOK = 2 };
int	autoconfig_match(const char *path);
size_t	autoconfig_body_max(void);
unsigned autoconfig_answer(struct api *api, int kind, const char *query,
	    const char *host, const char *body, size_t len, struct buf *out,
	    const char **ctype, char *why, size_t whysz);

/* Deliver an authenticated request; fills out.  idem_delivery_id: the
 * X-Edgemail-Delivery-Id an Idempotency-Key gives the message (NULL:
 * the request id); begun: as for api_deliver_rcpts(). */
void	pipeline_deliver(struct api *api, const char *req_id,
	    const char *key_id, const char *idem_delivery_id,
	    struct envelope *env, struct ingest *in, struct lmtp_conn **begun,
	    struct outcome *out);
/* Test hook: die like kill -9 at a named point (EDGEMAIL_CRASHPOINT). */
void	crashpoint(const char *where);
/* Set an outcome's status and reason. */
void	outcome_set(struct outcome *out, unsigned http, const char *status,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* idem.c: Idempotency-Key records (DESIGN section 4). */
enum idem_state {
	IDEM_NEW,		/* first time: go ahead, then idem_finish */
	IDEM_DONE,		/* answered before: rec holds the answer */
	IDEM_CONFLICT,		/* same key, another body: 409 */
	IDEM_BUSY,		/* the first request is still running: 503 */
	IDEM_ERROR,		/* store unavailable: 503 */
};
struct idem_record {
	unsigned http;
	char	*response;	/* JSON; free() it */
};
struct idem *idem_open(const char *dir, int64_t ttl, struct redis *redis,
	    char *err, size_t errsz);
void	idem_close(struct idem **dp);
enum idem_state idem_begin(struct idem *d, const char *key,
	    const char *body_hex, int64_t stale_after, struct idem_record *rec);
int	idem_finish(struct idem *d, const char *key, const char *body_hex,
	    unsigned http, const char *response);
void	idem_abort(struct idem *d, const char *key);
void	idem_sweep(struct idem *d);
/* SHA-256 hex of a key (65 bytes): record names, delivery ids. */
void	idem_key_hash(const char *key, char *hex);

/* redis.c: shared state for several instances; -1 = unavailable. */
struct redis *redis_open(const char *url, int timeout_ms, char *err,
	    size_t errsz);
void	redis_close(struct redis **rp);
/* 1 set, 0 existed, -1 error */
int	redis_set_nx(struct redis *r, const char *key, const char *val,
	    size_t len, int64_t ttl);
int	redis_set(struct redis *r, const char *key, const char *val, size_t len,
	    int64_t ttl);
/* malloc'd value; NULL with *missing_r = 1 when absent, 0 on error */
char	*redis_get(struct redis *r, const char *key, int *missing_r);
int	redis_del(struct redis *r, const char *key);
/* INCR with an expiry set on creation; the new value or -1 */
long long redis_incr(struct redis *r, const char *key, int64_t ttl);

/* rate.c: per-key message rate (rate_limit_per_key per minute).
 * 0 allowed, >0 seconds to wait, -1 store unavailable. */
int	rate_check(struct api *api, const char *key_id);

/* queue.c: the runner that retries deferred recipients. */
int	queue_start(struct api *api);
void	queue_stop(void);
void	queue_kick(void);
/* When to try again after `attempts` tries: exponential, with jitter. */
int64_t	queue_next_try(const struct api *api, int attempts, int64_t now);

/* replay.c: the replay cache, in process or in Redis. */
struct replay *replay_new(void);
void	replay_free(struct replay **rp);
/* Remember a signature until `expires`: 0 new, 1 seen before (a replay),
 * -1 the cache is unavailable (answer 503, not 401). */
int	replay_check(struct api *api, const char *sig, int64_t expires);

/* metrics.c */
enum metric_delivery { MD_DELIVERED, MD_TEMP, MD_PERM, MD__COUNT };
void	metrics_request(unsigned http_status, double seconds, uint64_t bytes);
void	metrics_delivery(enum metric_delivery d, unsigned n);
void	metrics_render(struct buf *out);

/* http.c */
int	http_start(struct api *api);
void	http_stop(void);

#endif
