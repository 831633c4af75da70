/*
 * scan_remote.h - the client side of edgemail-scand, used by scan.c when
 * `scan_socket` is set (see scan.h).  Private to lib/scan*.c.
 */
#ifndef EDGEMAIL_SCAN_REMOTE_H
#define EDGEMAIL_SCAN_REMOTE_H

#include <stddef.h>

struct scan_input;
struct scan_result;
struct scan_remote;

/* NULL when out of memory or the path does not fit a unix socket. */
struct scan_remote *scan_remote_new(const char *socket_path);
void	scan_remote_free(struct scan_remote **rp);
/* Fills r; a daemon that cannot be reached is SCAN_ERROR (TEMP). */
void	scan_remote_message(struct scan_remote *rm,
	    const struct scan_input *in, struct scan_result *r);
/* 1 when the daemon answers and has an engine (sigs set), else 0 and
 * why. */
int	scan_remote_ready(struct scan_remote *rm, char *why, size_t whysz,
	    unsigned *sigs);

#endif
