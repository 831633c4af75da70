/*
 * submit.h - edgemail-submit: the SMTP submission relay (DESIGN section 5).
 *
 * Shape of the program:
 *   main.c      configuration, TLS context, listeners, one thread per
 *               connection (bounded), signals
 *   conn.c      a client connection: socket or TLS, bounded input,
 *               buffered output, idle and session deadlines
 *   parse.c     pure protocol parsing: command lines, MAIL/RCPT
 *               arguments, base64, the DATA reader (end of data, dot
 *               unstuffing, bare CR/LF)
 *   session.c   the SMTP state machine and its command table
 *   policy.c    what the session asks the rest: AUTH (Dovecot, failure
 *               limits), sender ownership, recipients, hourly limits
 *   limits.c    sliding-window counters (auth failures, hourly quotas)
 *   owner.c     the relay's view of the directory: local domains,
 *               who owns which address, expansion for delivery
 *   message.c   the message after DATA: storage, header checks, trace
 *               fields, virus scan, DKIM, spool commit
 *   queue.c     the outbound queue runner: LMTP for local mailboxes,
 *               the relayhost for the rest, retries, bounces, archive
 *   relay.c     one SMTP transaction to the relayhost with libcurl
 *   dsn.c       delivery status notifications (RFC 3464)
 *
 * Threads: the accept loop, one thread per client connection (at most
 * submit_max_connections) and submit_delivery_threads queue runners.
 * Everything in struct submit is read-only after start-up, except the
 * objects that have their own locks (auth, limits, owner, queue, spool).
 */
#ifndef EDGEMAIL_SUBMIT_H
#define EDGEMAIL_SUBMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "lib/addr.h"
#include "lib/buf.h"
#include "lib/reply.h"

struct conf;
struct dkim_signer;
struct dovecot_auth;
struct limits;
struct lmtp_pool;
struct owner;
struct queue;
struct spool;
struct scanner;

#define SUBMIT_CMD_MAX		4096	/* a command line (RFC 5321: 512) */
#define SUBMIT_AUTH_LINE_MAX	16384	/* a SASL response line */
#define SUBMIT_ERRORS_MAX	20	/* refused commands before 421 */
#define SUBMIT_JUNK_MAX		100	/* NOOP, RSET, HELP that are free */
#define SUBMIT_RCPTS_HARD	1000	/* submit_max_recipients is capped here */
#define SUBMIT_ID_LEN		24

struct submit {
	struct conf *conf;
	char	 hostname[256];
	SSL_CTX	*tls;
	unsigned long long max_message_size;
	unsigned long long max_header_size;
	long long max_rcpts;		/* per message */
	long long max_msgs_hour;	/* per user */
	long long max_rcpts_hour;	/* per user */
	long long max_conns;
	long long max_conns_per_ip;
	long long idle_timeout;		/* seconds */
	long long session_timeout;	/* seconds */
	long long auth_max_failures;
	long long auth_failure_window;	/* seconds */
	struct dovecot_auth *auth;
	struct limits *limits;
	struct owner *owner;
	struct dkim_signer *dkim;
	struct spool *spool;
	struct queue *queue;
	struct scanner *scan;		/* NULL: scanning off */
	char	 spool_dir[1024];
};

/* ---- conn.c --------------------------------------------------------- */

struct conn {
	int	 fd;
	SSL	*ssl;			/* NULL until TLS */
	struct buf in;			/* received, not yet consumed */
	struct buf out;			/* replies not yet sent */
	int64_t	 session_deadline;	/* monotonic ms */
	int	 idle_ms;
	int	 eof;			/* peer closed, timed out or failed */
	int	 timed_out;		/* ... because of a deadline */
	char	 peer_ip[64];
	int	 peer_port;
	char	 local_ip[64];
	int	 local_port;
	char	 tls_version[16];
	char	 tls_cipher[64];
};

int64_t	monotonic_ms(void);
/* The server TLS context (TLS >= 1.2, modern ciphers); NULL and err. */
SSL_CTX	*tls_server_ctx(const char *cert_file, const char *key_file,
	    char *err, size_t errsz);
void	conn_init(struct conn *c, int fd, int idle_ms, int64_t deadline);
void	conn_free(struct conn *c);
/* Read more into c->in (at most to its limit); -1 on EOF, error or a
 * deadline (c->eof, c->timed_out say which). */
int	conn_fill(struct conn *c);
/* Send everything in c->out; -1 on failure. */
int	conn_flush(struct conn *c);
/* TLS handshake as the server; -1 on failure (the connection is dead). */
int	conn_starttls(struct conn *c, SSL_CTX *ctx);

/* ---- parse.c -------------------------------------------------------- */

/* A command line split into its verb (upper-cased) and its arguments. */
struct smtp_line {
	char	 verb[16];
	const char *args;		/* after the verb and one space; "" */
};

/* Split a command line (without CRLF).  -1 when the verb is not made of
 * letters or is too long. */
int	smtp_split(const char *line, struct smtp_line *l);

struct smtp_mail_args {
	struct addr addr;
	long long size;			/* SIZE=, -1 when not given */
	int	 body_8bit;		/* BODY=8BITMIME */
	int	 smtputf8;		/* SMTPUTF8 */
};

/* "FROM:<addr> [params]" / "TO:<addr> [params]".  -1 with the reply to
 * give (501 syntax, 555 unknown parameter, 552 SIZE over max_size). */
int	smtp_parse_mail(const char *args, int esmtp, unsigned long long max_size,
	    struct smtp_mail_args *m, struct reply *r);
int	smtp_parse_rcpt(const char *args, int utf8, struct addr *a,
	    struct reply *r);

/* Base64 (RFC 4648, padding required, no whitespace).  Returns the
 * decoded length or -1; out needs 3 * (len / 4) + 1 bytes (NUL added). */
long	b64_decode(const char *in, size_t len, unsigned char *out);
/* Base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes). */
void	b64_encode(const unsigned char *in, size_t n, char *out);

/*
 * The DATA reader.  Feed it the bytes after "354"; it gives back the
 * message bytes (dot-unstuffed) and stops at the first CRLF "." CRLF,
 * the only end of data.  A bare CR or bare LF anywhere sets bad_eol (the
 * message is refused, but reading goes on to the real end, so none of
 * its bytes can be taken as commands: no smuggling).
 */
struct data_reader {
	int	 state;
	int	 bad_eol;
	int	 done;
};

void	data_reader_init(struct data_reader *d);
/* Consume up to n bytes of in; message bytes go to out (room for n + 2).
 * Returns the bytes consumed (less than n only when the end was found);
 * *outlen_r gets the bytes written. */
size_t	data_reader_feed(struct data_reader *d, const char *in, size_t n,
	    char *out, size_t *outlen_r);

/* Whether the header field value lists only addresses; every addr-spec
 * of a From:/Sender: value (display names, comments, groups skipped)
 * is passed to fn.  Returns the number found, -1 on a syntax error. */
int	hdr_addresses(const char *value, size_t len,
	    int (*fn)(void *arg, const char *addr, size_t len), void *arg);

/* ---- session.c ------------------------------------------------------ */

enum session_state {
	S_CONNECTED,		/* greeting sent, no EHLO yet */
	S_HELO,			/* EHLO/HELO done, no transaction */
	S_MAIL,			/* MAIL accepted */
	S_RCPT,			/* at least one RCPT accepted */
	S_DATA,			/* reading the message */
	S_QUIT,			/* closing */
};

struct session {
	struct submit *sv;
	char	 id[SUBMIT_ID_LEN + 1];
	struct conn conn;
	enum session_state state;
	int	 implicit_tls;		/* the 465 listener */
	int	 tls;
	int	 esmtp;			/* EHLO (not HELO) */
	int	 authenticated;
	char	 helo[256];
	char	 user[256];		/* the authenticated user */
	int	 errors;
	int	 junk;		/* NOOP, RSET, HELP since the last message */
	/* The transaction. */
	struct smtp_mail_args mail;
	char	 mail_from[ADDR_PATH_MAX + 1];
	char	(*rcpts)[ADDR_PATH_MAX + 1];
	size_t	 nrcpt;
	size_t	 rcpt_cap;
	int	 rcpt_tried;		/* RCPT commands in this transaction */
	void	*msg;			/* message.c's state during DATA */
};

/* Run a whole session on an accepted connection (closes nothing). */
void	session_run(struct session *s);
const char *session_state_name(enum session_state st);

/* ---- policy.c ------------------------------------------------------- */

/* Check AUTH credentials; 0 OK (s->user set), -1 with r (535/454). */
int	policy_auth(struct session *s, const char *authzid, const char *user,
	    const char *pass, struct reply *r);
/* MAIL FROM: owned by the user, under the hourly message limit. */
int	policy_mail(struct session *s, const struct addr *from,
	    struct reply *r);
/* RCPT TO: limits and, for our domains, an existing mailbox. */
int	policy_rcpt(struct session *s, const struct addr *to, struct reply *r);

/* ---- message.c ------------------------------------------------------ */

/* DATA storage and the work after the end of data.  msg_end answers
 * with the final reply (250 only once the message is in the spool). */
int	msg_begin(struct session *s, struct reply *r);
int	msg_write(struct session *s, const char *p, size_t n);
void	msg_end(struct session *s, int bad_eol, struct reply *r);
void	msg_abort(struct session *s);

/* ---- limits.c ------------------------------------------------------- */

/* Sliding-window event counters keyed by a string (IP, user). */
struct limits *limits_new(size_t max_keys);
void	limits_free(struct limits **lp);
/* Events of kind `kind` for key within the last window seconds. */
long long limits_count(struct limits *l, const char *kind, const char *key,
	    long long window, int64_t now);
/* Record n events now. */
void	limits_add(struct limits *l, const char *kind, const char *key,
	    long long n, int64_t now);
/* Record one event now if fewer than max are in the window (0), else -1
 * (also when out of memory); one step, so that sessions in parallel
 * cannot all pass the same last free place. */
int	limits_take(struct limits *l, const char *kind, const char *key,
	    long long window, long long max, int64_t now);

/* ---- owner.c -------------------------------------------------------- */

struct owner *owner_open(const char *directory_dir, char *err, size_t errsz);
void	owner_free(struct owner **op);
/* 1 when the domain is ours. */
int	owner_is_local(struct owner *o, const char *domain);
/* 1 when user owns addr (its mailbox, a +detail of it, or an alias
 * that delivers to it); 0 otherwise. */
int	owner_owns(struct owner *o, const char *user, const struct addr *a);
/* An envelope recipient in one of our domains: 0 when it exists, -1 and
 * the directory's refusal (550 5.1.1, 550 5.2.1, ...). */
int	owner_check_rcpt(struct owner *o, const char *addr, struct reply *r);
/* Whether a mailbox is suspended. */
int	owner_suspended(struct owner *o, const char *user);
/* Expand one local recipient into mailboxes and forwards (heap strings,
 * free with owner_strings_free).  -1 with the refusal in r. */
int	owner_expand(struct owner *o, const char *addr, char ***mailboxes_r,
	    size_t *nmailbox_r, char ***forwards_r, size_t *nforward_r,
	    struct reply *r);
void	owner_strings_free(char **v, size_t n);
/* The archive mailbox of a domain into out, 1 when there is one. */
int	owner_archive(struct owner *o, const char *domain, char *out,
	    size_t outsz);

/* ---- queue.c -------------------------------------------------------- */

struct queue *queue_new(struct submit *sv, struct lmtp_pool *lmtp,
	    char *err, size_t errsz);
/* Start the runners (after the spool is open); scans the spool. */
int	queue_start(struct queue *q, int nthreads);
void	queue_stop(struct queue *q);
void	queue_free(struct queue **qp);
/* A message just committed: deliver it soon. */
void	queue_kick(struct queue *q, const char *id);
/* Commit a message with these recipients and hand it to the runners;
 * used for DSNs and by message.c.  0 or -1 with a TEMP reply. */
int	queue_commit(struct queue *q, const char *id, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt, const char *prefix,
	    size_t prefix_len, const char *body, size_t body_len, int fd,
	    off_t off, off_t len, struct reply *r);

/* ---- relay.c -------------------------------------------------------- */

struct relay;

struct relay *relay_new(struct conf *conf, const char *hostname, char *err,
	    size_t errsz);
void	relay_free(struct relay **rp);
/* Whether a relayhost is configured. */
int	relay_configured(const struct relay *r);
/* One transaction: per-recipient outcomes in rcpt_r (TEMP for all when
 * the relayhost cannot be reached).  fd/off/len: the message (CRLF). */
void	relay_send(struct relay *rl, void **handle, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt, int fd, off_t off,
	    off_t len, struct reply *rcpt_r);
void	relay_handle_free(void **handle);

/* ---- dsn.c ---------------------------------------------------------- */

struct dsn_rcpt {
	const char *addr;
	const struct reply *reply;
	int	 failed;		/* 1 failed, 0 delayed */
};

/* A DSN (multipart/report) for a message from `orig_from`, with the
 * original header section (hdr, hdr_len) attached.  -1 when out of
 * memory or over the limit of out. */
int	dsn_build(struct buf *out, const char *hostname, const char *queue_id,
	    const char *orig_from, const struct dsn_rcpt *rcpts, size_t n,
	    const char *hdr, size_t hdr_len, int64_t arrival);

/* ---- shared helpers ------------------------------------------------- */

/* A fresh random id of SUBMIT_ID_LEN hex digits. */
void	submit_new_id(char *out);
/* RFC 5322 date of now. */
void	submit_date(char *out, size_t outsz);

#endif
