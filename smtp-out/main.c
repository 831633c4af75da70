/*
 * main.c - edgemail-submit: start-up, listeners, connection threads and
 * shutdown.
 *
 *   edgemail-submit [-c CONFIG] [-o key=value]... [-t]
 *
 * Reads the configuration (DESIGN section 3), the TLS certificate, opens
 * the outbound spool, starts the queue runners and listens on
 * submit_listen (STARTTLS, 587) and submit_tls_listen (implicit TLS, 465);
 * either may be empty to turn it off.  Runs until SIGINT/SIGTERM.
 * -t only checks the configuration.
 *
 * Why a thread per connection and not an event loop: submission clients
 * are few and slow (people's mail programs), and every message needs
 * blocking work that an event loop would hand to a thread pool anyway:
 * the Dovecot password check (delayed by Dovecot on failure), the virus
 * scan (tens of ms per MB), DKIM signing and two fsyncs before the 250.
 * Straight-line code per session is also what makes the state machine
 * and its timeouts easy to check.  It is bounded: at most
 * submit_max_connections threads (more connections get 421 at once),
 * 256 KB stacks, a bounded input buffer each, socket timeouts for the idle
 * limit and a deadline for the whole session.
 */
#include <sys/types.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "auth/dovecot_auth.h"
#include "lib/conf.h"
#include "lib/dkim_sign.h"
#include "lib/log.h"
#include "lib/scan.h"
#include "lib/spool.h"
#include "lmtp/pool.h"
#include "smtp-out/submit.h"

#define THREAD_STACK	(256 * 1024)
#define DRAIN_SECS	10	/* sessions get this long at shutdown */
#define AUTH_TIMEOUT_MS	20000	/* Dovecot delays failures by 2 s+ */

static struct submit sv;
static struct lmtp_pool *lmtp;
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t active_cv = PTHREAD_COND_INITIALIZER;
static int *active_fds;		/* sockets of running sessions, -1 free */
static char (*active_ip)[INET6_ADDRSTRLEN];	/* their clients */
static long long nactive;



void
submit_new_id(char *out)
{
	unsigned char r[8];
	uint32_t t = (uint32_t)time(NULL);

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatalx("getrandom failed");
	/* Time first: spool_list() order is arrival order.  64 random bits
	 * after it: ids of one second never meet (and if they did, the
	 * spool would refuse the second, never replace the first). */
	snprintf(out, SUBMIT_ID_LEN + 1, "%08x", t);
	hex_encode(r, sizeof(r), out + 8);
}

void
submit_date(char *out, size_t outsz)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, outsz, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static void
load_settings(void)
{
	struct conf *c = sv.conf;
	struct lmtp_server srv;
	long long timeout, maxconn, spool_max;
	int scan_on;
	char err[512], why[256];
	const char *s;

	conf_or_die(conf_get_size(c, "max_message_size", &sv.max_message_size,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_size(c, "max_header_size", &sv.max_header_size,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "submit_max_recipients", 1, SUBMIT_RCPTS_HARD,
	    &sv.max_rcpts, err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "submit_max_messages_per_hour", 1, 10000000,
	    &sv.max_msgs_hour, err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "submit_max_recipients_per_hour", 1,
	    100000000, &sv.max_rcpts_hour, err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "submit_max_connections", 1, 10000,
	    &sv.max_conns, err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "submit_max_connections_per_ip", 1, 10000,
	    &sv.max_conns_per_ip, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "submit_idle_timeout", &sv.idle_timeout,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "submit_session_timeout",
	    &sv.session_timeout, err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "submit_auth_max_failures", 1, 1000000,
	    &sv.auth_max_failures, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "submit_auth_failure_window",
	    &sv.auth_failure_window, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "lmtp_timeout", &timeout, err,
	    sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "lmtp_max_connections", 1, 1024, &maxconn,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "spool_max_bytes", 0, INT64_MAX, &spool_max,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_bool(c, "scan", &scan_on, err, sizeof(err)), err);
	if (sv.idle_timeout < 1 || sv.session_timeout < 1)
		fatalx("config: submit timeouts must be at least 1s");

	snprintf(sv.hostname, sizeof(sv.hostname), "%s", conf_get(c, "hostname"));
	snprintf(sv.spool_dir, sizeof(sv.spool_dir), "%s",
	    conf_get(c, "outbound_spool_dir"));

	sv.tls = tls_server_ctx(conf_get(c, "tls_cert_file"),
	    conf_get(c, "tls_key_file"), err, sizeof(err));
	if (sv.tls == NULL)
		fatalx("tls: %s", err);
	if ((sv.auth = dovecot_auth_new(conf_get(c, "dovecot_auth_socket"),
	    AUTH_TIMEOUT_MS)) == NULL)
		fatalx("config: bad dovecot_auth_socket");
	if ((sv.limits = limits_new(20000)) == NULL)
		fatalx("out of memory");
	if ((sv.owner = owner_open(conf_get(c, "directory_dir"), err,
	    sizeof(err))) == NULL)
		fatalx("directory: %s", err);
	if ((sv.dkim = dkim_signer_new(conf_get(c, "dkim_keys_dir"),
	    conf_get(c, "dkim_selector"), conf_get(c, "dkim_ed25519_selector"),
	    err, sizeof(err))) == NULL)
		fatalx("dkim: %s", err);
	if ((sv.spool = spool_open(sv.spool_dir, (uint64_t)spool_max, err,
	    sizeof(err))) == NULL)
		fatalx("outbound spool: %s", err);
	if (scan_on) {
		if ((sv.scan = scan_from_conf(c, err, sizeof(err))) == NULL)
			fatalx("config: %s", err);
		if (!scan_ready(sv.scan, why, sizeof(why)))
			log_warnx("event=scanner_not_ready why=\"%s\" (messages get "
			    "451 until it loads)", why);
	}
	s = conf_get(c, "lmtp_server");
	if (lmtp_server_parse(s, &srv) != 0)
		fatalx("config: bad lmtp_server '%s'", s);
	if ((lmtp = lmtp_pool_new(&srv, sv.hostname, (int)timeout * 1000,
	    (unsigned)maxconn, 20)) == NULL)
		fatalx("out of memory");
	if ((sv.queue = queue_new(&sv, lmtp, err, sizeof(err))) == NULL)
		fatalx("queue: %s", err);
}

/* "host:port" or "[v6]:port" -> a listening socket; -1 when spec is "". */
static int
listen_on(const char *spec)
{
	struct addrinfo hints, *res, *ai;
	char host[256], port[16];
	const char *colon;
	int fd = -1, one = 1, rc;

	if (*spec == '\0')
		return -1;
	if (*spec == '[') {
		const char *end = strchr(spec, ']');

		if (end == NULL || end[1] != ':')
			fatalx("config: bad listen address '%s'", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(end - spec - 1),
		    spec + 1);
		snprintf(port, sizeof(port), "%s", end + 2);
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			fatalx("config: bad listen address '%s'", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		snprintf(port, sizeof(port), "%s", colon + 1);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0)
		fatalx("config: listen address '%s': %s", spec, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fatalx("cannot listen on %s: %s", spec, strerror(errno));
	return fd;
}

static void
sockname(int fd, int peer, char *ip, size_t ipsz, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char serv[16];

	ip[0] = '\0';
	*port = 0;
	if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &len) :
	    getsockname(fd, (struct sockaddr *)&ss, &len)) != 0)
		return;
	if (getnameinfo((struct sockaddr *)&ss, len, ip, (socklen_t)ipsz, serv,
	    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		*port = (int)strtol(serv, NULL, 10);
	/* IPv4-mapped IPv6 addresses read as IPv4. */
	if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, ':') == NULL)
		memmove(ip, ip + 7, strlen(ip + 7) + 1);
}

struct conn_arg {
	int	 fd;
	int	 implicit_tls;
	int	 slot;
};

static void *
conn_thread(void *arg)
{
	struct conn_arg ca = *(struct conn_arg *)arg;
	struct session *s;
	int one = 1;
	int64_t t0 = monotonic_ms();

	free(arg);
	if ((s = calloc(1, sizeof(*s))) != NULL) {
		s->sv = &sv;
		s->implicit_tls = ca.implicit_tls;
		submit_new_id(s->id);
		conn_init(&s->conn, ca.fd, (int)(sv.idle_timeout * 1000),
		    t0 + sv.session_timeout * 1000);
		setsockopt(ca.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sockname(ca.fd, 1, s->conn.peer_ip, sizeof(s->conn.peer_ip),
		    &s->conn.peer_port);
		sockname(ca.fd, 0, s->conn.local_ip, sizeof(s->conn.local_ip),
		    &s->conn.local_port);
		log_info("session=%s event=connect peer=%s port=%d tls=%s", s->id,
		    s->conn.peer_ip, s->conn.local_port,
		    ca.implicit_tls ? "implicit" : "starttls");
		session_run(s);
		log_info("session=%s event=disconnect peer=%s user=%s ms=%lld",
		    s->id, s->conn.peer_ip, s->user[0] ? s->user : "-",
		    (long long)(monotonic_ms() - t0));
		conn_free(&s->conn);
		free(s);
	}
	close(ca.fd);
	pthread_mutex_lock(&active_mu);
	active_fds[ca.slot] = -1;
	nactive--;
	pthread_cond_broadcast(&active_cv);
	pthread_mutex_unlock(&active_mu);
	return NULL;
}

static void
accept_one(int lfd, int implicit_tls)
{
	static const char busy[] = "421 4.7.0 Too many connections, try again "
	    "later\r\n";
	pthread_attr_t attr;
	pthread_t th;
	struct conn_arg *ca;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "";
	const char *why = NULL;
	long long from_ip = 0, i;
	int fd, slot;

	if ((fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
	    SOCK_CLOEXEC)) < 0)
		return;
	(void)getnameinfo((struct sockaddr *)&ss, sslen, ip, sizeof(ip), NULL,
	    0, NI_NUMERICHOST);
	pthread_mutex_lock(&active_mu);
	for (i = 0; i < sv.max_conns; i++)
		from_ip += active_fds[i] >= 0 && strcmp(active_ip[i], ip) == 0;
	if (nactive >= sv.max_conns)
		why = "max_connections";
	else if (from_ip >= sv.max_conns_per_ip)
		why = "max_connections_per_ip";
	if (why != NULL) {
		pthread_mutex_unlock(&active_mu);
		/* On the TLS port a plain reply would be noise: just close. */
		if (!implicit_tls)
			(void)send(fd, busy, sizeof(busy) - 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		log_info("event=connection_refused why=%s peer=%s limit=%lld",
		    why, ip, strcmp(why, "max_connections") == 0 ?
		    sv.max_conns : sv.max_conns_per_ip);
		close(fd);
		return;
	}
	for (slot = 0; active_fds[slot] >= 0; slot++)
		;
	active_fds[slot] = fd;
	memcpy(active_ip[slot], ip, sizeof(ip));
	nactive++;
	pthread_mutex_unlock(&active_mu);

	if ((ca = malloc(sizeof(*ca))) == NULL)
		goto fail;
	ca->fd = fd;
	ca->implicit_tls = implicit_tls;
	ca->slot = slot;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, conn_thread, ca) != 0) {
		pthread_attr_destroy(&attr);
		free(ca);
		goto fail;
	}
	pthread_attr_destroy(&attr);
	return;
fail:
	log_warnx("event=thread_failed error=\"%s\"", strerror(errno));
	close(fd);
	pthread_mutex_lock(&active_mu);
	active_fds[slot] = -1;
	nactive--;
	pthread_mutex_unlock(&active_mu);
}

/* Stop: wake every session (its reads end) and wait for them. */
static void
drain(void)
{
	struct timespec ts;
	long long i;

	pthread_mutex_lock(&active_mu);
	for (i = 0; i < sv.max_conns; i++)
		if (active_fds[i] >= 0)
			shutdown(active_fds[i], SHUT_RD);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += DRAIN_SECS;
	while (nactive > 0 &&
	    pthread_cond_timedwait(&active_cv, &active_mu, &ts) == 0)
		;
	if (nactive > 0)
		log_warnx("event=stopping sessions_left=%lld", nactive);
	pthread_mutex_unlock(&active_mu);
}

int
main(int argc, char **argv)
{
	int check_only, i, sfd, lfd[2];
	char err[512];
	long long threads;
	sigset_t set;
	struct pollfd pfd[3];

	/* Thread per connection: without a cap, glibc gives each busy
	 * thread its own malloc arena (99 MiB at 32 x 1 MB in make bench). */
	mallopt(M_ARENA_MAX, 2);
	sv.conf = conf_from_args(argc, argv, "edgemail-submit", &check_only);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx("curl_global_init failed");
	load_settings();
	conf_or_die(conf_get_ll(sv.conf, "submit_delivery_threads", 1, 64,
	    &threads, err, sizeof(err)), err);
	if (check_only) {
		printf("configuration ok\n");
		return 0;
	}

	/* Signals are read from a signalfd by this thread; every other
	 * thread inherits the blocked mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		fatalx("signalfd: %s", strerror(errno));

	active_fds = xcalloc((size_t)sv.max_conns, sizeof(*active_fds));
	active_ip = xcalloc((size_t)sv.max_conns, sizeof(*active_ip));
	for (i = 0; i < sv.max_conns; i++)
		active_fds[i] = -1;
	lfd[0] = listen_on(conf_get(sv.conf, "submit_listen"));
	lfd[1] = listen_on(conf_get(sv.conf, "submit_tls_listen"));
	if (lfd[0] < 0 && lfd[1] < 0)
		fatalx("config: submit_listen and submit_tls_listen are both empty");
	if (queue_start(sv.queue, (int)threads) != 0)
		fatalx("queue: cannot start the runners");
	log_info("event=started pid=%d submit=%s submits=%s max_message_size=%llu "
	    "relayhost=%s", (int)getpid(), conf_get(sv.conf, "submit_listen"),
	    conf_get(sv.conf, "submit_tls_listen"), sv.max_message_size,
	    *conf_get(sv.conf, "relayhost") ? conf_get(sv.conf, "relayhost") :
	    "none");

	pfd[0].fd = sfd;
	pfd[1].fd = lfd[0];
	pfd[2].fd = lfd[1];
	for (i = 0; i < 3; i++)
		pfd[i].events = POLLIN;
	for (;;) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatalx("poll: %s", strerror(errno));
		}
		if (pfd[0].revents & POLLIN)
			break;
		if (pfd[1].revents & POLLIN)
			accept_one(lfd[0], 0);
		if (pfd[2].revents & POLLIN)
			accept_one(lfd[1], 1);
	}
	log_info("event=stopping");
	for (i = 0; i < 2; i++)
		if (lfd[i] >= 0)
			close(lfd[i]);
	drain();
	queue_stop(sv.queue);
	log_info("event=stopped");
	/* Sessions still running (a client in the middle of a slow DATA)
	 * end with the process: nothing of theirs was acknowledged. */
	if (nactive > 0)
		_exit(0);
	queue_free(&sv.queue);
	lmtp_pool_free(&lmtp);
	spool_close(&sv.spool);
	if (sv.scan != NULL)
		scan_free(&sv.scan);
	dkim_signer_free(&sv.dkim);
	owner_free(&sv.owner);
	limits_free(&sv.limits);
	dovecot_auth_free(&sv.auth);
	SSL_CTX_free(sv.tls);
	conf_free(&sv.conf);
	curl_global_cleanup();
	return 0;
}
