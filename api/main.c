/*
 * main.c - edgemail-api: start-up and shutdown.
 *
 *   edgemail-api [-c CONFIG] [-o key=value]... [-t]
 *
 * Reads the configuration (DESIGN section 3), the HMAC keyring and the TLS
 * certificate, starts the HTTPS (and optional plain HTTP) listeners and
 * runs until SIGINT/SIGTERM.  -t only checks the configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/checks.h"
#include "auth/sig.h"
#include "lib/conf.h"
#include "lib/directory.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lmtp/pool.h"



/* The SRS key: read it, or make one on first start (like the host keys
 * of an SSH server).  Changing it invalidates addresses in flight. */
static void
load_srs_secret(struct api *api, const char *path)
{
	unsigned char rnd[32];
	char hex[65], *s;
	int fd;

	if ((s = io_read_file(path, 1024, NULL)) == NULL && errno == ENOENT) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			fatalx("getrandom failed");
		hex_encode(rnd, sizeof(rnd), hex);
		/* Written under a temporary name and linked into place, so
		 * that two instances starting together agree on one key. */
		char tmp[PATH_MAX];

		snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600)) < 0 || io_write_all(fd, hex, 64) != 0 ||
		    fsync(fd) != 0 || close(fd) != 0)
			fatalx("srs_secret_file %s: %s", tmp, strerror(errno));
		if (link(tmp, path) == 0)
			log_info("event=srs_key_created path=%s", path);
		else if (errno != EEXIST)
			fatalx("srs_secret_file %s: %s", path, strerror(errno));
		unlink(tmp);
		s = io_read_file(path, 1024, NULL);
	}
	if (s == NULL)
		fatalx("srs_secret_file %s: %s", path, strerror(errno));
	s[strcspn(s, "\r\n")] = '\0';
	if (strlen(s) < 16)
		fatalx("srs_secret_file %s: secret too short", path);
	snprintf(api->srs_secret, sizeof(api->srs_secret), "%s", s);
	explicit_bzero(s, strlen(s));
	free(s);
}

static void
load_settings(struct api *api)
{
	struct conf *c = api->conf;
	struct lmtp_server srv;
	long long timeout, maxconn, idem_ttl;
	unsigned long long spool_max;
	const char *s;
	char err[512];

	conf_or_die(conf_get_size(c, "max_message_size", &api->max_message_size,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_size(c, "max_header_size", &api->max_header_size,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "max_recipients", 1, API_MAX_RCPTS_HARD,
	    &api->max_rcpts, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "signature_max_skew", &api->max_skew,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "request_timeout",
	    &api->request_timeout, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "lmtp_timeout", &timeout, err,
	    sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "lmtp_max_connections", 1, 1024, &maxconn,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "queue_retry_min", &api->retry_min,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "queue_retry_max", &api->retry_max,
	    err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "max_queue_lifetime",
	    &api->queue_lifetime, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "queue_run_interval",
	    &api->run_interval, err, sizeof(err)), err);
	conf_or_die(conf_get_duration(c, "idempotency_ttl", &idem_ttl, err,
	    sizeof(err)), err);
	conf_or_die(conf_get_size(c, "spool_max_bytes", &spool_max, err,
	    sizeof(err)), err);
	conf_or_die(conf_get_bool(c, "queueing", &api->queueing, err,
	    sizeof(err)), err);
	conf_or_die(conf_get_ll(c, "rate_limit_per_key", 0, 100000000,
	    &api->rate_limit, err, sizeof(err)), err);
	api->lmtp_timeout = timeout;
	if (api->run_interval < 1)
		api->run_interval = 1;

	snprintf(api->hostname, sizeof(api->hostname), "%s",
	    conf_get(c, "hostname"));
	snprintf(api->authserv_id, sizeof(api->authserv_id), "%s",
	    conf_get(c, "authserv_id"));
	snprintf(api->spool_dir, sizeof(api->spool_dir), "%s",
	    conf_get(c, "spool_dir"));

	s = conf_get(c, "hmac_keys_file");
	if ((api->keys = keyring_load(s, err, sizeof(err))) == NULL)
		fatalx("hmac keys: %s", err);
	s = conf_get(c, "lmtp_server");
	if (lmtp_server_parse(s, &srv) != 0)
		fatalx("config: bad lmtp_server '%s'", s);
	api->lmtp = lmtp_pool_new(&srv, api->hostname, (int)timeout * 1000,
	    (unsigned)maxconn, 20);
	if ((api->replay = replay_new()) == NULL || api->lmtp == NULL)
		fatalx("out of memory");
	/* Opening the spool recovers it: half-written files go, committed
	 * messages are picked up by the queue runner. */
	if ((api->spool = spool_open(api->spool_dir, spool_max, err,
	    sizeof(err))) == NULL)
		fatalx("spool: %s", err);
	s = conf_get(c, "redis");
	if (s != NULL && s[0] != '\0' &&
	    (api->redis = redis_open(s, 1000, err, sizeof(err))) == NULL)
		fatalx("redis: %s", err);
	if ((api->idem = idem_open(conf_get(c, "idem_dir"), idem_ttl,
	    api->redis, err, sizeof(err))) == NULL)
		fatalx("idempotency store: %s", err);
	/* The directory re-reads its files when they change (edgemailctl):
	 * no restart.  An empty one leaves recipients to Dovecot. */
	{
		long long gmax;

		conf_or_die(conf_get_ll(c, "max_group_targets", 1, 100000,
		    &gmax, err, sizeof(err)), err);
		if ((api->dir = directory_open(conf_get(c, "directory_dir"),
		    (size_t)gmax, err, sizeof(err))) == NULL)
			fatalx("directory: %s", err);
	}
	/* Forwards go into the relay's spool, which the relay owns: attach,
	 * never recover it from here. */
	if ((api->outbound = spool_attach(conf_get(c, "outbound_spool_dir"), 0,
	    err, sizeof(err))) == NULL)
		log_warnx("event=no_forwarding reason=\"%s\"", err);
	load_srs_secret(api, conf_get(c, "srs_secret_file"));
	{
		char fdir[PATH_MAX];

		snprintf(fdir, sizeof(fdir), "%s/forwarded", api->spool_dir);
		if (mkdir(fdir, 0700) != 0 && errno != EEXIST)
			fatalx("%s: %s", fdir, strerror(errno));
	}
}

int
main(int argc, char **argv)
{
	struct api api;
	int check_only, sig;
	char err[512];
	sigset_t set;

	/* One malloc arena per connection thread would let 32 concurrent
	 * 1 MB requests hold ~50 MB more than they need (make bench). */
	mallopt(M_ARENA_MAX, 2);
	memset(&api, 0, sizeof(api));
	api.conf = conf_from_args(argc, argv, "edgemail-api", &check_only);
	load_settings(&api);
	if (check_only) {
		printf("configuration ok\n");
		return 0;
	}

	/* Signals are taken synchronously by this thread; every other
	 * thread inherits the blocked mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	/* After the signal mask: the scanner starts a thread. */
	if (checks_init(&api, err, sizeof(err)) != 0)
		fatalx("checks: %s", err);
	if (queue_start(&api) != 0)
		fatalx("cannot start the queue runner");
	http_start(&api);
	log_info("event=started pid=%d max_message_size=%llu keys=%zu",
	    (int)getpid(), api.max_message_size, keyring_count(api.keys));
	while (sigwait(&set, &sig) != 0)
		;
	log_info("event=stopping signal=%d", sig);
	http_stop();
	queue_stop();
	spool_close(&api.spool);
	spool_close(&api.outbound);
	idem_close(&api.idem);
	redis_close(&api.redis);
	checks_free(&api);
	lmtp_pool_free(&api.lmtp);
	directory_free(&api.dir);
	replay_free(&api.replay);
	keyring_free(&api.keys);
	conf_free(&api.conf);
	return 0;
}
