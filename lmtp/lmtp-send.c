/*
 * lmtp-send.c - deliver one message file over LMTP, from the command line.
 *
 *   lmtp-send [-s SERVER] [-f MAIL_FROM] [-t timeout_ms] [-v] FILE RCPT...
 *
 * FILE ("-" for standard input) is copied to an unlinked temporary file
 * with its line ends normalised to CRLF, then delivered in one LMTP
 * transaction.  One line per recipient on standard output:
 *
 *   RCPT CLASS CODE ENHANCED TEXT      (ENHANCED is "-" when there is none)
 *
 * Exit status: 0 all delivered, 75 (EX_TEMPFAIL) any temporary failure,
 * 1 any permanent failure and none temporary, 2 usage or local error.
 * A tool for tests and operators, not a mail submission program.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/crlf.h"
#include "lib/io.h"
#include "lib/log.h"
#include "lib/reply.h"
#include "lmtp/lmtp.h"

#define EX_TEMPFAIL	75
#define DEFAULT_SERVER	"unix:run/dovecot/lmtp"
#define DEFAULT_TIMEOUT	30000

static void
usage(void)
{
	fprintf(stderr, "usage: lmtp-send [-s SERVER] [-f MAIL_FROM] "
	    "[-t timeout_ms] [-v] FILE RCPT...\n");
	exit(2);
}


/*
 * Copy in to an unlinked temporary file with CRLF line ends.  Returns the
 * descriptor; *len_r and *eightbit_r describe the result.
 */
static int
normalise(int in, off_t *len_r, int *eightbit_r)
{
	struct crlf_state st;
	char		 ibuf[65536], obuf[2 * sizeof(ibuf) + 2];
	char		 path[] = "/tmp/lmtp-send.XXXXXX";
	const char	*tmpdir;
	char		 tpath[4096];
	ssize_t		 n;
	size_t		 o, i;
	int		 fd;

	tmpdir = getenv("TMPDIR");
	if (tmpdir != NULL && *tmpdir != '\0' &&
	    snprintf(tpath, sizeof(tpath), "%s/lmtp-send.XXXXXX", tmpdir) <
	    (int)sizeof(tpath))
		fd = mkstemp(tpath);
	else {
		fd = mkstemp(path);
		str_copy(tpath, sizeof(tpath), path);
	}
	if (fd == -1) {
		fprintf(stderr, "lmtp-send: mkstemp: %s\n", strerror(errno));
		return -1;
	}
	unlink(tpath);
	crlf_init(&st);
	*len_r = 0;
	*eightbit_r = 0;
	for (;;) {
		n = read(in, ibuf, sizeof(ibuf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "lmtp-send: read: %s\n",
			    strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			o = crlf_finish(&st, obuf);
		else
			o = crlf_convert(&st, ibuf, (size_t)n, obuf);
		for (i = 0; i < (size_t)n && !*eightbit_r; i++)
			if ((unsigned char)ibuf[i] >= 0x80)
				*eightbit_r = 1;
		if (io_write_all(fd, obuf, o) == -1) {
			fprintf(stderr, "lmtp-send: write: %s\n",
			    strerror(errno));
			close(fd);
			return -1;
		}
		*len_r += (off_t)o;
		if (n == 0)
			break;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	struct lmtp_server	 srv;
	struct lmtp_msg		 msg;
	struct reply		*rr;
	const char		*server = NULL, *from = "", *file;
	const char *const	*rcpts;
	char			 host[256];
	long long		 t = DEFAULT_TIMEOUT;
	size_t			 nrcpt, i;
	int			 ch, in, fd, eightbit, anytemp = 0, anyperm = 0;
	off_t			 len;

	log_init(argv[0], LOG_LVL_WARN);
	while ((ch = getopt(argc, argv, "s:f:t:v")) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 't':
			if (str_to_ll(optarg, 1, 3600000, &t) == -1)
				usage();
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage();
	if (server == NULL && (server = getenv("EDGEMAIL_LMTP")) == NULL)
		server = DEFAULT_SERVER;
	if (lmtp_server_parse(server, &srv) == -1) {
		fprintf(stderr, "lmtp-send: bad server: %s\n", server);
		return 2;
	}
	file = argv[0];
	rcpts = (const char *const *)argv + 1;
	nrcpt = (size_t)argc - 1;

	if (strcmp(file, "-") == 0)
		in = STDIN_FILENO;
	else if ((in = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "lmtp-send: %s: %s\n", file, strerror(errno));
		return 2;
	}
	fd = normalise(in, &len, &eightbit);
	if (in != STDIN_FILENO)
		close(in);
	if (fd == -1)
		return 2;

	memset(&msg, 0, sizeof(msg));
	msg.fd = fd;
	msg.off = 0;
	msg.len = len;
	msg.eightbit = eightbit;
	if (gethostname(host, sizeof(host)) == -1)
		str_copy(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if ((rr = calloc(nrcpt, sizeof(*rr))) == NULL) {
		fprintf(stderr, "lmtp-send: out of memory\n");
		return 2;
	}
	(void)lmtp_deliver(&srv, host, (int)t, from, rcpts, nrcpt, &msg, rr);
	close(fd);

	for (i = 0; i < nrcpt; i++) {
		printf("%s %s %d %s %s\n", rcpts[i],
		    reply_class_name(rr[i].cls), rr[i].code,
		    rr[i].enhanced[0] != '\0' ? rr[i].enhanced : "-",
		    rr[i].text);
		if (rr[i].cls == REPLY_TEMP)
			anytemp = 1;
		else if (rr[i].cls == REPLY_PERM)
			anyperm = 1;
	}
	free(rr);
	if (fflush(stdout) == EOF)
		return 2;
	return anytemp ? EX_TEMPFAIL : anyperm ? 1 : 0;
}
