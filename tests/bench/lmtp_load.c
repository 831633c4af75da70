/*
 * lmtp_load.c - raw LMTP load: each connection runs transactions back to
 * back through the project's own LMTP client (lmtp/lmtp.h), the same code
 * the API delivers with, so the difference to the HTTP mode is the
 * bridge alone.
 *
 * Every message starts with an X-Edgemail-Delivery-Id field of its own,
 * as the API's do: the global Sieve script (deploy/sieve/junk.sieve)
 * keeps one copy per mailbox and id, so with 20 recipients in 5 mailboxes
 * Dovecot stores 5 copies and discards 15 duplicates in both modes.
 * Without it the raw mode would store 20 copies and measure more work
 * than the API ever asks for.
 *
 * A transaction counts when every recipient got a 2xx after DATA; its
 * latency is the whole lmtp_send() (MAIL, RCPT..., DATA, body, replies).
 * A broken connection is counted as an error and opened again.
 */
#include <inttypes.h>
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
	char id_field[128], why[400];
	double t0, t1;
	int i, ok;

	for (;;) {
		bench_turn_next(cx);
		if (bench_now() >= cx->t_end)
			break;
		if (c == NULL &&
		    (c = lmtp_connect(&o->lmtp, "edgemail-bench", LMTP_TIMEOUT_MS,
		    &r)) == NULL) {
			snprintf(why, sizeof(why), "connect: %d %s", r.code,
			    r.text);
			bench_record(cx, 0, 0, 0, why);
			break;
		}
		/* The delivery id goes as the prefix, the shared message
		 * as the body: nothing is copied. */
		memset(&lm, 0, sizeof(lm));
		lm.prefix = id_field;
		lm.prefix_len = (size_t)snprintf(id_field, sizeof(id_field),
		    "X-Edgemail-Delivery-Id: bench-%016" PRIx64 "-%" PRIu64
		    "\r\n", m->nonce, bench_next_seq());
		lm.fd = -1;
		lm.mem = m->data;
		lm.mem_len = m->size;
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
	bench_turn_leave(cx);
	lmtp_close(&c);
	return NULL;
}
