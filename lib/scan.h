/*
 * scan.h - virus scanning in process with libclamav, for any program that
 * holds a message (the API, the submission relay).
 *
 * The engine is loaded once from a signature directory, compiled, and
 * warmed with a tiny scan (the first scan after a compile is slow); one
 * engine serves every thread.  A background thread looks at the
 * directory every `reload_interval` seconds: when the signatures changed
 * (freshclam) or could not be loaded before, a new engine is built and
 * swapped in, while scans in flight finish on the old one.
 *
 * A message is scanned whole, as one mail file (CL_SCAN_PARSE_MAIL and
 * every other parser), so attachments are decoded and archives opened.
 * Heuristics on: encrypted archives and exceeded limits (zip bombs) are
 * refusals, like viruses.  A scanner without a usable database is "not
 * ready": scans answer SCAN_ERROR (a TEMP reply), never "clean".
 */
#ifndef EDGEMAIL_SCAN_H
#define EDGEMAIL_SCAN_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/reply.h"

struct scanner;

struct scan_limits {
	unsigned long long max_filesize;	/* one file inside the message */
	unsigned long long max_scansize;	/* everything read for a scan */
	long long max_recursion;		/* archive nesting */
	long long max_files;			/* files in archives */
	long long reload_interval;		/* seconds, 0: never reload */
	long long threads;			/* scans at once (0: one per CPU) */
	char	 tmp_dir[256];			/* libclamav's temporary files
						 * ("": $TMPDIR or /tmp) */
};

/* What to scan: prefix bytes (header fields added on top), then the
 * message: len bytes of fd from off, or mem/mem_len when fd < 0. */
struct scan_input {
	const char *prefix;
	size_t	 prefix_len;
	int	 fd;
	off_t	 off;
	off_t	 len;
	const char *mem;
	size_t	 mem_len;
};

enum scan_verdict {
	SCAN_CLEAN = 0,
	SCAN_VIRUS,		/* a signature matched */
	SCAN_ENCRYPTED,		/* an encrypted archive: cannot be scanned */
	SCAN_LIMITS,		/* scan limits exceeded: an archive bomb */
	SCAN_ERROR,		/* no engine, an I/O error: try again later */
};

struct scan_result {
	enum scan_verdict verdict;
	char	 name[128];	/* signature name, or why for SCAN_ERROR */
	double	 ms;
};

/*
 * Load the signatures in db_dir.  Returns NULL only when out of memory;
 * a database that does not load gives a scanner that is not ready (see
 * scan_ready), retried by the reload thread.
 */
struct conf;
/* The scan_* keys of edgemail.conf (one place for the API and the relay);
 * -1 with a message in err. */
int	scan_limits_from_conf(struct conf *c, struct scan_limits *lim,
	    char *err, size_t errsz);
struct scanner *scan_new(const char *db_dir, const struct scan_limits *lim);
void	scan_free(struct scanner **sp);
/* A scanner that asks edgemail-scand on the unix socket socket_path
 * (`scan_socket`) instead of loading libclamav here: one engine for the
 * API and the relay (scan_remote.c says why).  NULL when out of memory
 * or the path is too long; a daemon that is down is "not ready". */
struct scanner *scan_new_remote(const char *socket_path);
/* The scanner edgemail.conf asks for: edgemail-scand's when scan_socket
 * is set, else libclamav here with clamav_db_dir and the scan_* limits.
 * NULL with err on a bad key or out of memory. */
struct scanner *scan_from_conf(struct conf *c, char *err, size_t errsz);
/* edgemail-scand: answer the requests of one client connection on fd
 * with s until the client hangs up (the caller closes fd). */
void	scan_serve(struct scanner *s, int fd);
/* 1 when an engine is loaded; else 0 with why. */
int	scan_ready(struct scanner *s, char *why, size_t whysz);
/* Signatures in the current engine (0 when not ready). */
unsigned scan_signatures(struct scanner *s);
/* Load the directory again now, whatever changed; 0 or -1 (the old
 * engine stays in use on failure). */
int	scan_reload(struct scanner *s);

/* Scan one message; fills r.  Thread-safe. */
void	scan_message(struct scanner *s, const struct scan_input *in,
	    struct scan_result *r);
/* The refusal or deferral for a verdict (OK for SCAN_CLEAN):
 * 554 5.7.1 virus found: NAME / encrypted archive refused / ...,
 * 451 4.3.0 for SCAN_ERROR. */
void	scan_reply(const struct scan_result *r, struct reply *rep);
const char *scan_verdict_name(enum scan_verdict v);	/* "clean" ... */

#endif
