/*
 * policy.c - the questions the SMTP session asks: is this password right
 * (Dovecot, with failure limits per client IP and per user name), may
 * this user send as this address, may this recipient be added (hourly
 * limits, local mailboxes that exist).
 *
 * Replies follow RFC 4954 and RFC 5321: a refused login is 535 5.7.8,
 * a login that cannot be checked now (or too many failures) is 454 4.7.0,
 * a sender the user does not own is 553 5.7.1, hourly limits are 452.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/dovecot_auth.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "smtp-out/submit.h"

#define HOUR	3600

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

int
policy_auth(struct session *s, const char *authzid, const char *user,
    const char *pass, struct reply *r)
{
	struct submit *sv = s->sv;
	struct dovecot_auth_req q;
	struct dovecot_auth_result res;
	enum dovecot_auth_status st;
	char name[256], quoted[300];
	int64_t now = time(NULL);
	long long ip_fails;

	snprintf(name, sizeof(name), "%s", user);
	lower(name);
	log_quote(name, quoted, sizeof(quoted));
	if (*authzid != '\0' && strcasecmp(authzid, user) != 0) {
		log_info("session=%s event=auth_failed peer=%s user=%s "
		    "why=authzid", s->id, s->conn.peer_ip, quoted);
		reply_set(r, 535, "5.7.8", "Authentication credentials invalid");
		return -1;
	}
	/* Guessing one user's password from many addresses is limited per
	 * user too, but only for clients that have failed before: one that
	 * has not (the user's own) is never locked out by the failures of
	 * others. */
	ip_fails = limits_count(sv->limits, "authfail-ip", s->conn.peer_ip,
	    sv->auth_failure_window, now);
	if (ip_fails >= sv->auth_max_failures || (ip_fails > 0 &&
	    limits_count(sv->limits, "authfail-user", name,
	    sv->auth_failure_window, now) >= sv->auth_max_failures)) {
		log_info("session=%s event=auth_rate_limited peer=%s user=%s",
		    s->id, s->conn.peer_ip, quoted);
		reply_set(r, 454, "4.7.0", "Too many failed authentication "
		    "attempts, try again later");
		return -1;
	}
	memset(&q, 0, sizeof(q));
	q.service = "smtp";
	q.user = user;
	q.password = pass;
	q.remote_ip = s->conn.peer_ip;
	q.local_ip = s->conn.local_ip;
	q.remote_port = s->conn.peer_port;
	q.local_port = s->conn.local_port;
	q.secured = s->tls;
	q.session = s->id;
	st = dovecot_auth_plain(sv->auth, &q, &res, r);
	if (st == DOVECOT_AUTH_OK && res.user[0] != '\0') {
		snprintf(name, sizeof(name), "%s", res.user);
		lower(name);
		log_quote(name, quoted, sizeof(quoted));
	}
	if (st == DOVECOT_AUTH_OK && owner_suspended(sv->owner, name)) {
		st = DOVECOT_AUTH_FAIL;
		res.nologin = 1;
	}
	switch (st) {
	case DOVECOT_AUTH_OK:
		snprintf(s->user, sizeof(s->user), "%s", name);
		log_info("session=%s event=auth peer=%s user=%s", s->id,
		    s->conn.peer_ip, quoted);
		return 0;
	case DOVECOT_AUTH_FAIL:
		if (res.nologin) {
			/* The password was right: not a guessing attempt. */
			log_info("session=%s event=auth_refused peer=%s user=%s "
			    "why=suspended", s->id, s->conn.peer_ip, quoted);
			reply_set(r, 535, "5.7.8", "Authentication refused: "
			    "account suspended");
			return -1;
		}
		limits_add(sv->limits, "authfail-ip", s->conn.peer_ip, 1, now);
		limits_add(sv->limits, "authfail-user", name, 1, now);
		log_info("session=%s event=auth_failed peer=%s user=%s", s->id,
		    s->conn.peer_ip, quoted);
		return -1;
	case DOVECOT_AUTH_TEMP:
		log_warnx("session=%s event=auth_unavailable peer=%s user=%s",
		    s->id, s->conn.peer_ip, quoted);
		return -1;
	}
	return -1;
}

int
policy_mail(struct session *s, const struct addr *from, struct reply *r)
{
	struct submit *sv = s->sv;
	char a[ADDR_PATH_MAX + 1], q[ADDR_PATH_MAX * 2];

	if (addr_is_null(from)) {
		reply_set(r, 553, "5.7.1", "Sender address rejected: the null "
		    "sender <> is not for users");
		return -1;
	}
	addr_format(from, a, sizeof(a));
	if (!owner_owns(sv->owner, s->user, from)) {
		log_info("session=%s event=sender_refused user=%s from=%s", s->id,
		    s->user, log_quote(a, q, sizeof(q)));
		reply_set(r, 553, "5.7.1", "Sender address rejected: <%s> is "
		    "not owned by user %s", a, s->user);
		return -1;
	}
	/* Counted when MAIL is accepted, as Postfix's anvil counts: a
	 * check at MAIL and a count at the end of DATA let parallel
	 * sessions all pass it. */
	if (limits_take(sv->limits, "msgs", s->user, HOUR, sv->max_msgs_hour,
	    time(NULL)) != 0) {
		log_info("session=%s event=limit user=%s limit=messages_per_hour "
		    "value=%lld", s->id, s->user, sv->max_msgs_hour);
		reply_set(r, 452, "4.7.1", "Hourly message limit reached "
		    "(%lld messages per hour), try again later",
		    sv->max_msgs_hour);
		return -1;
	}
	return 0;
}

int
policy_rcpt(struct session *s, const struct addr *to, struct reply *r)
{
	struct submit *sv = s->sv;
	char a[ADDR_PATH_MAX + 1];

	if (owner_is_local(sv->owner, to->domain)) {
		addr_format(to, a, sizeof(a));
		if (owner_check_rcpt(sv->owner, a, r) != 0)
			return -1;
	}
	/* Counted when RCPT is accepted (see policy_mail). */
	if (limits_take(sv->limits, "rcpts", s->user, HOUR,
	    sv->max_rcpts_hour, time(NULL)) != 0) {
		log_info("session=%s event=limit user=%s "
		    "limit=recipients_per_hour value=%lld", s->id, s->user,
		    sv->max_rcpts_hour);
		reply_set(r, 452, "4.5.3", "Hourly recipient limit reached "
		    "(%lld recipients per hour), try again later",
		    sv->max_rcpts_hour);
		return -1;
	}
	return 0;
}
