/*
 * queue.c - edgemailctl queue: a mailq for both spools.
 *
 *   queue list                 every queued message, inbound and outbound
 *   queue show ID              envelope, per-recipient state, header
 *   queue flush                every pending recipient: try again now
 *   queue retry ID             one message: try again now
 *   queue hold ID / release ID keep the runners away from it / give it back
 *   queue delete ID            remove it (no bounce)
 *
 * The inbound spool (spool_dir) belongs to edgemail-api, the outbound one
 * (outbound_spool_dir) to edgemail-submit; their runners pick up changes
 * within queue_run_interval.  Changes are journal records appended to the
 * message file (lib/spool.h), so they are safe while the runners work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "lib/hdr.h"
#include "lib/spool.h"

static const char *queue_names[2] = { "inbound", "outbound" };
static const char *queue_keys[2] = { "spool_dir", "outbound_spool_dir" };

static int
queue_opts(struct ctl *c, int argc, char **argv, int nargs)
{
	int ch;

	while ((ch = ctl_getopt(c, argc, argv, "", NULL)) != -1) {
		if (ch == 'h')
			return ctl_help(c) + 100;
		return ctl_usage(c, NULL);
	}
	if (argc - optind != nargs)
		return ctl_usage(c, nargs ? "expected a queue ID" :
		    "no arguments expected");
	return -1;
}

#define QUEUE_OPTS(c, argc, argv, n) do {				\
	int rc_ = queue_opts((c), (argc), (argv), (n));			\
	if (rc_ >= 100)							\
		return rc_ - 100;					\
	if (rc_ >= 0)							\
		return rc_;						\
} while (0)

static struct spool *
open_queue(struct ctl *c, int which)
{
	char err[512];
	struct spool *s;

	s = spool_attach(ctl_get(c, queue_keys[which]), 0, err, sizeof(err));
	if (s == NULL)
		ctl_warn(c, "%s queue: %s", queue_names[which], err);
	return s;
}

static json_t *
msg_json(const struct spool_msg *m, int which)
{
	json_t *rcpts = json_array(), *j;
	size_t i;

	for (i = 0; i < m->nrcpt; i++) {
		const struct spool_rcpt *r = &m->rcpts[i];

		json_array_append_new(rcpts, json_pack(
		    "{s:s, s:s, s:i, s:I, s:i, s:s, s:s}", "rcpt", r->addr,
		    "state", spool_state_name(r->state), "attempts", r->attempts,
		    "next_try", (json_int_t)r->next_try, "code", r->last.code,
		    "enhanced", r->last.enhanced, "message", r->last.text));
	}
	j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:o}", "id", m->id,
	    "queue", queue_names[which], "from", m->mail_from,
	    "created", (json_int_t)m->created, "size", (json_int_t)m->msg_len,
	    "held", m->hold, "recipients", rcpts);
	return j;
}

/* Find ID in either queue; loads it into m. */
static struct spool *
find(struct ctl *c, const char *id, struct spool_msg *m, int *which_r)
{
	int w;

	for (w = 0; w < 2; w++) {
		struct spool *s = open_queue(c, w);

		if (s != NULL && spool_load(s, id, m) == 0) {
			*which_r = w;
			return s;
		}
		spool_close(&s);
	}
	ctl_fail(c, "no queued message %s", id);
	return NULL;
}

int
cmd_queue_list(struct ctl *c, int argc, char **argv)
{
	json_t *list = json_array();
	size_t i, k;
	int w;

	QUEUE_OPTS(c, argc, argv, 0);
	for (w = 0; w < 2; w++) {
		struct spool *s = open_queue(c, w);
		char **ids;
		size_t n;

		if (s == NULL || spool_list(s, &ids, &n) != 0) {
			spool_close(&s);
			continue;
		}
		for (i = 0; i < n; i++) {
			struct spool_msg m;

			if (spool_load(s, ids[i], &m) == 0) {
				json_array_append_new(list, msg_json(&m, w));
				spool_msg_free(&m);
			}
		}
		spool_ids_free(ids, n);
		spool_close(&s);
	}
	if (c->json)
		return ctl_json(list);
	if (json_array_size(list) == 0)
		printf("Mail queue is empty\n");
	for (i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i), *rs;
		time_t created = (time_t)json_integer_value(json_object_get(e,
		    "created"));
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
		    gmtime(&created));
		printf("%-20s %-8s %8lld  %s%s  <%s>\n",
		    json_string_value(json_object_get(e, "id")),
		    json_string_value(json_object_get(e, "queue")),
		    (long long)json_integer_value(json_object_get(e, "size")),
		    when, json_is_true(json_object_get(e, "held")) ? " HELD" : "",
		    json_string_value(json_object_get(e, "from")));
		rs = json_object_get(e, "recipients");
		for (k = 0; k < json_array_size(rs); k++) {
			json_t *r = json_array_get(rs, k);

			printf("    %-9s %s  (%lld attempts) %lld %s %s\n",
			    json_string_value(json_object_get(r, "state")),
			    json_string_value(json_object_get(r, "rcpt")),
			    (long long)json_integer_value(json_object_get(r,
			    "attempts")),
			    (long long)json_integer_value(json_object_get(r, "code")),
			    json_string_value(json_object_get(r, "enhanced")),
			    json_string_value(json_object_get(r, "message")));
		}
	}
	printf("-- %zu message%s\n", json_array_size(list),
	    json_array_size(list) == 1 ? "" : "s");
	json_decref(list);
	return CTL_OK;
}

int
cmd_queue_show(struct ctl *c, int argc, char **argv)
{
	struct spool_msg m;
	struct spool *s;
	json_t *j;
	char *hdr;
	size_t hlen;
	ssize_t n;
	int w;

	QUEUE_OPTS(c, argc, argv, 1);
	if ((s = find(c, argv[optind], &m, &w)) == NULL)
		return CTL_ERR;
	j = msg_json(&m, w);
	hlen = m.msg_len > 256 * 1024 ? 256 * 1024 : (size_t)m.msg_len;
	if ((hdr = malloc(hlen + 1)) != NULL &&
	    (n = pread(m.fd, hdr, hlen, m.msg_off)) >= 0) {
		hdr[n] = '\0';
		hdr[hdr_section_end(hdr, (size_t)n)] = '\0';
		json_object_set_new(j, "header", json_string(hdr));
	}
	free(hdr);
	spool_msg_free(&m);
	spool_close(&s);
	if (c->json)
		return ctl_json(j);
	{
		char *txt = json_dumps(j, JSON_INDENT(2));

		printf("%s\n", txt ? txt : "");
		free(txt);
		json_decref(j);
	}
	return CTL_OK;
}

/* Apply an action to one loaded message; 0 ok. */
enum action { ACT_RETRY, ACT_HOLD, ACT_RELEASE, ACT_DELETE };

static int
apply(struct spool *s, struct spool_msg *m, enum action a)
{
	size_t i;

	switch (a) {
	case ACT_RETRY:
		for (i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == SPOOL_PENDING &&
			    m->rcpts[i].next_try != 0) {
				m->rcpts[i].next_try = 0;
				if (spool_record(s, m, i) != 0)
					return -1;
			}
		return 0;
	case ACT_HOLD:
		return spool_set_hold(s, m, 1);
	case ACT_RELEASE:
		return spool_set_hold(s, m, 0);
	case ACT_DELETE:
		return spool_remove(s, m->id);
	}
	return -1;
}

static int
one(struct ctl *c, int argc, char **argv, enum action a, const char *done)
{
	struct spool_msg m;
	struct spool *s;
	int w, rc;

	QUEUE_OPTS(c, argc, argv, 1);
	if ((s = find(c, argv[optind], &m, &w)) == NULL)
		return CTL_ERR;
	rc = apply(s, &m, a);
	spool_msg_free(&m);
	spool_close(&s);
	if (rc != 0)
		return ctl_fail(c, "%s: cannot update the spool", argv[optind]);
	if (c->json)
		return ctl_json(json_pack("{s:s, s:s, s:s}", "status", done,
		    "id", argv[optind], "queue", queue_names[w]));
	printf("%s: %s\n", argv[optind], done);
	return CTL_OK;
}

int
cmd_queue_retry(struct ctl *c, int argc, char **argv)
{
	return one(c, argc, argv, ACT_RETRY, "scheduled for delivery now");
}

int
cmd_queue_hold(struct ctl *c, int argc, char **argv)
{
	return one(c, argc, argv, ACT_HOLD, "held");
}

int
cmd_queue_release(struct ctl *c, int argc, char **argv)
{
	return one(c, argc, argv, ACT_RELEASE, "released");
}

int
cmd_queue_delete(struct ctl *c, int argc, char **argv)
{
	return one(c, argc, argv, ACT_DELETE, "deleted");
}

int
cmd_queue_flush(struct ctl *c, int argc, char **argv)
{
	size_t i, n, count = 0;
	int w;

	QUEUE_OPTS(c, argc, argv, 0);
	for (w = 0; w < 2; w++) {
		struct spool *s = open_queue(c, w);
		char **ids;

		if (s == NULL || spool_list(s, &ids, &n) != 0) {
			spool_close(&s);
			continue;
		}
		for (i = 0; i < n; i++) {
			struct spool_msg m;

			if (spool_load(s, ids[i], &m) != 0)
				continue;
			if (!m.hold && apply(s, &m, ACT_RETRY) == 0)
				count++;
			spool_msg_free(&m);
		}
		spool_ids_free(ids, n);
		spool_close(&s);
	}
	if (c->json)
		return ctl_json(json_pack("{s:s, s:I}", "status", "flushed",
		    "messages", (json_int_t)count));
	printf("%zu message%s scheduled for delivery now\n", count,
	    count == 1 ? "" : "s");
	return CTL_OK;
}
