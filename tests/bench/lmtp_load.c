/*
 * lmtp_load.c - raw LMTP load: each connection runs transactions back to
 * back through the project's own LMTP client (lmtp/lmtp.h), the same code
 * the API delivers with, so the difference to the HTTP mode is the
 * bridge alone.
 *
 * A transaction counts when every recipient got a 2xx after DATA; its
 * latency is the whole lmtp_send() (MAIL, RCPT..., DATA, body, replies).
 * A broken connection is counted as an error and opened again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/reply.h"
#include "lmtp/lmtp.h"
#include "tests/bench/bench.h"

#define LMTP_TIMEOUT_MS	120000

int
lmtp_load_init(const struct bench_opts *o, void **shared_r)
{
	(void)o;
	*shared_r = NULL;
	return 0;
}

void *
lmtp_load_conn(void *arg)
{
	struct bench_conn_ctx *cx = arg;
	const struct bench_opts *o = cx->o;
	const struct bench_msg *m = cx->msg;
	struct lmtp_conn *c = NULL;
	struct reply r, replies[BENCH_RCPTS_MAX];
	struct lmtp_msg lm;
	char tail[BENCH_TAIL_LEN], why[400];
	double t0, t1;
	int i, ok;

	while (bench_now() < cx->t_end) {
		if (c == NULL &&
		    (c = lmtp_connect(&o->lmtp, "edgemail-bench", LMTP_TIMEOUT_MS,
		    &r)) == NULL) {
			snprintf(why, sizeof(why), "connect: %d %s", r.code,
			    r.text);
			bench_record(cx, 0, 0, 0, why);
			return NULL;
		}
		/* The fixed part goes as the prefix, the unique tail as the
		 * body: nothing is copied. */
		bench_msg_tail(m, bench_next_seq(), tail);
		memset(&lm, 0, sizeof(lm));
		lm.prefix = m->data;
		lm.prefix_len = m->tail_off;
		lm.fd = -1;
		lm.mem = tail;
		lm.mem_len = BENCH_TAIL_LEN;
		t0 = bench_now();
		if (lmtp_send(c, o->from, m->rcptp, (size_t)m->nrcpt, &lm,
		    replies) != 0)
			lmtp_close(&c);
		t1 = bench_now();
		ok = 1;
		why[0] = '\0';
		for (i = 0; i < m->nrcpt; i++)
			if (replies[i].cls != REPLY_OK) {
				ok = 0;
				snprintf(why, sizeof(why), "rcpt %s: %d %s %s",
				    m->rcpt[i], replies[i].code,
				    replies[i].enhanced, replies[i].text);
				break;
			}
		bench_record(cx, t0, t1, ok, why);
	}
	lmtp_close(&c);
	return NULL;
}
