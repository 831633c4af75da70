/*
 * unit.h - the smallest test harness that does the job.
 *
 * Each check prints "PASS name" or "FAIL name: why" on its own line
 * (tests/run.sh counts them); unit_done() returns the exit status.
 * Table-driven tests call UNIT_CHECK once per row with the row's name.
 */
#ifndef EDGEMAIL_UNIT_H
#define EDGEMAIL_UNIT_H

#include <stdio.h>

static int unit_failed;

#define UNIT_CHECK(name, cond, ...) do {				\
	if (cond) {							\
		printf("PASS %s\n", (name));				\
	} else {							\
		printf("FAIL %s: ", (name));				\
		printf(__VA_ARGS__);					\
		printf(" (%s:%d)\n", __FILE__, __LINE__);		\
		unit_failed++;						\
	}								\
	fflush(stdout);							\
} while (0)

static inline int
unit_done(void)
{
	fflush(stdout);
	return unit_failed ? 1 : 0;
}

#endif
