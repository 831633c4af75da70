/*
 * dovecot_auth.h - password checks against Dovecot's auth-client socket.
 *
 * SMTP AUTH uses the same passwords (and the same passdb rules: suspended
 * users, nologin, auth penalties) as IMAP by asking Dovecot's auth service
 * over its auth-client protocol (version 1.2):
 *
 *	-> VERSION 1 2 / CPID pid
 *	<- VERSION 1 2 / MECH ... / SPID / CUID / COOKIE / DONE
 *	-> AUTH id PLAIN service=smtp secured rip=... resp=BASE64
 *	<- OK id user=...  |  FAIL id [user=...] [temp] [reason=...]
 *
 * One connection is shared by every thread of the program: requests carry
 * an id and replies are matched by it, so a slow answer (Dovecot delays
 * every failure by auth_failure_delay) holds up nobody else.  Whichever
 * waiting thread finds nobody reading becomes the reader for a while
 * (leader/follower): no extra thread, nothing to stop at exit.  A broken
 * or silent connection turns every pending request into TEMP and is made
 * again at the next request.  Never logs a password.
 */
#ifndef EDGEMAIL_DOVECOT_AUTH_H
#define EDGEMAIL_DOVECOT_AUTH_H

#include <stddef.h>

#include "lib/reply.h"

enum dovecot_auth_status {
	DOVECOT_AUTH_OK = 0,	/* password right, login allowed */
	DOVECOT_AUTH_FAIL,	/* wrong user/password, or login refused */
	DOVECOT_AUTH_TEMP,	/* could not tell: Dovecot down, timeout */
};

struct dovecot_auth_req {
	const char *service;	/* "smtp" */
	const char *user;
	const char *password;
	const char *remote_ip;	/* may be NULL */
	const char *local_ip;	/* may be NULL */
	int	 remote_port;
	int	 local_port;
	int	 secured;	/* the client is on TLS */
	const char *session;	/* session id for Dovecot's log; may be NULL */
};

struct dovecot_auth_result {
	char	 user[256];	/* the user name Dovecot settled on */
	int	 nologin;	/* password right but login refused */
	char	 reason[256];	/* Dovecot's reason=, or "" */
};

struct dovecot_auth;

/* Nothing is connected yet; timeout_ms bounds each request. */
struct dovecot_auth *dovecot_auth_new(const char *socket_path, int timeout_ms);
void	dovecot_auth_free(struct dovecot_auth **ap);

/*
 * Check a user name and password (as AUTH PLAIN).  Fills res and r:
 * OK 235 2.7.0, FAIL 535 5.7.8, TEMP 454 4.7.0.  Thread-safe.
 */
enum dovecot_auth_status dovecot_auth_plain(struct dovecot_auth *a,
	    const struct dovecot_auth_req *q, struct dovecot_auth_result *res,
	    struct reply *r);

#endif
