/*
 * lmtp.h - LMTP client (RFC 2033) for delivery into Dovecot.
 *
 * One connection carries any number of transactions (RSET between them).
 * A transaction is: MAIL FROM (with BODY=8BITMIME / SMTPUTF8 when offered
 * and needed), one RCPT per recipient, DATA with dot-stuffing, and one
 * reply per accepted recipient after the final dot.  Commands are
 * pipelined when the server offers PIPELINING.  Every outcome lands in a
 * struct reply; a connection that fails or times out turns every recipient
 * that has no final answer yet into TEMP (451 4.4.2), never PERM.
 *
 * The message must already have CRLF line ends (lib/crlf.h).
 */
#ifndef EDGEMAIL_LMTP_H
#define EDGEMAIL_LMTP_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/reply.h"

struct lmtp_server {
	int	 is_unix;
	char	 path[108];	/* unix socket */
	char	 host[256];	/* tcp */
	char	 port[16];
};

/* "unix:/path", "/path" or "host:port" ("[v6]:port"). */
int	lmtp_server_parse(const char *spec, struct lmtp_server *s);

/* What to send as DATA: prefix bytes (added header fields, CRLF ends),
 * then len bytes of fd from off (or mem/mem_len when fd < 0). */
struct lmtp_msg {
	const char *prefix;
	size_t	 prefix_len;
	int	 fd;
	off_t	 off;
	off_t	 len;
	const char *mem;
	size_t	 mem_len;
	int	 eightbit;	/* body has 8-bit bytes: ask for BODY=8BITMIME */
};

struct lmtp_conn;

/* Connect and LHLO.  On failure returns NULL and a TEMP reply in r. */
struct lmtp_conn *lmtp_connect(const struct lmtp_server *s,
	    const char *lhlo_name, int timeout_ms, struct reply *r);
/*
 * Run one transaction.  rcpt_r[i] gets the outcome for rcpts[i].
 * mail_from is the bare address ("" for the null sender).
 * Returns 0 when the connection can be used again, -1 when it must be
 * closed (the replies are filled either way).
 */
int	lmtp_send(struct lmtp_conn *c, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt, const struct lmtp_msg *m,
	    struct reply *rcpt_r);
/*
 * Begin a transaction before its message is here: write [RSET,] MAIL
 * FROM and every RCPT (pipelined, replies not read), so that the server
 * looks its recipients up while the caller still receives the message.
 * A later lmtp_send() with the same mail_from and rcpts carries on from
 * there (DATA); with another envelope, or lmtp_cancel(), the begun one
 * is read and dropped first.  Only with PIPELINING and at most 100
 * valid addresses; -1 when not begun (nothing was written, or the
 * connection broke).
 */
int	lmtp_begin(struct lmtp_conn *c, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt);
/* Drop a begun transaction (read its replies).  0, or -1 when the
 * connection must be closed. */
int	lmtp_cancel(struct lmtp_conn *c);
/* QUIT (best effort) and free. */
void	lmtp_close(struct lmtp_conn **cp);
/* 1 when a connection that waited idle can still be used: not broken, and
 * the server has not closed it (its idle timeout, a restart) meanwhile. */
int	lmtp_idle_ok(struct lmtp_conn *c);

/* Connect, send, close: the simple one-shot form. */
int	lmtp_deliver(const struct lmtp_server *s, const char *lhlo_name,
	    int timeout_ms, const char *mail_from, const char *const *rcpts,
	    size_t nrcpt, const struct lmtp_msg *m, struct reply *rcpt_r);

#endif
