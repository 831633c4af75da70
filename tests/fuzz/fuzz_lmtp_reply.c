/*
 * fuzz_lmtp_reply.c - libFuzzer target: arbitrary bytes from the "server"
 * through a whole LMTP client transaction (greeting, LHLO, pipelined or
 * not, DATA, per-recipient replies).
 *
 * A thread on a unix socket writes the input as the server's side of the
 * conversation and closes; the client must end with a consistent outcome
 * for every recipient (code 200-599, class matching the code) and never
 * read or write out of bounds (ASan/UBSan do the rest).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/reply.h"
#include "lmtp/lmtp.h"

struct feed {
	int		 lfd;
	const uint8_t	*data;
	size_t		 size;
};

static char		 path[108];
static int		 lfd = -1;

static void *
serve(void *arg)
{
	struct feed	*f = arg;
	struct pollfd	 pfd;
	char		 sink[65536];
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = accept(f->lfd, NULL, NULL)) == -1)
		return NULL;
	/* Write the input while draining what the client sends, so that
	 * neither side can block the other. */
	while (off < f->size) {
		n = send(fd, f->data + off, f->size - off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			off += (size_t)n;
		else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			;
		else
			break;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) > 0 &&
		    recv(fd, sink, sizeof(sink), MSG_DONTWAIT) == 0)
			break;
	}
	shutdown(fd, SHUT_WR);
	/* Let the client finish writing, then close. */
	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 200) <= 0 ||
		    recv(fd, sink, sizeof(sink), 0) <= 0)
			break;
	}
	close(fd);
	return NULL;
}

static int
setup(void)
{
	struct sockaddr_un	 sun;

	snprintf(path, sizeof(path), "/tmp/fuzz_lmtp.%ld.sock", (long)getpid());
	unlink(path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(lfd, 4) == -1)
		abort();
	log_init("fuzz_lmtp_reply", LOG_LVL_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const rcpts[] = { "a@example.test",
	    "b@example.test", "c@example.test" };
	struct lmtp_server	 srv;
	struct lmtp_msg		 m;
	struct reply		 rr[3];
	struct feed		 f;
	pthread_t		 th;
	size_t			 i;

	if (lfd == -1)
		setup();
	memset(&srv, 0, sizeof(srv));
	srv.is_unix = 1;
	snprintf(srv.path, sizeof(srv.path), "%s", path);
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.mem = "Subject: fuzz\r\n\r\n.dot\r\nbody";
	m.mem_len = strlen(m.mem);
	m.eightbit = size > 0 && (data[0] & 1);

	f.lfd = lfd;
	f.data = data;
	f.size = size;
	if (pthread_create(&th, NULL, serve, &f) != 0)
		abort();
	(void)lmtp_deliver(&srv, "fuzz.example", 1000, "s@example.test",
	    rcpts, 3, &m, rr);
	pthread_join(th, NULL);

	for (i = 0; i < 3; i++) {
		if (rr[i].code < 200 || rr[i].code > 599 ||
		    rr[i].cls != reply_class_of(rr[i].code) ||
		    memchr(rr[i].text, '\0', sizeof(rr[i].text)) == NULL ||
		    memchr(rr[i].enhanced, '\0', sizeof(rr[i].enhanced)) ==
		    NULL)
			abort();
	}
	return 0;
}
