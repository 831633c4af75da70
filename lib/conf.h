/*
 * conf.h - edgemail.conf: postconf-style "key = value" lines, "#" comments.
 *
 * Every key that any program knows is declared once, with its default and
 * a one-line description, in the table in conf.c; that table is what
 * `edgemailctl config --defaults` prints.  An unknown key in the file is an
 * error (a typo must not silently fall back to a default).  A value may
 * refer to another key as $name (e.g. "$state_dir/spool").
 */
#ifndef EDGEMAIL_CONF_H
#define EDGEMAIL_CONF_H

#include <stddef.h>

struct conf_def {
	const char *name;
	const char *def;	/* default value, may use $other_key */
	const char *help;
};

/* NULL-terminated table of every key with its default. */
extern const struct conf_def conf_defs[];

struct conf;

struct conf *conf_new(void);
void	conf_free(struct conf **cp);
/* Read a file; on error fills err ("file:line: why") and returns -1. */
int	conf_load(struct conf *c, const char *path, char *err, size_t errsz);
/* Parse one "key = value" line (also used for -o overrides). */
int	conf_set_line(struct conf *c, const char *line, char *err, size_t errsz);
int	conf_set(struct conf *c, const char *name, const char *value);
/* Value with $references expanded; the default when unset; NULL for an
 * unknown key.  The pointer stays valid until the conf is freed. */
const char *conf_get(struct conf *c, const char *name);
/* Typed getters: -1 and a message in err when the value does not parse. */
int	conf_get_bool(struct conf *c, const char *name, int *val_r,
	    char *err, size_t errsz);		/* yes/no/true/false/1/0 */
int	conf_get_ll(struct conf *c, const char *name, long long min,
	    long long max, long long *val_r, char *err, size_t errsz);
int	conf_get_size(struct conf *c, const char *name, unsigned long long *val_r,
	    char *err, size_t errsz);		/* 1024, 25M, 1G, 64k */
int	conf_get_duration(struct conf *c, const char *name, long long *secs_r,
	    char *err, size_t errsz);		/* 30, 30s, 5m, 2h, 5d */
/*
 * The start-up of every daemon: "PROG [-c CONFIG] [-o key=value]... [-t]".
 * Reads CONFIG (default /var/lib/edgemail/edgemail.conf; a missing
 * default file means all defaults), applies the -o overrides, sets the
 * log level from log_level.  Exits 2 with the usage line on a bad command
 * line and 1 with the reason on a bad configuration.  *check_only_r: -t.
 */
struct conf *conf_from_args(int argc, char **argv, const char *prog,
	    int *check_only_r);
/* For start-up code: exit 1 with "config: err" when rc != 0. */
void	conf_or_die(int rc, const char *err);

/* Whether the key was set explicitly (file or override). */
int	conf_is_set(struct conf *c, const char *name);

#endif
