/*
 * main.c - edgemail-scand: the virus scanner of a machine, shared by the
 * API and the relay (lib/scan_remote.c says why and how).
 *
 *   edgemail-scand [-c CONFIG] [-o key=value]... [-t]
 *
 * Loads the libclamav engine from `clamav_db_dir` with the `scan_*`
 * limits (lib/scan.c: fixed scan workers, a reload when the signatures
 * change on disk or on SIGHUP), listens on the unix socket `scan_socket`
 * (mode 0660: the API and the relay need the daemon's group) and serves
 * each client connection on a thread of its own until SIGINT/SIGTERM.
 * -t only checks the configuration.
 */
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf.h"
#include "lib/log.h"
#include "lib/scan.h"

#define CONN_STACK	(64 * 1024)	/* scans run on scan.c's workers */

static struct scanner *scanner;

static void *
conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;

	scan_serve(scanner, fd);
	close(fd);
	return NULL;
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		fatalx("scan_socket %s: path too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		fatalx("socket: %s", strerror(errno));
	/* A socket left by a daemon that died is ours to replace. */
	if (unlink(path) != 0 && errno != ENOENT)
		fatalx("scan_socket %s: %s", path, strerror(errno));
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		fatalx("scan_socket %s: %s", path, strerror(errno));
	umask(old);
	if (listen(fd, 64) != 0)
		fatalx("listen: %s", strerror(errno));
	return fd;
}

static void
accept_one(int lfd)
{
	pthread_attr_t attr;
	pthread_t t;
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, CONN_STACK);
	if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)fd) != 0) {
		log_warnx("event=connection_refused error=\"%s\"",
		    strerror(errno));
		close(fd);
	}
	pthread_attr_destroy(&attr);
}

static void *
reload_run(void *arg)
{
	(void)scan_reload(arg);
	return NULL;
}

/* A SIGHUP's reload on a thread of its own: compiling the signatures
 * takes tens of seconds with the official database, and new clients
 * must not wait in the listen backlog meanwhile (scans go on with the
 * old engine).  lib/scan.c runs one compile at a time. */
static void
reload_in_background(struct scanner *s)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, reload_run, s) != 0) {
		log_warnx("event=reload_thread_failed (reloading here)");
		(void)scan_reload(s);
	}
	pthread_attr_destroy(&attr);
}

int
main(int argc, char **argv)
{
	struct conf *c;
	struct scan_limits lim;
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	const char *path;
	char err[512], why[256];
	int check_only, lfd, sfd;
	sigset_t set;

	/* Threads per connection share two arenas (see edgemail-api). */
	mallopt(M_ARENA_MAX, 2);
	c = conf_from_args(argc, argv, "edgemail-scand", &check_only);
	conf_or_die(scan_limits_from_conf(c, &lim, err, sizeof(err)), err);
	path = conf_get(c, "scan_socket");
	if (*path == '\0')
		fatalx("config: scan_socket is empty (where should edgemail-scand "
		    "listen?)");
	if (check_only) {
		printf("configuration ok\n");
		return 0;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		fatalx("signalfd: %s", strerror(errno));

	if ((scanner = scan_new(conf_get(c, "clamav_db_dir"), &lim)) == NULL)
		fatalx("scan: out of memory");
	if (!scan_ready(scanner, why, sizeof(why)))
		log_warnx("event=scanner_not_ready why=\"%s\" effect=\"clients "
		    "get a temporary failure until it loads\"", why);
	lfd = listen_unix(path);
	log_info("event=started pid=%d socket=%s signatures=%u", (int)getpid(),
	    path, scan_signatures(scanner));

	pfd[0].fd = sfd;
	pfd[1].fd = lfd;
	pfd[0].events = pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatalx("poll: %s", strerror(errno));
		}
		if (pfd[0].revents & POLLIN) {
			if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
				continue;
			if (si.ssi_signo != SIGHUP)
				break;
			log_info("event=reload reason=SIGHUP");
			reload_in_background(scanner);
		}
		if (pfd[1].revents & POLLIN)
			accept_one(lfd);
	}
	log_info("event=stopping");
	close(lfd);
	(void)unlink(path);
	/* Connection threads may be in a scan: the engine goes with the
	 * process, and their clients see a lost connection (TEMP). */
	return 0;
}
