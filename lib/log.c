/*
 * log.c - key=value log lines on stderr, and start-up allocation helpers.
 *
 * Each line is assembled in a local buffer and written with a single
 * write(2), so lines from different threads never interleave.  Lines
 * longer than LOG_LINE_MAX are cut (and marked with "...").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define LOG_LINE_MAX	4096

static const char *log_prog = "edgemail";
static volatile enum log_level log_min = LOG_LVL_INFO;

static const char *const level_names[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_ERR] = "error",
};

void
log_init(const char *progname, enum log_level min)
{
	if (progname != NULL) {
		const char *slash = strrchr(progname, '/');

		log_prog = slash != NULL ? slash + 1 : progname;
	}
	log_min = min;
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

static void
log_write_all(const char *p, size_t n)
{
	ssize_t	 w;

	while (n > 0) {
		w = write(STDERR_FILENO, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	if ((unsigned)lvl > LOG_LVL_ERR)
		lvl = LOG_LVL_ERR;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line),
	    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ prog=%s level=%s ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, log_prog,
	    level_names[lvl]);
	if (r < 0)
		return;
	n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r < 0)
		r = 0;
	if ((size_t)r >= sizeof(line) - n) {
		/* Cut: end with a marker, leave room for the newline. */
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	} else
		n += (size_t)r;
	/* A caller's trailing newline must not produce an empty line. */
	while (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	log_write_all(line, n);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list	 ap;

	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

const char *
log_quote(const char *s, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t	 o = 0, need;
	const unsigned char *p;
	char	 esc[4];

	if (outsz == 0)
		return out;
	if (outsz < 3) {
		out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		need = 0;
		switch (*p) {
		case '"':
		case '\\':
			esc[need++] = '\\';
			esc[need++] = (char)*p;
			break;
		case '\n':
			esc[need++] = '\\';
			esc[need++] = 'n';
			break;
		case '\r':
			esc[need++] = '\\';
			esc[need++] = 'r';
			break;
		case '\t':
			esc[need++] = '\\';
			esc[need++] = 't';
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				esc[need++] = '\\';
				esc[need++] = 'x';
				esc[need++] = hex[*p >> 4];
				esc[need++] = hex[*p & 0x0f];
			} else
				esc[need++] = (char)*p;
			break;
		}
		/* Keep room for the closing quote and the NUL. */
		if (o + need + 2 > outsz)
			break;
		memcpy(out + o, esc, need);
		o += need;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static __attribute__((noreturn)) void
xoom(size_t n)
{
	char	 msg[96];
	int	 r;

	r = snprintf(msg, sizeof(msg),
	    "%s: out of memory allocating %zu bytes\n", log_prog, n);
	if (r > 0)
		log_write_all(msg, (size_t)r < sizeof(msg) ? (size_t)r :
		    sizeof(msg) - 1);
	abort();
}

void *
xmalloc(size_t n)
{
	void	*p;

	if ((p = malloc(n == 0 ? 1 : n)) == NULL)
		xoom(n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void	*p;

	if ((p = calloc(n == 0 ? 1 : n, sz == 0 ? 1 : sz)) == NULL)
		xoom(n * sz);
	return p;
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		xoom(strlen(s) + 1);
	return p;
}
