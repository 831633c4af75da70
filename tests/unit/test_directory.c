/*
 * test_directory.c - the directory: parsing of the four files, expansion
 * (aliases, groups, catch-all, loops, depth, the group limit, suspended
 * and unknown targets, forwards), editing and atomic saving that keeps
 * comments, the live copy's reload, and the delivery plan.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/directory.h"
#include "lib/log.h"
#include "tests/unit/unit.h"

static char tmpdir[256];

static void
put(const char *name, const char *text)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	fp = fopen(p, "w");
	if (fp == NULL) {
		perror(p);
		exit(1);
	}
	fputs(text, fp);
	fclose(fp);
}

static char *
slurp(const char *name)
{
	char p[512], *s;
	FILE *fp;
	long n;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	if ((fp = fopen(p, "r")) == NULL)
		return strdup("");
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	s = calloc(1, (size_t)n + 1);
	if (fread(s, 1, (size_t)n, fp) != (size_t)n)
		s[0] = '\0';
	fclose(fp);
	return s;
}

static const char DOMAINS[] =
    "# our domains\n"
    "example.test admin=admin@example.test archive=archive@example.test\n"
    "other.test\n"
    "loopy.test\n";

static const char USERS[] =
    "demo@example.test:{PLAIN}x::::::userdb_quota_rule=*:storage=4G\n"
    "bob@example.test:{PLAIN}x::::::\n"
    "admin@example.test:{PLAIN}x::::::\n"
    "# suspended\n"
    "sus@example.test:{PLAIN}x::::::nologin\n"
    "archive@example.test:{PLAIN}x::::::\n"
    "carol@other.test:{PLAIN}x\n"
    "Stray@Implicit.test:{PLAIN}x::::::\n";

static const char ALIASES[] =
    "info@example.test demo@example.test, bob@example.test\n"
    "bob@example.test bob@example.test, bob@far.test\n"
    "loop1@example.test loop2@example.test\n"
    "loop2@example.test: loop3@example.test\n"
    "loop3@example.test loop1@example.test\n"
    "deep0@example.test deep1@example.test\n"
    "deep1@example.test deep2@example.test\n"
    "deep2@example.test deep3@example.test\n"
    "deep3@example.test deep4@example.test\n"
    "deep4@example.test deep5@example.test\n"
    "deep5@example.test deep6@example.test\n"
    "deep6@example.test deep7@example.test\n"
    "deep7@example.test deep8@example.test\n"
    "deep8@example.test deep9@example.test\n"
    "deep9@example.test demo@example.test\n"
    "onlysus@example.test sus@example.test\n"
    "mixed@example.test sus@example.test ghost@example.test\n"
    "    demo@example.test\n"
    "fwd@example.test someone@far.test\n"
    "@other.test carol@other.test\n"
    "sales+vip@example.test bob@example.test\n"
    "@loopy.test nobody@loopy.test\n"
    "postmaster@example.test admin@example.test\n";

static const char GROUPS_HEAD[] =
    "team@example.test demo@example.test, bob@example.test, "
    "info@example.test\n"
    "nested@example.test team@example.test, carol@other.test\n"
    "ring@example.test ring2@example.test\n"
    "ring2@example.test demo@example.test, ring@example.test\n";

static void
write_fixture(void)
{
	char groups[4096];
	size_t o;
	int i;

	put("domains", DOMAINS);
	put("users", USERS);
	put("aliases", ALIASES);
	o = (size_t)snprintf(groups, sizeof(groups), "%s", GROUPS_HEAD);
	o += (size_t)snprintf(groups + o, sizeof(groups) - o,
	    "big@example.test");
	for (i = 0; i < 33; i++)
		o += (size_t)snprintf(groups + o, sizeof(groups) - o,
		    "%s m%02d@far.test", i ? "," : "", i);
	snprintf(groups + o, sizeof(groups) - o, "\n");
	put("groups", groups);
}

struct xcase {
	const char *name;
	const char *addr;
	int	 top;
	int	 code;		/* 250 or the refusal */
	const char *enhanced;
	const char *mailboxes;	/* comma-separated, in order */
	const char *forwards;
	size_t	 nnotes;
};

static const struct xcase xcases[] = {
	{ "expand_mailbox", "demo@example.test", 1, 250, "2.1.5",
	    "demo@example.test", "", 0 },
	{ "expand_mailbox_any_case_keeps_detail", "Demo+Tag@Example.TEST", 1,
	    250, "2.1.5", "demo+tag@example.test", "", 0 },
	{ "expand_unknown_is_550_5_1_1", "nobody@example.test", 1, 550,
	    "5.1.1", "", "", 0 },
	{ "expand_foreign_domain_is_550_5_1_2", "x@nowhere.test", 1, 550,
	    "5.1.2", "", "", 0 },
	{ "expand_domain_of_a_mailbox_is_ours", "stray@implicit.test", 1, 250,
	    "2.1.5", "stray@implicit.test", "", 0 },
	{ "expand_suspended_is_550_5_2_1", "sus@example.test", 1, 550, "5.2.1",
	    "", "", 0 },
	{ "expand_alias_through_alias", "info@example.test", 1, 250, "2.1.5",
	    "demo@example.test,bob@example.test", "bob@far.test", 0 },
	{ "expand_alias_naming_itself_keeps_a_copy", "bob@example.test", 1,
	    250, "2.1.5", "bob@example.test", "bob@far.test", 0 },
	{ "expand_loop_is_refused", "loop1@example.test", 1, 550, "5.4.6", "",
	    "", 0 },
	{ "expand_too_deep_is_refused", "deep0@example.test", 1, 550, "5.4.6",
	    "", "", 0 },
	{ "expand_not_quite_too_deep", "deep2@example.test", 1, 250, "2.1.5",
	    "demo@example.test", "", 0 },
	{ "expand_alias_to_suspended_only", "onlysus@example.test", 1, 550,
	    "5.2.1", "", "", 1 },
	{ "expand_partly_unknown_delivers_the_rest", "mixed@example.test", 1,
	    250, "2.1.5", "demo@example.test", "", 2 },
	{ "expand_forward_only", "fwd@example.test", 1, 250, "2.1.5", "",
	    "someone@far.test", 0 },
	{ "expand_catch_all", "anything@other.test", 1, 250, "2.1.5",
	    "carol@other.test", "", 0 },
	{ "expand_mailbox_beats_catch_all", "carol@other.test", 1, 250,
	    "2.1.5", "carol@other.test", "", 0 },
	{ "expand_catch_all_to_nothing_is_unknown", "x@loopy.test", 1, 550,
	    "5.1.1", "", "", 1 },
	{ "expand_group_removes_duplicates", "team@example.test", 1, 250,
	    "2.1.5", "demo@example.test,bob@example.test", "bob@far.test", 0 },
	{ "expand_nested_group", "nested@example.test", 1, 250, "2.1.5",
	    "demo@example.test,bob@example.test,carol@other.test",
	    "bob@far.test", 0 },
	{ "expand_group_over_the_limit_is_refused", "big@example.test", 1,
	    550, "5.2.4", "", "", 0 },
	{ "expand_group_loop_is_refused", "ring@example.test", 1, 550, "5.4.6",
	    "", "", 0 },
	{ "expand_detail_alias_first", "sales+vip@example.test", 1, 250,
	    "2.1.5", "bob@example.test", "bob@far.test", 0 },
	{ "expand_detail_alias_only_with_detail", "sales@example.test", 1, 550,
	    "5.1.1", "", "", 0 },
	{ "expand_admin_alias", "postmaster@example.test", 1, 250, "2.1.5",
	    "admin@example.test", "", 0 },
	{ "expand_bad_address", "not an address", 1, 550, "5.1.3", "", "",
	    0 },
	{ "expand_foreign_target_is_forward", "x@nowhere.test", 0, 250,
	    "2.1.5", "", "x@nowhere.test", 0 },
};

static void
join(char **v, size_t n, char *out, size_t outsz)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < n && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%s%s", i ? "," : "",
		    v[i]);
}

static void
test_expansion(const struct dir *d)
{
	size_t i;

	for (i = 0; i < sizeof(xcases) / sizeof(xcases[0]); i++) {
		const struct xcase *t = &xcases[i];
		struct dir_expansion x;
		char mb[1024], fw[1024];
		int rc;

		rc = dir_expand(d, t->addr, 32, t->top, &x);
		join(x.mailboxes, x.nmailbox, mb, sizeof(mb));
		join(x.forwards, x.nforward, fw, sizeof(fw));
		UNIT_CHECK(t->name, rc == 0 && x.reply.code == t->code &&
		    strcmp(x.reply.enhanced, t->enhanced) == 0 &&
		    strcmp(mb, t->mailboxes) == 0 &&
		    strcmp(fw, t->forwards) == 0 && x.nnotes == t->nnotes,
		    "rc %d reply %d %s \"%s\" mailboxes [%s] forwards [%s] "
		    "notes %zu", rc, x.reply.code, x.reply.enhanced,
		    x.reply.text, mb, fw, x.nnotes);
		dir_expansion_free(&x);
	}
}

static void
test_messages(const struct dir *d)
{
	struct dir_expansion x;

	dir_expand(d, "loop1@example.test", 32, 1, &x);
	UNIT_CHECK("loop_message_names_the_path", strstr(x.reply.text,
	    "loop1@example.test -> loop2@example.test -> loop3@example.test "
	    "-> loop1@example.test") != NULL, "text: %s", x.reply.text);
	dir_expansion_free(&x);
	dir_expand(d, "big@example.test", 32, 1, &x);
	UNIT_CHECK("group_limit_message_names_the_group", strstr(x.reply.text,
	    "big@example.test has 33 targets") != NULL, "text: %s",
	    x.reply.text);
	dir_expansion_free(&x);
	dir_expand(d, "big@example.test", 40, 1, &x);
	UNIT_CHECK("group_limit_is_configurable", x.reply.code == 250 &&
	    x.nforward == 33, "reply %d, %zu forwards", x.reply.code,
	    x.nforward);
	dir_expansion_free(&x);
}

static void
test_parse(const struct dir *d)
{
	const struct dir_domain *dom = dir_domain_get(d, "EXAMPLE.test");
	const struct dir_user *u;

	UNIT_CHECK("parse_counts", dir_count(d, DIR_DOMAINS) == 3 &&
	    dir_count(d, DIR_USERS) == 7 && dir_count(d, DIR_ALIASES) == 22 &&
	    dir_count(d, DIR_GROUPS) == 5, "%zu %zu %zu %zu",
	    dir_count(d, DIR_DOMAINS), dir_count(d, DIR_USERS),
	    dir_count(d, DIR_ALIASES), dir_count(d, DIR_GROUPS));
	UNIT_CHECK("parse_domain_attrs", dom != NULL &&
	    strcmp(dir_domain_attr(dom, "archive"), "archive@example.test") ==
	    0 && strcmp(dir_domain_attr(dom, "admin"), "admin@example.test") ==
	    0 && dir_domain_attr(dom, "nope") == NULL, "attrs");
	u = dir_user_get(d, "DEMO@example.test");
	UNIT_CHECK("parse_user_quota", u != NULL && dir_user_quota(u) != NULL &&
	    strcmp(dir_user_quota(u), "4G") == 0, "quota");
	u = dir_user_get(d, "sus@example.test");
	UNIT_CHECK("parse_user_suspended", u != NULL && dir_user_suspended(u),
	    "nologin not seen");
	u = dir_user_get(d, "carol@other.test");
	UNIT_CHECK("parse_short_passwd_line", u != NULL &&
	    strcmp(u->pass, "{PLAIN}x") == 0 && u->nextra == 0 &&
	    dir_user_quota(u) == NULL && !dir_user_suspended(u), "carol");
	UNIT_CHECK("parse_user_name_lowered",
	    dir_user_get(d, "stray@implicit.test") != NULL, "stray");
	UNIT_CHECK("parse_continuation_line",
	    dir_alias_get(d, "mixed@example.test")->ntargets == 3, "mixed");
}

struct badcase {
	const char *name;
	const char *file;
	const char *text;
	const char *want;	/* in the error */
};

static const struct badcase bad[] = {
	{ "bad_domain_name", "domains", "ok.test\nbad_domain!\n",
	    "domains:2: bad domain name" },
	{ "bad_domain_word", "domains", "ok.test archive\n",
	    "expected key=value" },
	{ "bad_user_name", "users", "nodomain:{PLAIN}x\n", "users:1:" },
	{ "bad_alias_target", "aliases", "a@x.test b@@x.test\n",
	    "aliases:1:" },
	{ "alias_without_target", "aliases", "a@x.test\n", "no target" },
	{ "bad_catch_all", "aliases", "@bad_dom c@x.test\n",
	    "bad domain in catch-all" },
	{ "dangling_continuation", "groups", "  a@x.test\n",
	    "continuation line without an entry" },
};

static void
test_bad_files(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[512] = "";
		struct dir *d;
		int f;

		for (f = 0; f < DIR__NFILES; f++)
			put(dir_file_name((enum dir_file)f), "");
		put(bad[i].file, bad[i].text);
		d = dir_load(tmpdir, err, sizeof(err));
		UNIT_CHECK(bad[i].name, d == NULL && strstr(err, bad[i].want),
		    "error \"%s\"", err);
		dir_free(&d);
	}
}

static void
test_edit(void)
{
	char err[512] = "", *s;
	const char *targets[] = { "demo@example.test", "Bob@example.test" };
	const char *one[] = { "demo@example.test" };
	struct dir *d;
	struct stat st;
	char p[512];
	int lk = -1;

	write_fixture();
	snprintf(p, sizeof(p), "%s/users", tmpdir);
	chmod(p, 0640);
	UNIT_CHECK("lock_taken", dir_lock(tmpdir, &lk, err, sizeof(err)) == 0,
	    "%s", err);
	d = dir_load(tmpdir, err, sizeof(err));
	UNIT_CHECK("edit_load", d != NULL, "%s", err);
	if (d == NULL)
		return;
	UNIT_CHECK("edit_user_in_unknown_domain_refused",
	    dir_user_add(d, "x@nowhere.test", "{PLAIN}y", NULL, err,
	    sizeof(err)) != 0 && strstr(err, "nowhere.test"), "%s", err);
	UNIT_CHECK("edit_user_twice_refused", dir_user_add(d,
	    "DEMO@example.test", "{PLAIN}y", NULL, err, sizeof(err)) != 0, "ok");
	UNIT_CHECK("edit_user_as_alias_name_refused", dir_user_add(d,
	    "info@example.test", "{PLAIN}y", NULL, err, sizeof(err)) != 0,
	    "ok");
	UNIT_CHECK("edit_bad_hash_refused", dir_user_add(d, "n@example.test",
	    "plain:text", NULL, err, sizeof(err)) != 0, "ok");
	UNIT_CHECK("edit_bad_quota_refused", dir_user_add(d, "n@example.test",
	    "{PLAIN}y", "4X", err, sizeof(err)) != 0, "ok");
	UNIT_CHECK("edit_user_add", dir_user_add(d, "New@Example.test",
	    "{PLAIN}y", "1G", err, sizeof(err)) == 0, "%s", err);
	UNIT_CHECK("edit_suspend", dir_user_set_suspended(d, "new@example.test",
	    1, err, sizeof(err)) == 0 && dir_user_suspended(dir_user_get(d,
	    "new@example.test")), "%s", err);
	UNIT_CHECK("edit_resume", dir_user_set_suspended(d, "sus@example.test",
	    0, err, sizeof(err)) == 0 && !dir_user_suspended(dir_user_get(d,
	    "sus@example.test")), "%s", err);
	UNIT_CHECK("edit_quota", dir_user_set_quota(d, "demo@example.test",
	    "2G", err, sizeof(err)) == 0 && strcmp(dir_user_quota(
	    dir_user_get(d, "demo@example.test")), "2G") == 0, "%s", err);
	UNIT_CHECK("edit_pass", dir_user_set_pass(d, "bob@example.test",
	    "{PLAIN}new", err, sizeof(err)) == 0, "%s", err);
	UNIT_CHECK("edit_group_add_dedups", dir_list_add(d, DIR_GROUPS,
	    "crew@example.test", targets, 2, err, sizeof(err)) == 0 &&
	    dir_list_add(d, DIR_GROUPS, "crew@example.test", one, 1, err,
	    sizeof(err)) == 0 && dir_group_get(d, "crew@example.test")->ntargets
	    == 2, "%s", err);
	UNIT_CHECK("edit_group_named_as_mailbox_refused", dir_list_add(d,
	    DIR_GROUPS, "demo@example.test", one, 1, err, sizeof(err)) != 0,
	    "ok");
	UNIT_CHECK("edit_alias_in_unknown_domain_refused", dir_list_add(d,
	    DIR_ALIASES, "a@nowhere.test", one, 1, err, sizeof(err)) != 0,
	    "ok");
	UNIT_CHECK("edit_catch_all_add", dir_list_add(d, DIR_ALIASES,
	    "@example.test", one, 1, err, sizeof(err)) == 0, "%s", err);
	UNIT_CHECK("edit_alias_del_target", dir_list_del(d, DIR_ALIASES,
	    "info@example.test", one, 1, err, sizeof(err)) == 0 &&
	    dir_alias_get(d, "info@example.test")->ntargets == 1, "%s", err);
	UNIT_CHECK("edit_alias_del_missing_target_refused", dir_list_del(d,
	    DIR_ALIASES, "info@example.test", one, 1, err, sizeof(err)) != 0,
	    "ok");
	UNIT_CHECK("edit_alias_del_whole", dir_list_del(d, DIR_ALIASES,
	    "fwd@example.test", NULL, 0, err, sizeof(err)) == 0 &&
	    dir_alias_get(d, "fwd@example.test") == NULL, "%s", err);
	UNIT_CHECK("edit_domain_set", dir_domain_set(d, "other.test", "archive",
	    "carol@other.test", err, sizeof(err)) == 0 && dir_domain_set(d,
	    "example.test", "archive", NULL, err, sizeof(err)) == 0, "%s", err);
	UNIT_CHECK("edit_domain_add_twice_refused", dir_domain_add(d,
	    "Other.test", err, sizeof(err)) != 0, "ok");
	UNIT_CHECK("edit_domain_add", dir_domain_add(d, "New.test", err,
	    sizeof(err)) == 0, "%s", err);
	UNIT_CHECK("edit_user_del", dir_user_del(d, "carol@other.test", err,
	    sizeof(err)) == 0 && dir_user_get(d, "carol@other.test") == NULL,
	    "%s", err);
	UNIT_CHECK("edit_save", dir_save(d, err, sizeof(err)) == 0, "%s", err);
	dir_free(&d);
	dir_unlock(&lk);

	s = slurp("users");
	UNIT_CHECK("save_keeps_comments", strstr(s, "# suspended\n"
	    "sus@example.test:{PLAIN}x::::::\n") != NULL, "%s", s);
	UNIT_CHECK("save_writes_quota_and_nologin", strstr(s,
	    "new@example.test:{PLAIN}y::::::userdb_quota_rule=*:storage=1G "
	    "nologin\n") != NULL, "%s", s);
	UNIT_CHECK("save_keeps_first_line", strncmp(s, "demo@example.test:"
	    "{PLAIN}x::::::userdb_quota_rule=*:storage=2G\n", 62) == 0, "%s",
	    s);
	free(s);
	s = slurp("domains");
	UNIT_CHECK("save_domains", strcmp(s, "# our domains\n"
	    "example.test admin=admin@example.test\n"
	    "other.test archive=carol@other.test\nloopy.test\nnew.test\n") == 0,
	    "%s", s);
	free(s);
	s = slurp("groups");
	UNIT_CHECK("save_groups", strstr(s, "crew@example.test "
	    "demo@example.test, bob@example.test\n") != NULL, "%s", s);
	free(s);
	UNIT_CHECK("save_keeps_mode", stat(p, &st) == 0 &&
	    (st.st_mode & 0777) == 0640, "mode %o", st.st_mode & 0777);
	snprintf(p, sizeof(p), "%s/.users.tmp.%ld", tmpdir, (long)getpid());
	UNIT_CHECK("save_leaves_no_temp_file", access(p, F_OK) != 0, "%s", p);
	d = dir_load(tmpdir, err, sizeof(err));
	UNIT_CHECK("save_reloads", d != NULL && dir_user_get(d,
	    "new@example.test") != NULL && dir_alias_get(d, "@example.test") !=
	    NULL, "%s", err);
	dir_free(&d);
}

static void
test_live_and_plan(void)
{
	struct directory *dr;
	struct dir_plan p;
	struct reply replies[8], out;
	const char *rcpts[] = { "info@example.test", "team@example.test",
	    "nobody@example.test", "demo@example.test", "fwd@example.test",
	    "sus@example.test" };
	char err[512] = "";
	size_t i;

	write_fixture();
	dr = directory_open(tmpdir, 32, err, sizeof(err));
	UNIT_CHECK("live_open", dr != NULL && directory_in_use(dr), "%s", err);
	if (dr == NULL)
		return;
	UNIT_CHECK("plan_built", directory_plan(dr, "t1", rcpts, 6, &p) == 0,
	    "oom");
	UNIT_CHECK("plan_one_transaction_no_duplicates", p.nlmtp == 3 &&
	    strcmp(p.lmtp[0], "demo@example.test") == 0 &&
	    strcmp(p.lmtp[1], "bob@example.test") == 0 &&
	    strcmp(p.lmtp[2], "archive@example.test") == 0 && p.narchive == 1,
	    "nlmtp %zu narchive %zu", p.nlmtp, p.narchive);
	UNIT_CHECK("plan_refusals_per_recipient", p.rcpt[2].reply.code == 550 &&
	    strcmp(p.rcpt[2].reply.enhanced, "5.1.1") == 0 &&
	    p.rcpt[5].reply.code == 550 &&
	    strcmp(p.rcpt[5].reply.enhanced, "5.2.1") == 0,
	    "%d %d", p.rcpt[2].reply.code, p.rcpt[5].reply.code);
	UNIT_CHECK("plan_forward_only_recipient_is_accepted_with_its_forwards",
	    p.rcpt[4].reply.cls == REPLY_OK && p.rcpt[4].nlmtp == 0 &&
	    p.rcpt[4].nforward >= 1, "code %d nforward %zu",
	    p.rcpt[4].reply.code, p.rcpt[4].nforward);
	UNIT_CHECK("plan_forwards_collected", p.nforward == 2, "%zu",
	    p.nforward);
	for (i = 0; i < 3; i++)
		reply_set(&replies[i], 250, "2.0.0", "ok");
	reply_set(&replies[1], 452, "4.2.2", "full for now");
	dir_plan_outcome(&p, 0, replies, NULL, &out);
	UNIT_CHECK("outcome_temp_wins", out.code == 452, "%d", out.code);
	dir_plan_outcome(&p, 3, replies, NULL, &out);
	UNIT_CHECK("outcome_direct_ok", out.code == 250, "%d", out.code);
	reply_set(&replies[1], 552, "5.2.2", "full");
	dir_plan_outcome(&p, 0, replies, NULL, &out);
	UNIT_CHECK("outcome_ok_beats_perm", out.code == 250, "%d", out.code);
	dir_plan_outcome(&p, 2, replies, NULL, &out);
	UNIT_CHECK("outcome_directory_refusal", out.code == 550 &&
	    strcmp(out.enhanced, "5.1.1") == 0, "%d", out.code);
	{
		struct reply fr[8];

		for (i = 0; i < p.nforward && i < 8; i++)
			reply_set(&fr[i], 250, "2.0.0", "queued for forwarding");
		dir_plan_outcome(&p, 4, replies, fr, &out);
		UNIT_CHECK("outcome_forward_queued_is_ok", out.code == 250,
		    "%d", out.code);
		for (i = 0; i < p.nforward && i < 8; i++)
			reply_set(&fr[i], 451, "4.3.0", "outbound spool full");
		dir_plan_outcome(&p, 4, replies, fr, &out);
		UNIT_CHECK("outcome_forward_not_queued_is_temp",
		    out.cls == REPLY_TEMP, "%d", out.code);
	}
	dir_plan_free(&p);

	/* A mailbox added to the file is seen at once (a miss re-checks). */
	{
		char *u = slurp("users");
		size_t n = strlen(u) + 64;
		char *u2 = malloc(n);
		const char *r1[] = { "fresh@example.test" };

		snprintf(u2, n, "%sfresh@example.test:{PLAIN}z::::::\n", u);
		put("users", u2);
		free(u);
		free(u2);
		UNIT_CHECK("live_sees_new_mailbox", directory_plan(dr, "t2", r1,
		    1, &p) == 0 && p.nlmtp >= 1 && p.rcpt[0].reply.code == 250,
		    "code %d", p.rcpt[0].reply.code);
		dir_plan_free(&p);
	}
	/* A broken file keeps the last good copy. */
	put("domains", "bad_domain!\n");
	UNIT_CHECK("live_keeps_last_good_copy", directory_refresh(dr, 1) == 0,
	    "reloaded a broken directory");
	{
		const char *r1[] = { "demo@example.test" };

		UNIT_CHECK("live_still_delivers", directory_plan(dr, "t3", r1, 1,
		    &p) == 0 && p.rcpt[0].reply.code == 250, "code %d",
		    p.rcpt[0].reply.code);
		dir_plan_free(&p);
	}
	put("domains", DOMAINS);
	UNIT_CHECK("live_reloads_when_fixed", directory_refresh(dr, 1) == 1,
	    "no reload");
	UNIT_CHECK("live_no_reload_without_change", directory_refresh(dr, 1) ==
	    0, "reloaded again");
	directory_free(&dr);

	/* An empty (or absent) directory is not in use. */
	{
		char empty[300];

		snprintf(empty, sizeof(empty), "%s/none", tmpdir);
		dr = directory_open(empty, 32, err, sizeof(err));
		UNIT_CHECK("live_absent_directory_not_in_use", dr != NULL &&
		    !directory_in_use(dr), "%s", err);
		directory_free(&dr);
	}
}

int
main(void)
{
	char err[512] = "";
	struct dir *d;

	log_init("test_directory", LOG_LVL_ERR);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_directory.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	write_fixture();
	d = dir_load(tmpdir, err, sizeof(err));
	UNIT_CHECK("load_fixture", d != NULL, "%s", err);
	if (d != NULL) {
		test_parse(d);
		test_expansion(d);
		test_messages(d);
		dir_free(&d);
	}
	test_bad_files();
	test_edit();
	test_live_and_plan();
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return unit_done();
}
