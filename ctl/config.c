/*
 * config.c - `edgemailctl config check` (is edgemail.conf valid, and what
 * does every key end up as) and `config defaults` (the table of keys,
 * defaults and meanings: lib/conf.c's conf_defs).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"
#include "lib/conf.h"

/* Keys whose values must parse as a type (the others are text). */
enum vtype { VT_SIZE, VT_DURATION, VT_BOOL, VT_INT, VT_PORT };

static const struct {
	const char *key;
	enum vtype type;
} typed[] = {
	{ "max_message_size", VT_SIZE },
	{ "max_header_size", VT_SIZE },
	{ "spool_max_bytes", VT_SIZE },
	{ "default_quota", VT_SIZE },
	{ "signature_max_skew", VT_DURATION },
	{ "request_timeout", VT_DURATION },
	{ "lmtp_timeout", VT_DURATION },
	{ "idempotency_ttl", VT_DURATION },
	{ "queue_retry_min", VT_DURATION },
	{ "queue_retry_max", VT_DURATION },
	{ "queue_run_interval", VT_DURATION },
	{ "max_queue_lifetime", VT_DURATION },
	{ "submit_idle_timeout", VT_DURATION },
	{ "submit_session_timeout", VT_DURATION },
	{ "submit_auth_failure_window", VT_DURATION },
	{ "relay_timeout", VT_DURATION },
	{ "scan", VT_BOOL },
	{ "queueing", VT_BOOL },
	{ "api_max_connections", VT_INT },
	{ "lmtp_max_connections", VT_INT },
	{ "max_recipients", VT_INT },
	{ "max_group_targets", VT_INT },
	{ "password_cost", VT_INT },
	{ "archive_retention_days", VT_INT },
	{ "quota_warning_percent", VT_INT },
	{ "submit_max_connections", VT_INT },
	{ "submit_max_recipients", VT_INT },
	{ "submit_max_messages_per_hour", VT_INT },
	{ "submit_max_recipients_per_hour", VT_INT },
	{ "submit_auth_max_failures", VT_INT },
	{ "submit_delivery_threads", VT_INT },
	{ "imap_port", VT_PORT },
	{ "imaps_port", VT_PORT },
	{ "pop3_port", VT_PORT },
	{ "pop3s_port", VT_PORT },
	{ "managesieve_port", VT_PORT },
};

static int
check_one(struct ctl *c, const char *key, enum vtype t, char *err,
    size_t errsz)
{
	unsigned long long sz;
	long long v;
	int b;

	switch (t) {
	case VT_SIZE:
		return conf_get_size(c->conf, key, &sz, err, errsz);
	case VT_DURATION:
		return conf_get_duration(c->conf, key, &v, err, errsz);
	case VT_BOOL:
		return conf_get_bool(c->conf, key, &b, err, errsz);
	case VT_INT:
		return conf_get_ll(c->conf, key, 0, 1000000000, &v, err, errsz);
	case VT_PORT:
		return conf_get_ll(c->conf, key, 1, 65535, &v, err, errsz);
	}
	return 0;
}

int
cmd_config_check(struct ctl *c, int argc, char **argv)
{
	json_t *vals = json_object(), *errs = json_array();
	char err[512];
	size_t i;
	int ch, dmarc_ok;
	const char *dp;

	while ((ch = ctl_getopt(c, argc, argv, "", NULL)) != -1) {
		if (ch == 'h')
			return ctl_help(c);
		return ctl_usage(c, NULL);
	}
	if (argc - optind != 0)
		return ctl_usage(c, "no argument expected");
	/* Unknown keys and bad $references were refused when the file was
	 * read (main.c); here the values are checked by type. */
	for (i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		if (conf_get(c->conf, typed[i].key) == NULL)
			continue;	/* a key another part has not added */
		if (check_one(c, typed[i].key, typed[i].type, err,
		    sizeof(err)) != 0)
			json_array_append_new(errs, json_string(err));
	}
	dp = ctl_get(c, "dmarc_policy");
	dmarc_ok = strcmp(dp, "none") == 0 || strcmp(dp, "quarantine") == 0 ||
	    strcmp(dp, "reject") == 0;
	if (!dmarc_ok) {
		snprintf(err, sizeof(err), "dmarc_policy: '%s' is not none, "
		    "quarantine or reject", dp);
		json_array_append_new(errs, json_string(err));
	}
	for (i = 0; conf_defs[i].name != NULL; i++)
		json_object_set_new(vals, conf_defs[i].name, json_pack(
		    "{s:s, s:b}", "value", ctl_get(c, conf_defs[i].name), "set",
		    conf_is_set(c->conf, conf_defs[i].name)));
	if (c->json) {
		ch = json_array_size(errs) ? CTL_ERR : CTL_OK;
		ctl_json(json_pack("{s:s, s:b, s:o, s:o}", "file", c->conf_path,
		    "file_found", c->conf_loaded, "errors", errs, "values",
		    vals));
		return ch;
	}
	printf("# %s%s\n", c->conf_path, c->conf_loaded ? "" :
	    " (not found: built-in defaults)");
	for (i = 0; conf_defs[i].name != NULL; i++)
		printf("%s = %s%s\n", conf_defs[i].name,
		    ctl_get(c, conf_defs[i].name),
		    conf_is_set(c->conf, conf_defs[i].name) ? "" :
		    "\t# default");
	for (i = 0; i < json_array_size(errs); i++)
		fprintf(stderr, "edgemailctl: config check: %s\n",
		    json_string_value(json_array_get(errs, i)));
	ch = json_array_size(errs) ? CTL_ERR : CTL_OK;
	if (ch == CTL_OK)
		printf("# configuration ok\n");
	json_decref(errs);
	json_decref(vals);
	return ch;
}

int
cmd_config_defaults(struct ctl *c, int argc, char **argv)
{
	json_t *list;
	size_t i;
	int ch;

	while ((ch = ctl_getopt(c, argc, argv, "", NULL)) != -1) {
		if (ch == 'h')
			return ctl_help(c);
		return ctl_usage(c, NULL);
	}
	if (argc - optind != 0)
		return ctl_usage(c, "no argument expected");
	if (c->json) {
		list = json_array();
		for (i = 0; conf_defs[i].name != NULL; i++)
			json_array_append_new(list, json_pack("{s:s, s:s, s:s}",
			    "key", conf_defs[i].name, "default",
			    conf_defs[i].def, "help", conf_defs[i].help));
		return ctl_json(list);
	}
	for (i = 0; conf_defs[i].name != NULL; i++)
		printf("%-32s %-24s %s\n", conf_defs[i].name,
		    conf_defs[i].def[0] ? conf_defs[i].def : "\"\"",
		    conf_defs[i].help);
	return CTL_OK;
}
