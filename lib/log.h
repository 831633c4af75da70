/*
 * log.h - one line per event, key=value fields, to stderr.
 *
 *   ts=2026-12-03T10:00:00.123Z prog=edgemail-api level=info id=Q1a2b event=delivered rcpt=...
 *
 * Callers write the fields themselves ("event=delivered rcpt=%s"); values
 * that may contain spaces or quotes go through log_quote().  Never log a
 * password, a secret or a message body.
 */
#ifndef EDGEMAIL_LOG_H
#define EDGEMAIL_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

void	log_init(const char *progname, enum log_level min);
void	log_set_level(enum log_level min);
void	log_msg(enum log_level lvl, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
#define log_debug(...)	log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warnx(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_errx(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
/* Log at error level and exit(1); for start-up failures only. */
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
/* Quote a value for a key=value field: "..." with \" \\ and control
 * characters escaped, cut to outsz.  Returns out. */
const char *log_quote(const char *s, char *out, size_t outsz);

/* Start-up allocation helpers: abort with a message on out-of-memory. */
void	*xmalloc(size_t n);
void	*xcalloc(size_t n, size_t sz);
char	*xstrdup(const char *s);

#endif
