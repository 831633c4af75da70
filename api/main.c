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
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/checks.h"
#include "auth/sig.h"
#include "lib/conf.h"
#include "lib/directory.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "lib/srs.h"
#include "lmtp/pool.h"




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
	conf_or_die(conf_get_bool(c, "lmtp_early_envelope",
	    &api->early_envelope, err, sizeof(err)), err);
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
	/* The SRS key is made on first start, like an SSH host key;
	 * changing it invalidates SRS addresses in flight. */
	if (srs_secret_load(conf_get(c, "srs_secret_file"), api->srs_secret,
	    sizeof(api->srs_secret), err, sizeof(err)) != 0)
		fatalx("srs_secret_file %s", err);
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
