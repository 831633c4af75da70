/*
 * bench.c - edgemail-bench: the command line, the test message, the
 * timed run shared by the load modes, and `report`, which merges the
 * samples of several runs into one result.
 *
 *   edgemail-bench lmtp --server unix:PATH|HOST:PORT [load options]
 *   edgemail-bench http --url https://127.0.0.1:PORT --ca FILE
 *                       --keys-file FILE [--key-id ID] [load options]
 *   edgemail-bench submit --server HOST:PORT --ca FILE --keys-file PWFILE
 *                         --from USER [load options]
 *   edgemail-bench pair --server unix:PATH --url https://127.0.0.1:PORT
 *                       --ca FILE --keys-file FILE [--label-b L]
 *                       [--samples-b FILE] [load options]
 *   edgemail-bench sink --listen PATH|HOST:PORT
 *   edgemail-bench smarthost --listen HOST:PORT --cert PEM --key PEM
 *                            [--user USER --password PASS]
 *   edgemail-bench report [--label L] SAMPLES-FILE...
 *
 * Load options: --size 10k|1m|BYTES  --rcpts 20  --mailboxes 5
 *   --user bench  --domain example.test  --from bench@sender.test
 *   --concurrency 8  --duration 10  --warmup 2  --label TEXT
 *   --samples FILE (append the latencies, for `report`)
 *   --message FILE (send this message, the tail appended, instead of the
 *   built-in one)  --status 200|202 (http: the answer that counts)
 *
 * A load run opens `concurrency` connections, one thread each, and every
 * thread sends messages back to back until the run ends.  Messages that
 * finish inside the measured span (after the warm-up) count: msg/s is
 * their number over the span, latencies are theirs.  It prints one line:
 *
 *   result label=L mode=http size=10240 rcpts=20 conc=8 secs=8.00
 *       msgs=312 errors=0 msgps=39.0 mean_ms=204.1 p50_ms=203.0
 *       p99_ms=230.9 max_ms=240.2
 *
 * The message is the same for both modes: a plain-text message of exactly
 * --size bytes whose last body line is a tail "bench-seq NONCE SEQ" unique
 * to each message.  The tail is what makes every request signature
 * different (the API refuses a signature it has seen, DESIGN section 4)
 * without hashing the whole body again: the SHA-256 state after the fixed
 * part is computed once, and each request only copies it and adds the
 * 49-byte tail.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "tests/bench/bench.h"

#define BENCH_MIN_SIZE	1024
#define BENCH_MAX_SIZE	(64 * 1024 * 1024)
#define LINE_CHARS	76

static atomic_uint_fast64_t seq_counter;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: edgemail-bench lmtp --server unix:PATH|HOST:PORT [load options]\n"
	    "       edgemail-bench http --url https://HOST:PORT --ca FILE "
	    "--keys-file FILE [--key-id ID] [load options]\n"
	    "       edgemail-bench submit --server HOST:PORT --ca FILE "
	    "--keys-file PASSWORD-FILE --from USER [load options]\n"
	    "       edgemail-bench pair --server unix:PATH|HOST:PORT --url "
	    "https://HOST:PORT --ca FILE\n"
	    "                      --keys-file FILE [--label-b L] "
	    "[--samples-b FILE] [load options]\n"
	    "       edgemail-bench sink --listen PATH|HOST:PORT\n"
	    "       edgemail-bench smarthost --listen HOST:PORT --cert PEM "
	    "--key PEM [--user USER --password PASS]\n"
	    "       edgemail-bench report [--label L] SAMPLES-FILE...\n"
	    "load options: --size 10k|1m|BYTES --rcpts N --mailboxes N "
	    "--user PREFIX\n"
	    "       --domain D --from ADDR --concurrency N --duration SECS "
	    "--warmup SECS --label TEXT\n"
	    "       --samples FILE --message FILE --status 200|202\n");
	exit(2);
}

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t
bench_next_seq(void)
{
	return atomic_fetch_add(&seq_counter, 1);
}

/* ---- options ----------------------------------------------------------- */

static int
parse_size(const char *s, size_t *r)
{
	char *end;
	unsigned long long v;
	unsigned long long mult = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mult = 1024 * 1024, end++;
	if (*end != '\0' || v > BENCH_MAX_SIZE / mult)
		return -1;
	*r = (size_t)(v * mult);
	return 0;
}

static int
parse_int(const char *s, int min, int max, int *r)
{
	long long v;

	if (str_to_ll(s, min, max, &v) != 0)
		return -1;
	*r = (int)v;
	return 0;
}

static int
parse_secs(const char *s, double *r)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400)
		return -1;
	*r = v;
	return 0;
}

/* "https://HOST:PORT" (a trailing "/" allowed) into o->host, o->port. */
static int
parse_url(const char *url, struct bench_opts *o)
{
	const char *h, *colon, *end;
	size_t hlen;
	long long port;
	char pbuf[16];

	if (strncmp(url, "https://", 8) != 0)
		return -1;
	h = url + 8;
	end = h + strcspn(h, "/");
	if (*end == '/' && end[1] != '\0')
		return -1;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (rb == NULL || rb[1] != ':')
			return -1;
		colon = rb + 1;
		h++;
		hlen = (size_t)(rb - h);
	} else {
		if ((colon = memchr(h, ':', (size_t)(end - h))) == NULL)
			return -1;
		hlen = (size_t)(colon - h);
	}
	if (hlen == 0 || hlen >= sizeof(o->host) ||
	    (size_t)(end - colon - 1) >= sizeof(pbuf))
		return -1;
	memcpy(pbuf, colon + 1, (size_t)(end - colon - 1));
	pbuf[end - colon - 1] = '\0';
	if (str_to_ll(pbuf, 1, 65535, &port) != 0)
		return -1;
	memcpy(o->host, h, hlen);
	o->host[hlen] = '\0';
	snprintf(o->port, sizeof(o->port), "%lld", port);
	return 0;
}

static void
parse_load_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 'S' },
		{ "url", required_argument, NULL, 'U' },
		{ "ca", required_argument, NULL, 'A' },
		{ "keys-file", required_argument, NULL, 'K' },
		{ "key-id", required_argument, NULL, 'I' },
		{ "size", required_argument, NULL, 's' },
		{ "rcpts", required_argument, NULL, 'r' },
		{ "mailboxes", required_argument, NULL, 'm' },
		{ "user", required_argument, NULL, 'u' },
		{ "domain", required_argument, NULL, 'd' },
		{ "from", required_argument, NULL, 'f' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "label", required_argument, NULL, 'l' },
		{ "samples", required_argument, NULL, 'o' },
		{ "label-b", required_argument, NULL, 'L' },
		{ "samples-b", required_argument, NULL, 'O' },
		{ "message", required_argument, NULL, 'M' },
		{ "status", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, have_server = 0, have_url = 0;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S':
			if (lmtp_server_parse(optarg, &o->lmtp) != 0)
				fatalx("bad --server '%s'", optarg);
			have_server = 1;
			break;
		case 'U':
			if (parse_url(optarg, o) != 0)
				fatalx("bad --url '%s' (want https://HOST:PORT)",
				    optarg);
			have_url = 1;
			break;
		case 'A':
			o->ca_file = optarg;
			break;
		case 'K':
			o->keys_file = optarg;
			break;
		case 'I':
			o->key_id = optarg;
			break;
		case 's':
			if (parse_size(optarg, &o->size) != 0 ||
			    o->size < BENCH_MIN_SIZE)
				fatalx("bad --size '%s' (at least 1k)", optarg);
			break;
		case 'r':
			if (parse_int(optarg, 1, BENCH_RCPTS_MAX, &o->nrcpt) != 0)
				fatalx("bad --rcpts '%s'", optarg);
			break;
		case 'm':
			if (parse_int(optarg, 1, BENCH_RCPTS_MAX, &o->nmailbox)
			    != 0)
				fatalx("bad --mailboxes '%s'", optarg);
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'd':
			o->domain = optarg;
			break;
		case 'f':
			o->from = optarg;
			break;
		case 'c':
			if (parse_int(optarg, 1, 1024, &o->conc) != 0)
				fatalx("bad --concurrency '%s'", optarg);
			break;
		case 't':
			if (parse_secs(optarg, &o->duration) != 0 ||
			    o->duration <= 0)
				fatalx("bad --duration '%s'", optarg);
			break;
		case 'w':
			if (parse_secs(optarg, &o->warmup) != 0)
				fatalx("bad --warmup '%s'", optarg);
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'o':
			o->samples = optarg;
			break;
		case 'L':
			o->label_b = optarg;
			break;
		case 'O':
			o->samples_b = optarg;
			break;
		case 'M':
			o->message_file = optarg;
			break;
		case 'T':
			if (strcmp(optarg, "200") == 0)
				o->http_status = 200;
			else if (strcmp(optarg, "202") == 0)
				o->http_status = 202;
			else
				fatalx("bad --status '%s' (200 or 202)", optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (strcmp(o->mode, "lmtp") == 0 && !have_server)
		fatalx("lmtp: --server is required");
	if (strcmp(o->mode, "pair") == 0) {
		/* Without --url both sides are LMTP: an A/A run, which
		 * shows how far two identical sides differ. */
		if (!have_server || (have_url && (o->ca_file == NULL ||
		    o->keys_file == NULL)))
			fatalx("pair: --server, and with --url --ca and "
			    "--keys-file, are required");
		if (o->conc != 1)
			fatalx("pair: one connection of each kind only "
			    "(--concurrency 1)");
		if (o->label_b == NULL)
			o->label_b = "http";
	}
	if (strcmp(o->mode, "submit") == 0) {
		/* The relay's STARTTLS listener, as host and port. */
		if (!have_server || o->lmtp.is_unix || o->ca_file == NULL ||
		    o->keys_file == NULL)
			fatalx("submit: --server HOST:PORT, --ca and --keys-file "
			    "are required");
		snprintf(o->host, sizeof(o->host), "%s", o->lmtp.host);
		snprintf(o->port, sizeof(o->port), "%s", o->lmtp.port);
	}
	if (strcmp(o->mode, "http") == 0 && (!have_url || o->ca_file == NULL ||
	    o->keys_file == NULL))
		fatalx("http: --url, --ca and --keys-file are required");
	if (o->nmailbox > o->nrcpt)
		o->nmailbox = o->nrcpt;
}

/* ---- the message ------------------------------------------------------- */

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

void
bench_msg_tail(const struct bench_msg *m, uint64_t seq, char *tail)
{
	char t[BENCH_TAIL_LEN + 1];

	/* Both forms are BENCH_TAIL_LEN bytes. */
	if (m->tail_is_field)
		snprintf(t, sizeof(t), "X-Bench: %016" PRIx64 "-%021" PRIu64
		    "\r\n", m->nonce, seq);
	else
		snprintf(t, sizeof(t), "bench-seq %016" PRIx64 " %020" PRIu64
		    "\r\n", m->nonce, seq);
	memcpy(tail, t, BENCH_TAIL_LEN);
}

static void msg_finish(struct bench_msg *m);

/*
 * --message FILE: a whole message (CRLF line ends, ending in CRLF) made
 * elsewhere, e.g. DKIM-signed; the tail is a header field put on top of
 * it ("X-Bench:", which no signature covers), so the body stays what was
 * signed, whole.
 */
static void
msg_load(const struct bench_opts *o, struct bench_msg *m)
{
	FILE *fp;
	struct buf f;
	char chunk[65536];
	size_t n;

	buf_init(&f, 0);
	if ((fp = fopen(o->message_file, "re")) == NULL)
		fatalx("%s: %s", o->message_file, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (buf_append(&f, chunk, n) != 0)
			fatalx("out of memory");
	if (ferror(fp))
		fatalx("%s: %s", o->message_file, strerror(errno));
	fclose(fp);
	if (f.len < 4 || memcmp(f.data + f.len - 2, "\r\n", 2) != 0 ||
	    memmem(f.data, f.len, "\r\n\r\n", 4) == NULL)
		fatalx("%s: not a message with CRLF line ends", o->message_file);
	m->tail_off = 0;
	m->tail_is_field = 1;
	m->size = BENCH_TAIL_LEN + f.len;
	m->data = xmalloc(m->size + 1);
	memcpy(m->data + BENCH_TAIL_LEN, f.data, f.len);
	buf_free(&f);
	msg_finish(m);
}

/*
 * Header section, then lines of LINE_CHARS base64-like characters (an
 * attachment's look, no line starting with a dot), then the tail; exactly
 * o->size bytes.
 */
static void
msg_build(const struct bench_opts *o, struct bench_msg *m)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct buf h;
	size_t pos, left, n, i;
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	char date[64];
	struct tm tm;
	time_t now = time(NULL);
	int r;

	memset(m, 0, sizeof(*m));
	if (getrandom(&m->nonce, sizeof(m->nonce), 0) != sizeof(m->nonce))
		m->nonce = (uint64_t)now ^ ((uint64_t)getpid() << 32);
	m->nrcpt = o->nrcpt;
	for (r = 0; r < o->nrcpt; r++) {
		int mb = r % o->nmailbox + 1, detail = r / o->nmailbox + 1;

		if (o->nrcpt > o->nmailbox)
			snprintf(m->rcpt[r], BENCH_ADDR_MAX, "%s%d+r%d@%s",
			    o->user, mb, detail, o->domain);
		else
			snprintf(m->rcpt[r], BENCH_ADDR_MAX, "%s%d@%s", o->user,
			    mb, o->domain);
		m->rcptp[r] = m->rcpt[r];
	}

	if (o->message_file != NULL) {
		msg_load(o, m);
		return;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_init(&h, 0);
	if (buf_printf(&h, "From: Bench Sender <%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: edgemail bench, %zu bytes\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <bench.%016" PRIx64 "@sender.test>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n", o->from, m->rcpt[0], o->size, date, m->nonce) != 0)
		fatalx("out of memory");
	if (h.len + BENCH_TAIL_LEN + 8 > o->size)
		fatalx("--size %zu is too small for the header section",
		    o->size);
	m->size = o->size;
	m->data = xmalloc(m->size + 1);
	memcpy(m->data, h.data, h.len);
	pos = h.len;
	buf_free(&h);
	m->tail_off = m->size - BENCH_TAIL_LEN;
	left = m->tail_off - pos;
	while (left > 0) {
		if (left <= LINE_CHARS + 2)
			n = left - 2;		/* the last line fits exactly */
		else if (left - (LINE_CHARS + 2) < 3)
			n = LINE_CHARS - 3;	/* leave room for a last line */
		else
			n = LINE_CHARS;
		for (i = 0; i < n; i++)
			m->data[pos + i] = b64[xorshift(&rng) & 63];
		pos += n;
		m->data[pos++] = '\r';
		m->data[pos++] = '\n';
		left -= n + 2;
	}
	msg_finish(m);
}

/* The tail, and the SHA-256 state of everything before it. */
static void
msg_finish(struct bench_msg *m)
{
	bench_msg_tail(m, 0, m->data + m->tail_off);
	m->data[m->size] = '\0';

	if ((m->prefix_sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(m->prefix_sha, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(m->prefix_sha, m->data, m->tail_off) != 1)
		fatalx("SHA-256 init failed");
}

/* ---- the timed run ----------------------------------------------------- */

void
bench_record(struct bench_conn_ctx *cx, double t0, double t1, int ok,
    const char *why)
{
	struct bench_stats *st = &cx->st;

	if (!ok) {
		if (st->errors++ == 0)
			snprintf(st->first_error, sizeof(st->first_error), "%s",
			    why ? why : "error");
		return;
	}
	if (t1 < cx->t_measure || t1 > cx->t_end)
		return;
	if (st->n == st->cap) {
		size_t ncap = st->cap ? st->cap * 2 : 1024;
		double *p = realloc(st->lat_ms, ncap * sizeof(*p));

		if (p == NULL)
			fatalx("out of memory");
		st->lat_ms = p;
		st->cap = ncap;
	}
	st->lat_ms[st->n++] = (t1 - t0) * 1000.0;
}

void
bench_turn_next(struct bench_conn_ctx *cx)
{
	struct bench_turn *t = cx->turn;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	/* a b b a a b b a ...: each side follows itself as often as the
	 * other, and goes first as often. */
	if (cx->holding && ++t->rounds % 2 == 1) {
		t->turn = !cx->side;
		pthread_cond_broadcast(&t->cond);
	}
	while (t->turn != cx->side && !t->left[!cx->side])
		pthread_cond_wait(&t->cond, &t->lock);
	cx->holding = 1;
	pthread_mutex_unlock(&t->lock);
}

void
bench_turn_leave(struct bench_conn_ctx *cx)
{
	struct bench_turn *t = cx->turn;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->left[cx->side] = 1;
	t->turn = !cx->side;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double
percentile(const double *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* Where the numbers of one run come from, for the result line. */
struct result_id {
	const char *label;
	const char *mode;
	size_t	 size;
	int	 nrcpt;
	int	 nmailbox;
	int	 conc;
};

/* Sort the latencies and print the result line; 0 when all went well. */
static int
print_result(const struct result_id *id, double secs, double *lat, size_t n,
    uint64_t errors)
{
	double sum = 0;
	size_t k;

	if (n > 0)
		qsort(lat, n, sizeof(*lat), cmp_double);
	for (k = 0; k < n; k++)
		sum += lat[k];
	printf("result label=%s mode=%s size=%zu rcpts=%d mailboxes=%d conc=%d "
	    "secs=%.2f msgs=%zu errors=%" PRIu64 " msgps=%.2f mean_ms=%.2f "
	    "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", id->label, id->mode,
	    id->size, id->nrcpt, id->nmailbox, id->conc, secs, n, errors,
	    secs > 0 ? (double)n / secs : 0.0, n ? sum / (double)n : 0.0,
	    percentile(lat, n, 50), percentile(lat, n, 99),
	    n ? lat[n - 1] : 0.0);
	fflush(stdout);
	return errors > 0 || n == 0 ? 1 : 0;
}

/*
 * The samples file: per run a line "# mode=M size=S rcpts=R mailboxes=B
 * conc=C secs=T errors=E", then one latency in ms per line.  `report`
 * merges several runs (the slices of one measurement) into one result.
 */
static void
write_samples(const struct bench_opts *o, const double *lat, size_t n,
    uint64_t errors)
{
	FILE *fp;
	size_t k;

	if ((fp = fopen(o->samples, "ae")) == NULL)
		fatalx("%s: %s", o->samples, strerror(errno));
	fprintf(fp, "# mode=%s size=%zu rcpts=%d mailboxes=%d conc=%d "
	    "secs=%.3f errors=%" PRIu64 "\n", o->mode, o->size, o->nrcpt,
	    o->nmailbox, o->conc, o->duration, errors);
	for (k = 0; k < n; k++)
		fprintf(fp, "%.3f\n", lat[k]);
	if (fclose(fp) != 0)
		fatalx("%s: %s", o->samples, strerror(errno));
}

/*
 * Merge the threads' latencies of one side, write its samples and print
 * its result line.  busy: a pair's side had the connection only for its
 * own messages, so its msg/s is over the time they took (1 / mean), not
 * over the span.
 */
static int
finish_side(const struct bench_opts *o, struct bench_conn_ctx *cx, int n_cx,
    int busy)
{
	struct bench_opts so = *o;
	struct result_id id;
	double *all, sum = 0;
	size_t n = 0, k;
	uint64_t errors = 0;
	const char *first_error = NULL;
	int i, rc;

	for (i = 0; i < n_cx; i++) {
		n += cx[i].st.n;
		errors += cx[i].st.errors;
		if (first_error == NULL && cx[i].st.errors > 0)
			first_error = cx[i].st.first_error;
	}
	all = xcalloc(n ? n : 1, sizeof(*all));
	for (i = 0, k = 0; i < n_cx; i++) {
		if (cx[i].st.n > 0)
			memcpy(all + k, cx[i].st.lat_ms,
			    cx[i].st.n * sizeof(*all));
		k += cx[i].st.n;
		free(cx[i].st.lat_ms);
	}
	if (busy) {
		for (k = 0; k < n; k++)
			sum += all[k];
		if (n > 0)
			so.duration = sum / 1000.0;
	}
	if (first_error != NULL) {
		char q[300];

		fprintf(stderr, "edgemail-bench: %s: %" PRIu64 " errors, first: "
		    "%s\n", so.label, errors, log_quote(first_error, q,
		    sizeof(q)));
	}
	if (so.samples != NULL)
		write_samples(&so, all, n, errors);
	id.label = so.label;
	id.mode = so.mode;
	id.size = so.size;
	id.nrcpt = so.nrcpt;
	id.nmailbox = so.nmailbox;
	id.conc = so.conc;
	rc = print_result(&id, so.duration, all, n, errors);
	free(all);
	return rc;
}

static void
start_conn(struct bench_conn_ctx *cx, pthread_t *tid,
    const struct bench_opts *o, const struct bench_msg *msg, void *shared,
    int idx, double t_measure, double t_end, void *(*fn)(void *))
{
	cx->o = o;
	cx->msg = msg;
	cx->shared = shared;
	cx->idx = idx;
	cx->t_measure = t_measure;
	cx->t_end = t_end;
	if (pthread_create(tid, NULL, fn, cx) != 0)
		fatalx("pthread_create: %s", strerror(errno));
}

static int
run_load(const struct bench_opts *o, const struct bench_msg *msg,
    void *(*fn)(void *), void *shared)
{
	struct bench_conn_ctx *cx;
	pthread_t *tid;
	double t_measure, t_end;
	int i, rc;

	cx = xcalloc((size_t)o->conc, sizeof(*cx));
	tid = xcalloc((size_t)o->conc, sizeof(*tid));
	t_measure = bench_now() + o->warmup;
	t_end = t_measure + o->duration;
	for (i = 0; i < o->conc; i++)
		start_conn(&cx[i], &tid[i], o, msg, shared, i, t_measure, t_end,
		    fn);
	for (i = 0; i < o->conc; i++)
		pthread_join(tid[i], NULL);
	rc = finish_side(o, cx, o->conc, 0);
	free(cx);
	free(tid);
	return rc;
}

/*
 * pair: one LMTP connection (side 0, --label, --samples) and one HTTPS
 * connection (side 1, --label-b, --samples-b) take turns, a message
 * each, for the whole run.  At concurrency 1 a drift of the disk from
 * one second to the next then hits both sides alike, which slices of
 * several seconds each cannot promise (docs/bench.md).
 */
static int
run_pair(const struct bench_opts *o, const struct bench_msg *msg, int aa)
{
	struct bench_opts so[2];
	struct bench_conn_ctx cx[2];
	struct bench_turn turn;
	pthread_t tid[2];
	void *shared[2];
	double t_measure, t_end;
	int i, rc = 0;

	so[0] = *o;
	so[0].mode = "lmtp";
	so[1] = *o;
	so[1].mode = aa ? "lmtp" : "http";
	so[1].label = o->label_b;
	so[1].samples = o->samples_b;
	if (lmtp_load_init(&so[0], &shared[0]) != 0 ||
	    (aa ? lmtp_load_init(&so[1], &shared[1]) :
	    http_load_init(&so[1], msg, &shared[1])) != 0)
		return 1;
	memset(cx, 0, sizeof(cx));
	memset(&turn, 0, sizeof(turn));
	pthread_mutex_init(&turn.lock, NULL);
	pthread_cond_init(&turn.cond, NULL);
	t_measure = bench_now() + o->warmup;
	t_end = t_measure + o->duration;
	for (i = 0; i < 2; i++) {
		cx[i].turn = &turn;
		cx[i].side = i;
		start_conn(&cx[i], &tid[i], &so[i], msg, shared[i], 0,
		    t_measure, t_end, i == 0 || aa ? lmtp_load_conn :
		    http_load_conn);
	}
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < 2; i++)
		rc |= finish_side(&so[i], &cx[i], 1, 1);
	if (!aa)
		http_load_free(shared[1]);
	pthread_cond_destroy(&turn.cond);
	pthread_mutex_destroy(&turn.lock);
	return rc;
}

/* A "key=value" field of a header line; NULL when absent. */
static const char *
header_field(const char *line, const char *key, char *out, size_t outsz)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, " \n");

			snprintf(out, outsz, "%.*s", (int)n, p + klen + 1);
			return out;
		}
		p += klen;
	}
	return NULL;
}

/* edgemail-bench report [--label L] FILE...: one result of many runs. */
static int
report_main(int argc, char **argv)
{
	static char mode[16], label[64];
	struct result_id id;
	double *lat = NULL, secs = 0;
	size_t n = 0, cap = 0;
	uint64_t errors = 0;
	char line[512], v[64];
	int i, first = 1;

	memset(&id, 0, sizeof(id));
	snprintf(label, sizeof(label), "report");
	for (i = 1; i < argc; i++) {
		FILE *fp;

		if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
			snprintf(label, sizeof(label), "%s", argv[++i]);
			continue;
		}
		if ((fp = fopen(argv[i], "re")) == NULL)
			fatalx("%s: %s", argv[i], strerror(errno));
		while (fgets(line, sizeof(line), fp) != NULL) {
			long long x;

			if (line[0] == '#') {
				if (first) {
					first = 0;
					if (header_field(line, "mode", mode,
					    sizeof(mode)) == NULL)
						fatalx("%s: no mode", argv[i]);
					id.size = (size_t)strtoull(header_field(line,
					    "size", v, sizeof(v)) ? v : "0", NULL, 10);
					id.nrcpt = header_field(line, "rcpts", v,
					    sizeof(v)) ? (int)strtol(v, NULL, 10) : 0;
					id.nmailbox = header_field(line, "mailboxes",
					    v, sizeof(v)) ? (int)strtol(v, NULL, 10) : 0;
					id.conc = header_field(line, "conc", v,
					    sizeof(v)) ? (int)strtol(v, NULL, 10) : 0;
				}
				if (header_field(line, "secs", v, sizeof(v)))
					secs += strtod(v, NULL);
				if (header_field(line, "errors", v, sizeof(v)) &&
				    str_to_ll(v, 0, INT64_MAX, &x) == 0)
					errors += (uint64_t)x;
				continue;
			}
			if (n == cap) {
				double *nl;

				cap = cap ? cap * 2 : 4096;
				if ((nl = realloc(lat, cap * sizeof(*lat))) == NULL)
					fatalx("out of memory");
				lat = nl;
			}
			lat[n++] = strtod(line, NULL);
		}
		fclose(fp);
	}
	if (first)
		fatalx("report: no samples");
	id.label = label;
	id.mode = mode;
	i = print_result(&id, secs, lat, n, errors);
	free(lat);
	return i;
}

int
main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_msg msg;
	void *shared = NULL;
	void *(*fn)(void *);
	int rc;

	log_init("edgemail-bench", LOG_LVL_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "sink") == 0)
		return sink_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "smarthost") == 0)
		return smarthost_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "report") == 0)
		return report_main(argc - 1, argv + 1);

	memset(&o, 0, sizeof(o));
	o.mode = argv[1];
	o.size = 10 * 1024;
	o.nrcpt = 20;
	o.nmailbox = 5;
	o.user = "bench";
	o.domain = "example.test";
	o.from = "bench@sender.test";
	o.conc = 1;
	o.duration = 10;
	o.warmup = 2;
	o.http_status = 200;
	if (strcmp(o.mode, "lmtp") != 0 && strcmp(o.mode, "http") != 0 &&
	    strcmp(o.mode, "submit") != 0 && strcmp(o.mode, "pair") != 0)
		usage();
	parse_load_opts(argc - 1, argv + 1, &o);
	if (o.label == NULL)
		o.label = strcmp(o.mode, "pair") == 0 ? "lmtp" : o.mode;
	msg_build(&o, &msg);
	if (strcmp(o.mode, "pair") == 0) {
		rc = run_pair(&o, &msg, o.host[0] == '\0');
		EVP_MD_CTX_free(msg.prefix_sha);
		free(msg.data);
		return rc;
	}
	if (strcmp(o.mode, "lmtp") == 0) {
		if (lmtp_load_init(&o, &shared) != 0)
			return 1;
		fn = lmtp_load_conn;
	} else if (strcmp(o.mode, "submit") == 0) {
		if (submit_load_init(&o, &msg, &shared) != 0)
			return 1;
		fn = submit_load_conn;
	} else {
		if (http_load_init(&o, &msg, &shared) != 0)
			return 1;
		fn = http_load_conn;
	}
	rc = run_load(&o, &msg, fn, shared);
	if (strcmp(o.mode, "http") == 0)
		http_load_free(shared);
	EVP_MD_CTX_free(msg.prefix_sha);
	free(msg.data);
	return rc;
}
