/*
 * bench.h - edgemail-bench: load generator and null LMTP server for
 * `make bench` (tests/bench/run.sh, docs/bench.md).
 *
 *   bench.c       main, options, the test message, the timed run (one
 *                 thread per connection), statistics and the result line
 *   lmtp_load.c   raw LMTP transactions (lmtp/lmtp.h) into a server
 *   (pair)        lmtp_load.c and http_load.c taking turns, one message
 *                 each, at concurrency 1
 *   http_load.c   signed HTTPS POSTs (OpenSSL, keep-alive) into the API
 *   submit_load.c authenticated STARTTLS submission into edgemail-submit
 *   sink.c        a null LMTP server that answers 250 at once
 *   smarthost.c   a null SMTP smarthost (STARTTLS, AUTH) for the relay
 *
 * Not a test of correctness: every load mode counts anything but a full
 * delivery (every recipient 2xx) as an error and prints it, nothing more.
 */
#ifndef EDGEMAIL_BENCH_H
#define EDGEMAIL_BENCH_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "lmtp/lmtp.h"

#define BENCH_RCPTS_MAX		100
#define BENCH_ADDR_MAX		128
/* The last body line, rewritten for every message: "bench-seq NONCE SEQ". */
#define BENCH_TAIL_LEN		49

/* What a load run sends and where. */
struct bench_opts {
	const char *mode;		/* "lmtp", "http" or "submit" */
	size_t	 size;			/* message bytes, tail included */
	int	 nrcpt;
	int	 nmailbox;
	const char *user;		/* mailboxes are USER1..USERn */
	const char *domain;
	const char *from;
	int	 conc;
	double	 duration;		/* measured seconds */
	double	 warmup;		/* seconds run before measuring */
	const char *label;
	const char *samples;		/* append the latencies to this file */
	const char *label_b;		/* pair: the HTTPS side's label ... */
	const char *samples_b;		/* ... and samples file */
	const char *message_file;	/* NULL: the built-in plain message */

	/* lmtp (and submit: its host and port are copied below) */
	struct lmtp_server lmtp;

	/* http, submit */
	char	 host[256];
	char	 port[16];
	const char *ca_file;
	const char *keys_file;
	const char *key_id;		/* NULL: the first key of the file */
	int	 http_status;		/* the answer that counts: 200 or 202 */
};

/* The test message, shared read-only by every connection. */
struct bench_msg {
	char	*data;			/* CRLF line ends, size bytes */
	size_t	 size;
	size_t	 tail_off;		/* where the per-message tail starts */
	int	 tail_is_field;		/* the tail is a header field on top
					 * (--message), else the last line */
	EVP_MD_CTX *prefix_sha;		/* SHA-256 state after data[0..tail_off);
					 * what follows the tail is hashed per
					 * message (nothing, for a built one) */
	char	 rcpt[BENCH_RCPTS_MAX][BENCH_ADDR_MAX];
	const char *rcptp[BENCH_RCPTS_MAX];
	int	 nrcpt;
	uint64_t nonce;			/* this process's run, in every tail */
};

/* Per-connection results, kept by the thread that owns the connection. */
struct bench_stats {
	double	*lat_ms;
	size_t	 n, cap;
	uint64_t errors;
	char	 first_error[256];
};

/* pair: an LMTP and an HTTPS connection that take turns, one message
 * each, so that both see the same moments of a drifting disk. */
struct bench_turn {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int	 turn;			/* the side whose message is next */
	unsigned rounds;		/* messages started so far */
	int	 left[2];		/* that side has finished its run */
};

/* A load mode: one call per connection thread. */
struct bench_conn_ctx {
	const struct bench_opts *o;
	const struct bench_msg *msg;
	void	*shared;		/* the mode's own shared state */
	int	 idx;
	double	 t_measure;		/* monotonic: start of the measured span */
	double	 t_end;			/* monotonic: stop starting new messages */
	struct bench_turn *turn;	/* pair only, else NULL */
	int	 side;			/* pair: 0 LMTP, 1 HTTPS */
	int	 holding;		/* pair: this side has the turn */
	struct bench_stats st;
};

double	bench_now(void);
/* Fill the tail of a copy of the message for message number seq. */
void	bench_msg_tail(const struct bench_msg *m, uint64_t seq, char *tail);
uint64_t bench_next_seq(void);
/* Record one finished message (started at t0, ended at t1). */
void	bench_record(struct bench_conn_ctx *cx, double t0, double t1, int ok,
	    const char *why);
/* pair: at the top of every loop round, give the turn to the other side
 * (if this side holds it) and wait for it back; at the end of the run,
 * leave.  Both do nothing outside a pair. */
void	bench_turn_next(struct bench_conn_ctx *cx);
void	bench_turn_leave(struct bench_conn_ctx *cx);

/* lmtp_load.c */
int	lmtp_load_init(const struct bench_opts *o, void **shared_r);
void	*lmtp_load_conn(void *arg);

/* http_load.c */
int	http_load_init(const struct bench_opts *o, const struct bench_msg *m,
	    void **shared_r);
void	*http_load_conn(void *arg);
void	http_load_free(void *shared);

/* submit_load.c: --server is the relay's STARTTLS listener, --keys-file
 * holds the user's password, --from is the user and envelope sender. */
int	submit_load_init(const struct bench_opts *o, const struct bench_msg *m,
	    void **shared_r);
void	*submit_load_conn(void *arg);

/* sink.c */
int	sink_main(int argc, char **argv);
/* A listening socket on "unix:PATH" or "HOST:PORT" (exits on failure). */
int	bench_listen(const char *spec);
/* Accept connections for ever, each on a detached thread running serve
 * with the descriptor as (void *)(intptr_t)fd. */
void	bench_accept_loop(int lfd, void *(*serve)(void *));
/* Look for the end of DATA ("\r\n.\r\n") in p; *match carries the bytes
 * of it matched from one call to the next (2 at the start of DATA).
 * Returns the bytes used: up to the marker when *found is set, else n. */
size_t	bench_data_end(int *match, const char *p, size_t n, int *found);

/* smarthost.c */
int	smarthost_main(int argc, char **argv);

#endif
