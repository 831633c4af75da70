/*
 * metrics.c - Prometheus text exposition for GET /metrics.
 *
 * Lock-free counters (relaxed atomics): requests by HTTP status, deliveries
 * by class, request bytes, and a request latency histogram.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "api/api.h"

static const unsigned status_codes[] = {
	200, 202, 400, 401, 404, 405, 409, 413, 415, 422, 429, 500, 503,
};
#define NSTATUS	(sizeof(status_codes) / sizeof(status_codes[0]))

static const double buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static atomic_ullong req_by_status[NSTATUS + 1];	/* last: other */
static atomic_ullong deliveries[MD__COUNT];
static atomic_ullong bytes_total;
static atomic_ullong hist[NBUCKETS + 1];		/* last: +Inf */
static atomic_ullong hist_sum_us;
static atomic_ullong hist_count;

void
metrics_request(unsigned http_status, double seconds, uint64_t bytes)
{
	size_t i;

	for (i = 0; i < NSTATUS && status_codes[i] != http_status; i++)
		;
	atomic_fetch_add_explicit(&req_by_status[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&bytes_total, bytes, memory_order_relaxed);
	for (i = 0; i < NBUCKETS && seconds > buckets[i]; i++)
		;
	atomic_fetch_add_explicit(&hist[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_sum_us,
	    (unsigned long long)(seconds * 1e6), memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_count, 1, memory_order_relaxed);
}

void
metrics_delivery(enum metric_delivery d, unsigned n)
{
	atomic_fetch_add_explicit(&deliveries[d], n, memory_order_relaxed);
}

void
metrics_render(struct buf *out)
{
	static const char *dnames[MD__COUNT] = { "delivered", "temp", "perm" };
	unsigned long long cum = 0;
	size_t i;

	buf_puts(out, "# HELP edgemail_api_requests_total HTTP requests by status.\n"
	    "# TYPE edgemail_api_requests_total counter\n");
	for (i = 0; i < NSTATUS; i++)
		buf_printf(out, "edgemail_api_requests_total{code=\"%u\"} %llu\n",
		    status_codes[i], atomic_load(&req_by_status[i]));
	buf_printf(out, "edgemail_api_requests_total{code=\"other\"} %llu\n",
	    atomic_load(&req_by_status[NSTATUS]));
	buf_puts(out, "# HELP edgemail_api_deliveries_total Recipient outcomes by class.\n"
	    "# TYPE edgemail_api_deliveries_total counter\n");
	for (i = 0; i < MD__COUNT; i++)
		buf_printf(out, "edgemail_api_deliveries_total{class=\"%s\"} %llu\n",
		    dnames[i], atomic_load(&deliveries[i]));
	buf_printf(out, "# HELP edgemail_api_received_bytes_total Request body bytes.\n"
	    "# TYPE edgemail_api_received_bytes_total counter\n"
	    "edgemail_api_received_bytes_total %llu\n", atomic_load(&bytes_total));
	buf_puts(out, "# HELP edgemail_api_request_duration_seconds Request latency.\n"
	    "# TYPE edgemail_api_request_duration_seconds histogram\n");
	for (i = 0; i < NBUCKETS; i++) {
		cum += atomic_load(&hist[i]);
		buf_printf(out, "edgemail_api_request_duration_seconds_bucket"
		    "{le=\"%g\"} %llu\n", buckets[i], cum);
	}
	cum += atomic_load(&hist[NBUCKETS]);
	buf_printf(out, "edgemail_api_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "edgemail_api_request_duration_seconds_sum %.6f\n"
	    "edgemail_api_request_duration_seconds_count %llu\n", cum,
	    (double)atomic_load(&hist_sum_us) / 1e6, atomic_load(&hist_count));
}
