/*
 * test_spool.c - the durable queue: commit, reload, journal replay, hold,
 * removal, recovery of half-written files, torn and zero-filled journal
 * tails, ids that are queued already (never replaced), and the
 * spool_max_bytes limit (refused as TEMP, never PERM).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/spool.h"
#include "lmtp/lmtp.h"
#include "tests/unit/unit.h"

static const char *MSG_BODY = "Subject: t\r\n\r\nbody line\r\n";

static struct lmtp_msg
mem_msg(const char *prefix)
{
	struct lmtp_msg m;

	memset(&m, 0, sizeof(m));
	m.fd = -1;
	m.prefix = prefix;
	m.prefix_len = strlen(prefix);
	m.mem = MSG_BODY;
	m.mem_len = strlen(MSG_BODY);
	return m;
}

static int
dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int
read_message(struct spool_msg *sm, char *out, size_t outsz)
{
	ssize_t n;

	if ((size_t)sm->msg_len >= outsz)
		return -1;
	n = pread(sm->fd, out, (size_t)sm->msg_len, sm->msg_off);
	if (n != sm->msg_len)
		return -1;
	out[n] = '\0';
	return 0;
}

int
main(void)
{
	char dir[] = "/tmp/edgemail-spool-XXXXXX", err[256], path[512];
	char text[4096];
	const char *rcpts[] = { "a@example.test", "b@example.test" };
	enum spool_state states[] = { SPOOL_DONE, SPOOL_PENDING };
	struct reply replies[2], r;
	struct spool *s;
	struct spool_msg sm;
	struct lmtp_msg m = mem_msg("Received: x\r\n");
	char **ids;
	size_t n;
	int fd;

	if (mkdtemp(dir) == NULL)
		return 1;
	s = spool_open(dir, 0, err, sizeof(err));
	UNIT_CHECK("spool: open creates the directories", s != NULL, "%s", err);
	if (s == NULL)
		return unit_done();

	reply_set(&replies[0], 250, "2.0.0", "Saved");
	reply_set(&replies[1], 451, "4.2.0", "try later");
	UNIT_CHECK("spool: commit succeeds",
	    spool_commit(s, "m1", "from@x.test", rcpts, 2, states, replies, 0, &m,
	    &r) == 0, "%d %s", r.code, r.text);
	UNIT_CHECK("spool: commit leaves nothing in tmp/",
	    (snprintf(path, sizeof(path), "%s/tmp", dir), dir_entries(path) == 0),
	    "tmp file left");
	UNIT_CHECK("spool: an id that is queued is never replaced",
	    spool_commit(s, "m1", "other@x.test", rcpts, 1, NULL, NULL, 0, &m,
	    &r) == SPOOL_EXISTS && r.cls == REPLY_TEMP &&
	    spool_load(s, "m1", &sm) == 0 &&
	    strcmp(sm.mail_from, "from@x.test") == 0 && sm.nrcpt == 2,
	    "code %d from %s", r.code, sm.mail_from);
	spool_msg_free(&sm);
	UNIT_CHECK("spool: the refused commit leaves nothing in tmp/",
	    dir_entries(path) == 0, "tmp file left");

	UNIT_CHECK("spool: load finds the message", spool_load(s, "m1", &sm) == 0,
	    "load failed");
	UNIT_CHECK("spool: envelope sender round-trips",
	    strcmp(sm.mail_from, "from@x.test") == 0, "got %s", sm.mail_from);
	UNIT_CHECK("spool: recipients round-trip", sm.nrcpt == 2 &&
	    strcmp(sm.rcpts[1].addr, "b@example.test") == 0, "nrcpt %zu", sm.nrcpt);
	UNIT_CHECK("spool: initial states journalled",
	    sm.rcpts[0].state == SPOOL_DONE && sm.rcpts[1].state == SPOOL_PENDING
	    && sm.rcpts[1].last.code == 451, "states %d %d code %d",
	    sm.rcpts[0].state, sm.rcpts[1].state, sm.rcpts[1].last.code);
	UNIT_CHECK("spool: message bytes are prefix + body",
	    read_message(&sm, text, sizeof(text)) == 0 &&
	    strcmp(text, "Received: x\r\nSubject: t\r\n\r\nbody line\r\n") == 0,
	    "got '%s'", text);

	sm.rcpts[1].state = SPOOL_DONE;
	sm.rcpts[1].attempts = 2;
	reply_set(&sm.rcpts[1].last, 250, "2.0.0", "Saved\nwith newline");
	UNIT_CHECK("spool: record appends", spool_record(s, &sm, 1) == 0,
	    "record failed");
	UNIT_CHECK("spool: hold appends", spool_set_hold(s, &sm, 1) == 0,
	    "hold failed");
	spool_msg_free(&sm);
	/* A torn journal line after a crash must be ignored. */
	snprintf(path, sizeof(path), "%s/queue/m1", dir);
	fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, "R 1 fail", 8) != 8)
		return 1;
	close(fd);
	UNIT_CHECK("spool: reload replays the journal",
	    spool_load(s, "m1", &sm) == 0 && sm.rcpts[1].state == SPOOL_DONE &&
	    sm.rcpts[1].attempts == 2 && sm.hold == 1, "state %d hold %d",
	    sm.rcpts[1].state, sm.hold);
	UNIT_CHECK("spool: journal text kept on one line",
	    strcmp(sm.rcpts[1].last.text, "Saved with newline") == 0, "got '%s'",
	    sm.rcpts[1].last.text);
	/* The torn line is gone, so the next record starts a line. */
	sm.rcpts[0].attempts = 7;
	UNIT_CHECK("spool: a record after a torn one is read back",
	    spool_record(s, &sm, 0) == 0 && spool_set_forwarded(s, &sm, 1) == 0 &&
	    (spool_msg_free(&sm), spool_load(s, "m1", &sm)) == 0 &&
	    sm.rcpts[0].attempts == 7 && sm.rcpts[1].forwarded &&
	    !sm.rcpts[0].forwarded, "attempts %d forwarded %d",
	    sm.rcpts[0].attempts, sm.rcpts[1].forwarded);
	spool_msg_free(&sm);
	/* edgemailctl works on the owner's queue (spool_attach): it never
	 * cuts the file, it starts its record on a new line. */
	{
		struct spool *a = spool_attach(dir, 0, err, sizeof(err));

		fd = open(path, O_WRONLY | O_APPEND);
		if (a == NULL || fd < 0 || write(fd, "R 0 don", 7) != 7)
			return 1;
		close(fd);
		UNIT_CHECK("spool: attached, a torn tail is left, the record "
		    "goes after it", spool_load(a, "m1", &sm) == 0 && sm.torn &&
		    spool_set_hold(a, &sm, 0) == 0 &&
		    (spool_msg_free(&sm), spool_load(s, "m1", &sm)) == 0 &&
		    sm.hold == 0 && sm.rcpts[0].attempts == 7, "hold %d",
		    sm.hold);
		spool_msg_free(&sm);
		spool_close(&a);
	}
	/* A power loss can leave a zero-filled block at the end. */
	fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, "\0\0\0\0\0\0\0\0", 8) != 8)
		return 1;
	close(fd);
	UNIT_CHECK("spool: a zero-filled tail is cut, records after it read",
	    spool_load(s, "m1", &sm) == 0 && sm.rcpts[0].attempts == 7 &&
	    (sm.rcpts[0].attempts = 8, spool_record(s, &sm, 0)) == 0 &&
	    (spool_msg_free(&sm), spool_load(s, "m1", &sm)) == 0 &&
	    sm.rcpts[0].attempts == 8, "attempts %d", sm.rcpts[0].attempts);
	spool_msg_free(&sm);

	/* A writer killed half-way left tmp/m3 behind: the next commit of
	 * m3 (a retry) must not trip over it. */
	snprintf(path, sizeof(path), "%s/tmp/m3", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0)
		return 1;
	close(fd);
	UNIT_CHECK("spool: a stale tmp file does not block the same id",
	    spool_commit(s, "m3", "", rcpts, 1, NULL, NULL, 0, &m, &r) == 0,
	    "%d %s", r.code, r.text);
	unlink(path);
	spool_remove(s, "m3");

	UNIT_CHECK("spool: list finds one message",
	    spool_list(s, &ids, &n) == 0 && n == 1 && strcmp(ids[0], "m1") == 0,
	    "n=%zu", n);
	spool_ids_free(ids, n);
	UNIT_CHECK("spool: bad id refused",
	    spool_commit(s, "../x", "", rcpts, 1, NULL, NULL, 0, &m, &r) != 0 &&
	    r.cls == REPLY_TEMP, "accepted");
	UNIT_CHECK("spool: remove deletes", spool_remove(s, "m1") == 0 &&
	    spool_load(s, "m1", &sm) != 0, "still there");
	spool_close(&s);
	UNIT_CHECK("spool: close sets the pointer to NULL", s == NULL, "not NULL");

	/* Recovery: a half-written file under tmp/ is removed at open. */
	snprintf(path, sizeof(path), "%s/tmp/half", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0 || write(fd, "EDGEMAIL", 8) != 8)
		return 1;
	close(fd);
	s = spool_open(dir, 100, err, sizeof(err));
	UNIT_CHECK("spool: open removes half-written files",
	    s != NULL && access(path, F_OK) != 0, "still there");
	UNIT_CHECK("spool: spool_max_bytes refuses with a TEMP reply",
	    spool_commit(s, "m2", "", rcpts, 1, NULL, NULL, 0, &m, &r) != 0 &&
	    r.cls == REPLY_TEMP && r.code == 452, "code %d class %d", r.code,
	    r.cls);
	spool_close(&s);

	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		return 1;
	return unit_done();
}
