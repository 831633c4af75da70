/*
 * test_scan_remote.c - lib/scan_remote: a scanner in another process's
 * place.  A real libclamav engine (the EICAR signature of the dev stack)
 * is served by scan_serve() on a unix socket in a temporary directory,
 * as edgemail-scand does; scan_new_remote() asks it.  Checked: clean and
 * infected messages in memory, in a passed file descriptor (at an
 * offset), and in the prefix; many threads at once; clients that send
 * garbage, huge sizes or no promised descriptor are hung up on while the
 * others are served; a daemon that is
 * gone is a TEMP error and "not ready", never "clean"; a restarted daemon
 * is found again through the stale pooled connection.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/scan.h"
#include "tests/unit/unit.h"

static const char EICAR[] =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
static const char HDR[] = "From: a@example.test\r\nSubject: t\r\n\r\n";

static char dir[64], sock[128];
static struct scanner *engine;

/* The daemon's side: an accept loop on its own thread. */
struct server {
	int	 lfd;
	pthread_t thread;
	int	 conns[64];
	int	 nconns;
	pthread_mutex_t mu;
};

static struct server *serving;

/* As edgemail-scand: serve, then close (and forget) the connection. */
static void *
serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg, i;

	scan_serve(engine, fd);
	pthread_mutex_lock(&serving->mu);
	for (i = 0; i < serving->nconns; i++)
		if (serving->conns[i] == fd)
			serving->conns[i] = -1;
	close(fd);
	pthread_mutex_unlock(&serving->mu);
	return NULL;
}

static void *
accept_loop(void *arg)
{
	struct server *sv = arg;
	pthread_t t;
	int fd, i;

	while ((fd = accept(sv->lfd, NULL, NULL)) >= 0) {
		pthread_mutex_lock(&sv->mu);
		for (i = 0; i < sv->nconns && sv->conns[i] >= 0; i++)
			;
		if (i < 64) {
			sv->conns[i] = fd;
			if (i == sv->nconns)
				sv->nconns++;
		}
		pthread_mutex_unlock(&sv->mu);
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
	}
	return NULL;
}

static int
server_start(struct server *sv)
{
	struct sockaddr_un sun;

	memset(sv, 0, sizeof(*sv));
	pthread_mutex_init(&sv->mu, NULL);
	serving = sv;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	unlink(sock);
	if ((sv->lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(sv->lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(sv->lfd, 16) != 0)
		return -1;
	return pthread_create(&sv->thread, NULL, accept_loop, sv);
}

/* Like a daemon that dies: the socket and every connection go. */
static void
server_stop(struct server *sv)
{
	int i;

	shutdown(sv->lfd, SHUT_RDWR);
	close(sv->lfd);
	pthread_join(sv->thread, NULL);
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < sv->nconns; i++)
		if (sv->conns[i] >= 0)
			shutdown(sv->conns[i], SHUT_RDWR);
	pthread_mutex_unlock(&sv->mu);
	unlink(sock);
	/* The connection threads see the shutdown and return. */
	usleep(200 * 1000);
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < sv->nconns; i++)
		if (sv->conns[i] >= 0)
			close(sv->conns[i]);
	sv->nconns = 0;
	pthread_mutex_unlock(&sv->mu);
}

static enum scan_verdict
scan_mem(struct scanner *s, const char *prefix, const char *body,
    struct scan_result *r)
{
	struct scan_input in;

	memset(&in, 0, sizeof(in));
	in.prefix = prefix;
	in.prefix_len = strlen(prefix);
	in.fd = -1;
	in.mem = body;
	in.mem_len = strlen(body);
	scan_message(s, &in, r);
	return r->verdict;
}

struct par {
	struct scanner *s;
	int	 bad;
};

static void *
par_thread(void *arg)
{
	struct par *p = arg;
	struct scan_result r;
	char body[200];
	int i;

	for (i = 0; i < 20; i++) {
		snprintf(body, sizeof(body), "line %d\r\n%s\r\n", i,
		    i % 2 ? EICAR : "clean");
		if (scan_mem(p->s, HDR, body, &r) !=
		    (i % 2 ? SCAN_VIRUS : SCAN_CLEAN))
			p->bad++;
	}
	return NULL;
}

int
main(void)
{
	struct scan_limits lim;
	struct scan_result r;
	struct scan_input in;
	struct reply rep;
	struct server sv;
	struct scanner *s;
	struct par par[8];
	pthread_t t[8];
	char why[256], path[128], body[300];
	int fd, i, bad;
	FILE *f;

	log_init("test_scan_remote", LOG_LVL_ERR);
	snprintf(dir, sizeof(dir), "/tmp/test_scan_remote.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(sock, sizeof(sock), "%s/scand.sock", dir);
	snprintf(path, sizeof(path), "%s/dev.ndb", dir);
	if ((f = fopen(path, "w")) == NULL)
		return 1;
	fprintf(f, "Eicar-Test-Signature.Body:0:*:");
	for (i = 0; EICAR[i] != '\0'; i++)
		fprintf(f, "%02x", (unsigned char)EICAR[i]);
	fprintf(f, "\n");
	fclose(f);
	memset(&lim, 0, sizeof(lim));
	lim.max_filesize = lim.max_scansize = 100 * 1024 * 1024;
	lim.max_recursion = 17;
	lim.max_files = 10000;
	lim.threads = 2;
	snprintf(lim.tmp_dir, sizeof(lim.tmp_dir), "%s", dir);
	engine = scan_new(dir, &lim);
	UNIT_CHECK("engine_loaded", engine != NULL &&
	    scan_ready(engine, why, sizeof(why)), "%s", why);
	if (engine == NULL || server_start(&sv) != 0) {
		printf("FAIL setup: %s\n", strerror(errno));
		return 1;
	}

	s = scan_new_remote(sock);
	UNIT_CHECK("remote_made", s != NULL, "NULL");
	UNIT_CHECK("remote_ready", scan_ready(s, why, sizeof(why)) &&
	    scan_signatures(s) == scan_signatures(engine), "%s", why);
	UNIT_CHECK("clean_in_memory", scan_mem(s, HDR, "hello\r\n", &r) ==
	    SCAN_CLEAN, "verdict %d %s", r.verdict, r.name);
	snprintf(body, sizeof(body), "look:\r\n%s\r\n", EICAR);
	UNIT_CHECK("virus_in_memory", scan_mem(s, HDR, body, &r) == SCAN_VIRUS &&
	    strstr(r.name, "Eicar") != NULL, "verdict %d %s", r.verdict, r.name);
	snprintf(body, sizeof(body), "X-Note: %s\r\n\r\n", EICAR);
	UNIT_CHECK("virus_in_prefix", scan_mem(s, body, "hello\r\n", &r) ==
	    SCAN_VIRUS, "verdict %d %s", r.verdict, r.name);
	memset(path, 'a', sizeof(path) - 1);	/* over sun_path's 108 */
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	UNIT_CHECK("too_long_path_refused", scan_new_remote(path) == NULL,
	    "made");

	/* A file passed by descriptor, the message at an offset. */
	snprintf(path, sizeof(path), "%s/spool", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	snprintf(body, sizeof(body), "JUNK%s\r\n%s\r\n", HDR, EICAR);
	if (fd < 0 || write(fd, body, strlen(body)) != (ssize_t)strlen(body))
		printf("FAIL setup: spool file\n");
	memset(&in, 0, sizeof(in));
	in.prefix = "";
	in.fd = fd;
	in.off = 4;
	in.len = (off_t)strlen(body) - 4;
	scan_message(s, &in, &r);
	UNIT_CHECK("virus_in_passed_fd", r.verdict == SCAN_VIRUS,
	    "verdict %d %s", r.verdict, r.name);
	in.len = (off_t)strlen(HDR);	/* the header only: clean */
	scan_message(s, &in, &r);
	UNIT_CHECK("fd_range_respected", r.verdict == SCAN_CLEAN,
	    "verdict %d %s", r.verdict, r.name);
	close(fd);

	for (i = 0; i < 8; i++) {
		par[i].s = s;
		par[i].bad = 0;
		pthread_create(&t[i], NULL, par_thread, &par[i]);
	}
	for (bad = 0, i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		bad += par[i].bad;
	}
	UNIT_CHECK("eight_threads_at_once", bad == 0, "%d wrong verdicts", bad);

	/* Hostile or broken clients: the daemon hangs up on them and goes
	 * on serving the others. */
	{
		static const struct {
			const char *name;
			uint32_t magic, op;
			uint64_t prefix_len, mem_len;
			uint32_t has_fd;
		} hostile[] = {
			{ "hangs_up_on_bad_magic", 0xdeadbeef, 1, 0, 0, 0 },
			{ "hangs_up_on_unknown_op", 0x31435345, 9, 0, 0, 0 },
			{ "hangs_up_on_huge_prefix", 0x31435345, 1,
			    (uint64_t)1 << 40, 0, 0 },
			{ "hangs_up_on_huge_body", 0x31435345, 1, 0,
			    (uint64_t)1 << 40, 0 },
			{ "hangs_up_on_fd_promised_not_sent", 0x31435345, 1,
			    0, 0, 1 },
		};
		struct sockaddr_un sun;
		uint32_t req[12];
		char junk[64];
		size_t k;
		int c;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
		for (k = 0; k < sizeof(hostile) / sizeof(hostile[0]); k++) {
			memset(req, 0, sizeof(req));
			req[0] = hostile[k].magic;
			req[1] = hostile[k].op;
			memcpy(&req[2], &hostile[k].prefix_len, 8);
			memcpy(&req[4], &hostile[k].mem_len, 8);
			req[10] = hostile[k].has_fd;
			c = socket(AF_UNIX, SOCK_STREAM, 0);
			if (c < 0 || connect(c, (struct sockaddr *)&sun,
			    sizeof(sun)) != 0 ||
			    write(c, req, sizeof(req)) != (ssize_t)sizeof(req)) {
				printf("FAIL %s: cannot send\n", hostile[k].name);
				if (c >= 0)
					close(c);
				continue;
			}
			UNIT_CHECK(hostile[k].name, read(c, junk, sizeof(junk)) == 0,
			    "the connection stayed open or answered");
			close(c);
		}
		UNIT_CHECK("serves_on_after_bad_clients",
		    scan_mem(s, HDR, "hello\r\n", &r) == SCAN_CLEAN,
		    "verdict %d %s", r.verdict, r.name);
	}

	/* The daemon dies: TEMP, not ready; it comes back: found again. */
	server_stop(&sv);
	UNIT_CHECK("daemon_down_is_error", scan_mem(s, HDR, "hello\r\n", &r) ==
	    SCAN_ERROR && strstr(r.name, "edgemail-scand") != NULL,
	    "verdict %d %s", r.verdict, r.name);
	UNIT_CHECK("daemon_down_not_ready", !scan_ready(s, why, sizeof(why)),
	    "ready");
	scan_reply(&r, &rep);
	UNIT_CHECK("daemon_down_is_temp", rep.cls == REPLY_TEMP &&
	    rep.code == 451, "class %d code %d", rep.cls, rep.code);
	if (server_start(&sv) != 0)
		printf("FAIL setup: restart\n");
	UNIT_CHECK("daemon_back", scan_mem(s, HDR, body, &r) == SCAN_VIRUS &&
	    scan_ready(s, why, sizeof(why)), "verdict %d %s", r.verdict, r.name);
	server_stop(&sv);

	scan_free(&s);
	UNIT_CHECK("remote_free_nulls", s == NULL, "not NULL");
	scan_free(&engine);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		printf("FAIL cleanup\n");
	return unit_done();
}
