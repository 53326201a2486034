/*
 * test_config.c — unit tests of the configuration loader (config/config.h): the shipped
 * example loads with the exact values it shows, defaults apply, every class of mistake is
 * reported at its exact file:line:column, all mistakes of a file come out together, and
 * passwords, durations, sizes and limits are parsed and checked as documented.
 *
 * Needs XATM_SOURCE_ROOT (set by meson) to find config/xatm.example.yaml.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"
#include "xatm.h"

/* A valid tm: section, 5 lines, for tests that are about rms: (lines 1-5). */
#define TM_OK                                                                            \
    "tm:\n"                                                                              \
    "  id: tm1\n"                                                                        \
    "  socket: /run/xatm/xatmd.sock\n"                                                   \
    "  log_dir: /var/lib/xatm/log\n"                                                     \
    "rms:\n"

/* A valid RM entry (5 lines: 6-10 after TM_OK). */
#define RM_OK                                                                            \
    "  - name: pg\n"                                                                     \
    "    type: postgresql\n"                                                             \
    "    host: localhost\n"                                                              \
    "    user: u\n"                                                                      \
    "    database: d\n"

/* Loads `yaml` as file "t.yaml"; returns the code, *cfg (or NULL) and *errs (or NULL). */
static int load(const char *yaml, xatm_config **cfg, char **errs)
{
    return xatm_config_load_string("t.yaml", yaml, strlen(yaml), cfg, errs);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        if (*s == '\n') n++;
    return n;
}

/* Every line of an error text is "t.yaml:L:C: ...; expected ..." and ends with '\n'. */
static void check_error_format(const char *errs)
{
    CHECK(errs != NULL && errs[0] != '\0');
    if (!errs) return;
    CHECK(errs[strlen(errs) - 1] == '\n');
    const char *line = errs;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        int l = 0, c = 0, used = 0;
        CHECK(sscanf(line, "t.yaml:%d:%d: %n", &l, &c, &used) == 2 && used > 0);
        CHECK(l >= 1 && c >= 1);
        char *one = strndup(line, (size_t)(end - line));
        CHECK_CONTAINS(one, "; expected ");
        free(one);
        line = *end ? end + 1 : end;
    }
}

/* Loads `yaml`, expects XATM_ECONFIG with exactly `n_errors` lines, the first of which
 * (sorted by position) or some line contains `want`. Returns nothing; frees all. */
static void expect_errors(const char *yaml, int n_errors, const char *want)
{
    xatm_config *cfg = (xatm_config *)1;
    char *errs = NULL;
    CHECK_INT(load(yaml, &cfg, &errs), XATM_ECONFIG);
    CHECK(cfg == NULL);
    int before = t_failures;
    CHECK_INT(count_lines(errs), n_errors);
    CHECK_CONTAINS(errs, want);
    if (t_failures != before) fprintf(stderr, "  for:\n%s  got:\n%s", yaml, errs ? errs : "");
    check_error_format(errs);
    free(errs);
}

/* Loads `yaml`, expects success; the caller frees the config. */
static xatm_config *expect_ok(const char *yaml)
{
    xatm_config *cfg = NULL;
    char *errs = (char *)1;
    int rc = load(yaml, &cfg, &errs);
    CHECK_INT(rc, 0);
    CHECK(errs == NULL);
    if (errs && errs != (char *)1) {
        fprintf(stderr, "unexpected errors:\n%s", errs);
        free(errs);
    }
    CHECK(cfg != NULL);
    return rc == 0 ? cfg : NULL;
}

static void test_example(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config/xatm.example.yaml", t_env("XATM_SOURCE_ROOT"));

    /* without the environment variable the example's ledger_pg entry cannot load */
    unsetenv("LEDGER_PG_PASSWORD");
    xatm_config *cfg = NULL;
    char *errs = NULL;
    CHECK_INT(xatm_config_load(path, &cfg, &errs), XATM_ECONFIG);
    CHECK(cfg == NULL);
    CHECK_INT(count_lines(errs), 1);
    CHECK_CONTAINS(errs, "rms[0].password_env: environment variable 'LEDGER_PG_PASSWORD' is "
                         "not set; expected");
    CHECK(errs && strncmp(errs, path, strlen(path)) == 0); /* messages name the file */
    free(errs);

    setenv("LEDGER_PG_PASSWORD", "pg secret", 1);
    errs = (char *)1;
    CHECK_INT(xatm_config_load(path, &cfg, &errs), 0);
    CHECK(errs == NULL);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(cfg->path, path);
        CHECK_STR(cfg->tm_id, "tm1");
        CHECK_STR(cfg->socket_path, "/run/xatm/xatmd.sock");
        CHECK_STR(cfg->admin_socket_path, "/run/xatm/xatmd-admin.sock");
        CHECK_INT(cfg->socket_mode, 0660);
        CHECK_STR(cfg->log_dir, "/var/lib/xatm/log");
        CHECK_INT(cfg->log_segment_size, 16 * 1024 * 1024);
        CHECK_INT(cfg->format_id, 0x78614d31);
        CHECK_INT(cfg->default_protocol, XATM_PROTOCOL_2PC);
        CHECK_INT(cfg->transaction_timeout_ms, 60000);
        CHECK_INT(cfg->request_timeout_ms, 30000);
        CHECK_INT(cfg->recovery_interval_ms, 10000);
        CHECK_INT(cfg->precommit_timeout_ms, 5000);
        CHECK_INT(cfg->participant_timeout_ms, 10000);
        CHECK_INT(cfg->participant_timeout_action, XATM_PARTICIPANT_COMMIT);
        CHECK_INT(cfg->n_rms, 2);

        const xatm_rm_config *pg = xatm_config_rm(cfg, "ledger_pg");
        CHECK(pg == &cfg->rms[0]);
        CHECK_INT(xatm_config_rm_index(cfg, "ledger_pg"), 0);
        if (pg) {
            CHECK_STR(pg->name, "ledger_pg");
            CHECK_INT(pg->type, XATM_RM_POSTGRESQL);
            CHECK_STR(pg->host, "127.0.0.1");
            CHECK_INT(pg->port, 5432);
            CHECK(pg->socket == NULL);
            CHECK_STR(pg->user, "xatm");
            CHECK_STR(pg->database, "ledger");
            CHECK_STR(pg->password, "pg secret");
            CHECK_INT(pg->connect_timeout_ms, 5000);
            CHECK_INT(pg->line, 80);
            CHECK_INT(pg->column, 5);
        }
        const xatm_rm_config *my = xatm_config_rm(cfg, "ledger_my");
        CHECK(my == &cfg->rms[1]);
        CHECK_INT(xatm_config_rm_index(cfg, "ledger_my"), 1);
        if (my) {
            CHECK_STR(my->name, "ledger_my");
            CHECK_INT(my->type, XATM_RM_MYSQL);
            CHECK(my->host == NULL);
            CHECK_INT(my->port, 3306);
            CHECK_STR(my->socket, "/run/mysqld/mysqld.sock");
            CHECK_STR(my->user, "xatm");
            CHECK_STR(my->database, "ledger");
            CHECK_STR(my->password, "change me");
            CHECK_INT(my->connect_timeout_ms, 5000);
            CHECK_INT(my->line, 92);
        }
        CHECK(xatm_config_rm(cfg, "nope") == NULL);
        CHECK_INT(xatm_config_rm_index(cfg, "nope"), -1);
        CHECK(xatm_config_rm(cfg, NULL) == NULL);
    }
    xatm_config_free(cfg);
    unsetenv("LEDGER_PG_PASSWORD");
}

static void test_defaults(void)
{
    xatm_config *cfg = expect_ok("tm:\n"
                                 "  id: a-B_9\n"
                                 "  socket: /tmp/x/ap.sock\n"
                                 "  log_dir: log\n"
                                 "rms:\n"
                                 "  - name: p\n"
                                 "    type: postgresql\n"
                                 "    socket: /run/postgresql\n"
                                 "    user: u\n"
                                 "    database: d\n"
                                 "  - {name: m, type: MySQL, host: h, user: u, database: d}\n");
    if (!cfg) return;
    CHECK_STR(cfg->tm_id, "a-B_9");
    CHECK_STR(cfg->admin_socket_path, "/tmp/x/xatmd-admin.sock");
    CHECK_INT(cfg->socket_mode, 0660);
    CHECK_INT(cfg->log_segment_size, 16 * 1024 * 1024);
    CHECK_INT(cfg->format_id, 0x78614d31);
    CHECK_INT(cfg->default_protocol, XATM_PROTOCOL_2PC);
    CHECK_INT(cfg->transaction_timeout_ms, 60000);
    CHECK_INT(cfg->request_timeout_ms, 30000);
    CHECK_INT(cfg->recovery_interval_ms, 10000);
    CHECK_INT(cfg->precommit_timeout_ms, 5000);
    CHECK_INT(cfg->participant_timeout_ms, 10000);
    CHECK_INT(cfg->participant_timeout_action, XATM_PARTICIPANT_COMMIT);
    CHECK(cfg->decision_rm == NULL);
    CHECK_INT(cfg->decision_retention_ms, 24u * 3600u * 1000u);
    CHECK_STR(cfg->path, "t.yaml");
    CHECK_INT(cfg->n_rms, 2);
    CHECK(cfg->rms[0].host == NULL);
    CHECK_STR(cfg->rms[0].socket, "/run/postgresql");
    CHECK_INT(cfg->rms[0].port, 5432);
    CHECK(cfg->rms[0].password == NULL);
    CHECK_INT(cfg->rms[0].connect_timeout_ms, 5000);
    CHECK_INT(cfg->rms[0].line, 6);
    CHECK_INT(cfg->rms[0].column, 5);
    CHECK_INT(cfg->rms[1].type, XATM_RM_MYSQL);
    CHECK_INT(cfg->rms[1].port, 3306);
    CHECK_INT(cfg->rms[1].line, 11);
    CHECK_INT(cfg->rms[1].column, 5);
    CHECK_STR(xatm_rm_type_name(cfg->rms[0].type), "postgresql");
    CHECK_STR(xatm_rm_type_name(cfg->rms[1].type), "mysql");
    xatm_config_free(cfg);

    /* a socket with no directory part: the admin socket sits next to it */
    cfg = expect_ok("tm: {id: t, socket: ap.sock, log_dir: l}\nrms:\n" RM_OK);
    if (cfg) CHECK_STR(cfg->admin_socket_path, "xatmd-admin.sock");
    xatm_config_free(cfg);

    /* every optional tm key set to a non-default value */
    cfg = expect_ok("tm:\n"
                    "  id: tm2\n"
                    "  socket: /s/ap\n"
                    "  admin_socket: /s/admin\n"
                    "  socket_mode: \"0600\"\n"
                    "  log_dir: /l\n"
                    "  log_segment_size: 64KiB\n"
                    "  format_id: 1234\n"
                    "  protocol: 3pc\n"
                    "  transaction_timeout: 1.5s\n"
                    "  request_timeout: 250\n"
                    "  recovery_interval: 2m\n"
                    "  precommit_timeout: 750ms\n"
                    "  participant_timeout: 3s\n"
                    "  participant_timeout_action: wait\n"
                    "  decision_rm: m\n"
                    "  decision_retention: 2h\n"
                    "rms:\n"
                    "  - name: m\n"
                    "    type: mariadb\n"
                    "    host: h\n"
                    "    port: 3307\n"
                    "    user: u\n"
                    "    database: d\n"
                    "    password: \"\"\n"
                    "    connect_timeout: 100ms\n");
    if (cfg) {
        CHECK_STR(cfg->admin_socket_path, "/s/admin");
        CHECK_INT(cfg->socket_mode, 0600);
        CHECK_INT(cfg->log_segment_size, 65536);
        CHECK_INT(cfg->format_id, 1234);
        CHECK_INT(cfg->default_protocol, XATM_PROTOCOL_3PC);
        CHECK_INT(cfg->transaction_timeout_ms, 1500);
        CHECK_INT(cfg->request_timeout_ms, 250);
        CHECK_INT(cfg->recovery_interval_ms, 120000);
        CHECK_INT(cfg->precommit_timeout_ms, 750);
        CHECK_INT(cfg->participant_timeout_ms, 3000);
        CHECK_INT(cfg->participant_timeout_action, XATM_PARTICIPANT_WAIT);
        CHECK_STR(cfg->decision_rm, "m"); /* a MariaDB RM may decide too */
        CHECK_INT(cfg->decision_retention_ms, 2u * 3600u * 1000u);
        CHECK_INT(cfg->rms[0].type, XATM_RM_MYSQL); /* mariadb is an alias of mysql */
        CHECK_INT(cfg->rms[0].port, 3307);
        CHECK_STR(cfg->rms[0].password, "");
        CHECK_INT(cfg->rms[0].connect_timeout_ms, 100);
    }
    xatm_config_free(cfg);
}

static void test_unknown_keys(void)
{
    /* close to a known key: suggestion */
    expect_errors("tm:\n"
                  "  id: tm1\n"
                  "  socket: /s\n"
                  "  log_dir: /l\n"
                  "  transaction_timout: 5s\n"
                  "rms:\n" RM_OK,
                  1,
                  "t.yaml:5:3: unknown key 'transaction_timout' in tm (did you mean "
                  "'transaction_timeout'?); expected one of id, socket, admin_socket, ");
    /* a swap of two letters counts as one edit */
    expect_errors(TM_OK RM_OK "    pasword_env: X\n", 1,
                  "t.yaml:11:5: unknown key 'pasword_env' in rms[0] (did you mean "
                  "'password_env'?); expected one of name");
    /* nothing close: the list of keys */
    expect_errors(TM_OK RM_OK "    colour: blue\n", 1,
                  "t.yaml:11:5: unknown key 'colour' in rms[0]; expected one of name, type, "
                  "host, port, socket, user, database, password, password_env, password_file "
                  "or connect_timeout\n");
    expect_errors(TM_OK RM_OK "tms: {}\n", 1,
                  "t.yaml:11:1: unknown key 'tms' in the top-level mapping (did you mean "
                  "'tm'?); expected one of tm or rms\n");
    /* a very short key gets no far-fetched suggestion; escapes keep one line */
    expect_errors(TM_OK RM_OK "~: 1\n", 1, "t.yaml:11:1: unknown key '~' in the top-level mapping; "
                                          "expected one of tm or rms\n");
    expect_errors(TM_OK RM_OK "\"t\\x01\\n\": 1\n", 1,
                  "t.yaml:11:1: unknown key 't\\x01\\n' in the top-level mapping (did you mean "
                  "'tm'?); expected one of tm or rms\n");
    /* a key that is not a scalar */
    expect_errors(TM_OK RM_OK "? [a]\n: b\n", 1,
                  "t.yaml:11:3: a sequence used as a key in the top-level mapping; expected a key "
                  "name\n");
}

static void test_wrong_types(void)
{
    expect_errors("tm:\n"
                  "  id: {a: 1}\n"
                  "  socket: /s\n"
                  "  log_dir: [x]\n"
                  "rms:\n" RM_OK,
                  2, "t.yaml:2:7: tm.id is a mapping; expected a TM id: 1 to 16 characters");
    expect_errors("tm:\n"
                  "  id: {a: 1}\n"
                  "  socket: /s\n"
                  "  log_dir: [x]\n"
                  "rms:\n" RM_OK,
                  2, "t.yaml:4:12: tm.log_dir is a sequence; expected a directory path\n");
    expect_errors("tm: x\nrms:\n" RM_OK, 1,
                  "t.yaml:1:5: tm is a scalar; expected a mapping of the TM's settings\n");
    expect_errors("tm:\nrms:\n" RM_OK, 1,
                  "t.yaml:1:4: tm has no value; expected a mapping of the TM's settings\n");
    expect_errors(TM_OK "  name: x\n", 1,
                  "t.yaml:6:3: rms is a mapping; expected a sequence of RM entries\n");
    expect_errors(TM_OK "  []\n", 1, "t.yaml:6:3: rms is empty; expected at least one RM entry\n");
    expect_errors(TM_OK "  - pg\n", 1,
                  "t.yaml:6:5: rms[0] is a scalar; expected a mapping describing one RM\n");
    expect_errors(TM_OK RM_OK "  -\n", 1,
                  "t.yaml:11:4: rms[1] is empty; expected a mapping describing one RM\n");
    expect_errors("- tm\n", 1,
                  "t.yaml:1:1: the document is a sequence; expected a mapping with the keys "
                  "'tm' and 'rms'\n");
    expect_errors(TM_OK RM_OK "    port: {p: 1}\n", 1,
                  "t.yaml:11:11: rms[0].port is a mapping; expected a TCP port from 1 to 65535\n");
    expect_errors(TM_OK RM_OK "    user: ''\n", 1,
                  "t.yaml:11:5: duplicate key 'user' in rms[0] (first given at line 9)");
    expect_errors(TM_OK "  - name: pg\n"
                        "    type: postgresql\n"
                        "    host: localhost\n"
                        "    user: ''\n"
                        "    database: d\n",
                  1, "t.yaml:9:11: rms[0].user is empty; expected the user to log in as\n");
    expect_errors(TM_OK "  - name: pg\n"
                        "    type: postgresql\n"
                        "    host: localhost\n"
                        "    user: \"a\\0b\"\n"
                        "    database: d\n",
                  1, "t.yaml:9:11: rms[0].user contains a NUL character; expected");
}

static void test_missing_required(void)
{
    /* position: the enclosing mapping (its first key) */
    expect_errors("tm:\n"
                  "  socket_mode: 0600\n"
                  "rms:\n" RM_OK,
                  3, "t.yaml:2:3: missing required key 'id' in tm; expected the TM's id");
    expect_errors("tm:\n"
                  "  socket_mode: 0600\n"
                  "rms:\n" RM_OK,
                  3, "t.yaml:2:3: missing required key 'socket' in tm; expected");
    expect_errors("tm:\n"
                  "  socket_mode: 0600\n"
                  "rms:\n" RM_OK,
                  3, "t.yaml:2:3: missing required key 'log_dir' in tm; expected");
    expect_errors(TM_OK "  - name: pg\n"
                        "    host: h\n",
                  3, "t.yaml:6:5: missing required key 'type' in rms[0]; expected postgresql or "
                     "mysql\n");
    expect_errors(TM_OK "  - name: pg\n"
                        "    host: h\n",
                  3, "t.yaml:6:5: missing required key 'user' in rms[0]; expected");
    expect_errors(TM_OK "  - name: pg\n"
                        "    host: h\n",
                  3, "t.yaml:6:5: missing required key 'database' in rms[0]; expected");
    expect_errors(TM_OK "  - type: mysql\n"
                        "    user: u\n"
                        "    database: d\n",
                  2, "t.yaml:6:5: missing required key 'name' in rms[0]; expected an RM name");
    expect_errors(TM_OK "  - type: mysql\n"
                        "    user: u\n"
                        "    database: d\n",
                  2, "t.yaml:6:5: missing key 'host' or 'socket' in rms[0]; expected one of "
                     "them\n");
    expect_errors("rms:\n" RM_OK, 1,
                  "t.yaml:1:1: missing required key 'tm' at the top level; expected");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l}\n", 1,
                  "t.yaml:1:1: missing required key 'rms' at the top level; expected a sequence "
                  "of RM entries\n");
}

static void test_bad_values(void)
{
    expect_errors("tm:\n"
                  "  id: tm.1\n"
                  "  socket: /s\n"
                  "  log_dir: /l\n"
                  "rms:\n" RM_OK,
                  1, "t.yaml:2:7: tm.id 'tm.1' is not a valid TM id; expected a TM id: 1 to 16 "
                     "characters from A-Z a-z 0-9 _ -\n");
    expect_errors("tm:\n"
                  "  id: abcdefghijklmnopq\n" /* 17 characters */
                  "  socket: /s\n"
                  "  log_dir: /l\n"
                  "rms:\n" RM_OK,
                  1, "t.yaml:2:7: tm.id 'abcdefghijklmnopq' is not a valid TM id");
    expect_errors(TM_OK "  - name: \"a\\nb\"\n"
                        "    type: mysql\n"
                        "    host: h\n"
                        "    user: u\n"
                        "    database: d\n",
                  1, "t.yaml:6:11: rms[0].name 'a\\nb' is not a valid RM name; expected an RM "
                     "name: 1 to 32 characters from A-Z a-z 0-9 _ -\n");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, socket_mode: 0999}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:51: tm.socket_mode '0999' is not an octal number; expected octal "
                  "permission bits such as 0660, at most 0777\n");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, socket_mode: 01777}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:51: tm.socket_mode '01777' has bits beyond 0777; expected");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, protocol: 4pc}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:48: tm.protocol '4pc' is not a commit protocol; expected 2pc or 3pc\n");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, participant_timeout_action: abort}\nrms:\n"
                  RM_OK, 1,
                  "t.yaml:1:66: tm.participant_timeout_action 'abort' is not a participant "
                  "timeout action; expected commit or wait\n");
    expect_errors("tm:\n  id: a\n  socket: /s\n  log_dir: /l\n"
                  "  participant_timeout_action: [commit]\nrms:\n" RM_OK, 1,
                  "t.yaml:5:31: tm.participant_timeout_action");
    /* tm.decision_rm must name a configured RM (checked once rms is read) */
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, decision_rm: pq}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:51: tm.decision_rm 'pq' names no RM of rms; expected the name of a "
                  "configured RM\n");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, decision_rm: [pg]}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:51: tm.decision_rm is a sequence; expected the name of a configured RM");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, decision_retention: 0}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:58: tm.decision_retention '0' is zero; expected a duration");
    {
        xatm_config *cfg = expect_ok("tm: {id: a, socket: /s, log_dir: /l, decision_rm: pg}\n"
                                     "rms:\n" RM_OK);
        if (cfg) CHECK_STR(cfg->decision_rm, "pg");
        xatm_config_free(cfg);
    }
    {
        /* case does not matter, as for protocol */
        xatm_config *cfg = expect_ok("tm: {id: a, socket: /s, log_dir: /l, "
                                     "participant_timeout_action: COMMIT}\nrms:\n" RM_OK);
        if (cfg) CHECK_INT(cfg->participant_timeout_action, XATM_PARTICIPANT_COMMIT);
        xatm_config_free(cfg);
    }
    expect_errors(TM_OK RM_OK "    port: 0\n", 1,
                  "t.yaml:11:11: rms[0].port '0' is out of range; expected a TCP port from 1 to "
                  "65535\n");
    expect_errors(TM_OK RM_OK "    port: 65536\n", 1, "t.yaml:11:11: rms[0].port '65536' is out");
    expect_errors(TM_OK RM_OK "    port: 54x\n", 1,
                  "t.yaml:11:11: rms[0].port '54x' is not a number; expected");

    /* unknown RM type, with and without a suggestion */
    expect_errors(TM_OK "  - name: pg\n"
                        "    type: postgres\n"
                        "    host: h\n"
                        "    user: u\n"
                        "    database: d\n",
                  1, "t.yaml:7:11: rms[0].type: unknown RM type 'postgres' (did you mean "
                     "'postgresql'?); expected postgresql, mysql or mariadb (an alias of mysql)\n");
    expect_errors(TM_OK "  - name: pg\n"
                        "    type: oracle\n"
                        "    host: h\n"
                        "    user: u\n"
                        "    database: d\n",
                  1, "t.yaml:7:11: rms[0].type: unknown RM type 'oracle'; expected postgresql");

    /* host and socket exclude each other: the later one is reported */
    expect_errors(TM_OK RM_OK "    socket: /run/postgresql\n", 1,
                  "t.yaml:11:5: rms[0] has both 'host' and 'socket' ('host' given at line 8); "
                  "expected exactly one of them\n");
}

static void test_format_id(void)
{
    static const struct {
        const char *text; /* tm.format_id as written */
        long long value;  /* expected value, or -1 for an error */
        const char *msg;  /* part of the error */
    } cases[] = {
        { "2", 2, NULL },
        { "0x78614d31", 0x78614d31, NULL },
        { "0X7FFFFFFF", 0x7fffffff, NULL },
        { "2147483647", 2147483647, NULL },
        { "0", -1, "tm.format_id '0' is reserved (0 marks a null XID); expected" },
        { "1", -1, "tm.format_id '1' is reserved (1 is MySQL's default formatID); expected" },
        { "0x0", -1, "'0x0' is reserved" },
        { "0x80000000", -1, "'0x80000000' does not fit in 31 bits" },
        { "2147483648", -1, "does not fit in 31 bits" },
        { "99999999999999999999999", -1, "does not fit in 31 bits" },
        { "-5", -1, "'-5' is not a number; expected an XA formatID from 2 to 2147483647" },
        { "0x", -1, "'0x' is not a number" },
        { "12abc", -1, "'12abc' is not a number" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        /* format_id is last in tm so the value column is fixed: line 5, column 14 */
        snprintf(yaml, sizeof yaml,
                 "tm:\n  id: a\n  socket: /s\n  log_dir: /l\n  format_id: %s\nrms:\n" RM_OK,
                 cases[i].text);
        if (cases[i].value >= 0) {
            xatm_config *cfg = expect_ok(yaml);
            if (cfg) CHECK_INT(cfg->format_id, cases[i].value);
            xatm_config_free(cfg);
        } else {
            char want[256];
            snprintf(want, sizeof want, "t.yaml:5:14: tm.format_id '%s'", cases[i].text);
            expect_errors(yaml, 1, want);
            expect_errors(yaml, 1, cases[i].msg);
        }
    }
}

static void test_durations(void)
{
    static const struct {
        const char *text; /* tm.request_timeout as written */
        long long ms;     /* expected value, or -1 for an error */
        const char *msg;  /* part of the error */
    } cases[] = {
        { "250", 250, NULL },
        { "250ms", 250, NULL },
        { "1s", 1000, NULL },
        { "1.5s", 1500, NULL },
        { "0.001s", 1, NULL },
        { "1.25m", 75000, NULL },
        { "2m", 120000, NULL },
        { "1h", 3600000, NULL },
        { "5 s", 5000, NULL },
        { "1.0", 1, NULL },
        { "4294967295", 4294967295LL, NULL },
        { "4294967295ms", 4294967295LL, NULL },
        { "1193h", 4294800000LL, NULL },
        { "4294967296", -1, "'4294967296' is too long; expected a duration greater than 0" },
        { "1194h", -1, "'1194h' is too long" },
        { "71583m", -1, "'71583m' is too long" },
        { "99999999999999999999999999h", -1, "is too long" },
        { "0", -1, "'0' is zero; expected a duration" },
        { "0s", -1, "'0s' is zero" },
        { "0.0001s", -1, "'0.0001s' is not a whole number of milliseconds" },
        { "1.5", -1, "'1.5' is not a whole number of milliseconds" },
        { "0.000000001h", -1, "is not a whole number of milliseconds" },
        { "abc", -1, "'abc' is not a duration; expected a duration greater than 0" },
        { "-1s", -1, "'-1s' is not a duration" },
        { "5sec", -1, "'5sec' is not a duration" },
        { "5S", -1, "'5S' is not a duration" },
        { ".5s", -1, "'.5s' is not a duration" },
        { "5.s", -1, "'5.s' is not a duration" },
        { "1d", -1, "'1d' is not a duration" },
        { "'5 5s'", -1, "'5 5s' is not a duration" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "tm:\n  id: a\n  socket: /s\n  log_dir: /l\n  request_timeout: %s\nrms:\n" RM_OK,
                 cases[i].text);
        if (cases[i].ms >= 0) {
            xatm_config *cfg = expect_ok(yaml);
            if (cfg) CHECK_INT(cfg->request_timeout_ms, cases[i].ms);
            xatm_config_free(cfg);
        } else {
            expect_errors(yaml, 1, "t.yaml:5:20: tm.request_timeout '");
            expect_errors(yaml, 1, cases[i].msg);
        }
    }
    /* the same parser for every duration key, including the RM's connect_timeout */
    expect_errors(TM_OK RM_OK "    connect_timeout: soon\n", 1,
                  "t.yaml:11:22: rms[0].connect_timeout 'soon' is not a duration; expected");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, transaction_timeout: ''}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:59: tm.transaction_timeout is empty; expected a duration");
    expect_errors("tm: {id: a, socket: /s, log_dir: /l, recovery_interval: ~}\nrms:\n" RM_OK, 1,
                  "t.yaml:1:57: tm.recovery_interval has no value; expected a duration");
    /* the 3PC timeouts */
    expect_errors("tm:\n  id: a\n  socket: /s\n  log_dir: /l\n  precommit_timeout: 0\nrms:\n" RM_OK,
                  1, "t.yaml:5:22: tm.precommit_timeout '0' is zero; expected a duration");
    expect_errors("tm:\n  id: a\n  socket: /s\n  log_dir: /l\n  participant_timeout: 10 sec\n"
                  "rms:\n" RM_OK,
                  1, "t.yaml:5:24: tm.participant_timeout '10 sec' is not a duration; expected");
    expect_errors("tm:\n  id: a\n  socket: /s\n  log_dir: /l\n  participant_timout: 1s\n"
                  "rms:\n" RM_OK,
                  1, "t.yaml:5:3: unknown key 'participant_timout' in tm (did you mean "
                     "'participant_timeout'?); expected one of");
}

static void test_sizes(void)
{
    static const struct {
        const char *text; /* tm.log_segment_size as written */
        long long bytes;  /* expected value, or -1 for an error */
        const char *msg;  /* part of the error */
    } cases[] = {
        { "65536", 65536, NULL },
        { "64KiB", 65536, NULL },
        { "64 KiB", 65536, NULL },
        { "16MiB", 16LL << 20, NULL },
        { "1GiB", 1LL << 30, NULL },
        { "8589934591GiB", 8589934591LL << 30, NULL },
        { "9223372036854775807", 9223372036854775807LL, NULL },
        { "65535", -1, "'65535' is smaller than 64KiB; expected a size of at least 64KiB" },
        { "63KiB", -1, "'63KiB' is smaller than 64KiB" },
        { "0", -1, "'0' is smaller than 64KiB" },
        { "8589934592GiB", -1, "'8589934592GiB' is too large" },
        { "9223372036854775808", -1, "'9223372036854775808' is too large" },
        { "18446744073709551616", -1, "is too large" },
        { "64KB", -1, "'64KB' is not a size; expected a size of at least 64KiB" },
        { "64kib", -1, "'64kib' is not a size" },
        { "1.5MiB", -1, "'1.5MiB' is not a size" },
        { "MiB", -1, "'MiB' is not a size" },
        { "-1", -1, "'-1' is not a size" },
        { "big", -1, "'big' is not a size" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "tm:\n  id: a\n  socket: /s\n  log_dir: /l\n  log_segment_size: %s\nrms:\n" RM_OK,
                 cases[i].text);
        if (cases[i].bytes >= 0) {
            xatm_config *cfg = expect_ok(yaml);
            if (cfg) CHECK_INT(cfg->log_segment_size, cases[i].bytes);
            xatm_config_free(cfg);
        } else {
            expect_errors(yaml, 1, "t.yaml:5:21: tm.log_segment_size '");
            expect_errors(yaml, 1, cases[i].msg);
        }
    }
}

static void test_socket_paths(void)
{
    char dir[200], yaml[1024], want[512];
    /* "/" + 80 d + "/" + 25 x = 107 bytes: fits, and so does the default admin socket */
    memset(dir, 'd', 80);
    dir[80] = '\0';
    snprintf(yaml, sizeof yaml,
             "tm:\n  id: a\n  log_dir: /l\n  socket: /%s/xxxxxxxxxxxxxxxxxxxxxxxxx\nrms:\n" RM_OK,
             dir);
    xatm_config *cfg = expect_ok(yaml);
    if (cfg) {
        CHECK_INT(strlen(cfg->socket_path), 107);
        CHECK_INT(strlen(cfg->admin_socket_path), 98);
    }
    xatm_config_free(cfg);

    /* 108 bytes: too long */
    snprintf(yaml, sizeof yaml,
             "tm:\n  id: a\n  log_dir: /l\n  socket: /%s/xxxxxxxxxxxxxxxxxxxxxxxxxx\nrms:\n" RM_OK,
             dir);
    expect_errors(yaml, 1, "t.yaml:4:11: tm.socket is 108 bytes long, too long for a Unix "
                           "socket; expected a Unix socket path of at most 107 bytes\n");
    snprintf(yaml, sizeof yaml,
             "tm:\n  id: a\n  log_dir: /l\n  socket: /s\n"
             "  admin_socket: /%s/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nrms:\n" RM_OK,
             dir);
    expect_errors(yaml, 1, "t.yaml:5:17: tm.admin_socket is 115 bytes long, too long");

    /* the AP socket fits but the default admin socket beside it would not */
    memset(dir, 'd', 90);
    dir[90] = '\0';
    snprintf(yaml, sizeof yaml,
             "tm:\n  id: a\n  log_dir: /l\n  socket: /%s/sssssssssssssss\nrms:\n" RM_OK, dir);
    snprintf(want, sizeof want,
             "t.yaml:4:11: tm.socket gives a default admin socket path of 108 bytes");
    expect_errors(yaml, 1, want);
    expect_errors(yaml, 1, "expected a shorter directory or an explicit tm.admin_socket of at most "
                           "107 bytes\n");

    /* admin socket equal to the AP socket, given or by default */
    expect_errors("tm:\n  id: a\n  log_dir: /l\n  socket: /s/x\n  admin_socket: /s/x\nrms:\n" RM_OK,
                  1, "t.yaml:5:17: tm.admin_socket and tm.socket are the same path '/s/x'; "
                     "expected two different sockets\n");
    expect_errors("tm:\n  id: a\n  log_dir: /l\n  socket: /s/xatmd-admin.sock\nrms:\n" RM_OK, 1,
                  "t.yaml:4:11: tm.admin_socket and tm.socket are the same path");

    /* a PostgreSQL socket directory leaves room for "/.s.PGSQL.<port>" */
    memset(dir, 'p', 96);
    dir[96] = '\0';
    snprintf(yaml, sizeof yaml,
             TM_OK "  - {name: p, type: postgresql, user: u, database: d, socket: /%s}\n", dir);
    expect_errors(yaml, 1, "t.yaml:6:63: rms[0].socket makes a socket path of 111 bytes, too long "
                           "for a Unix socket; expected at most 107 bytes including "
                           "'/.s.PGSQL.<port>'\n");
    snprintf(yaml, sizeof yaml,
             TM_OK "  - {name: p, type: mysql, user: u, database: d, socket: /%s}\n", dir);
    cfg = expect_ok(yaml);
    xatm_config_free(cfg);
}

static void test_duplicates(void)
{
    expect_errors(TM_OK RM_OK
                  "  - name: my\n"
                  "    type: mysql\n"
                  "    host: h\n"
                  "    user: u\n"
                  "    database: d\n"
                  "  - name: pg\n"
                  "    type: mysql\n"
                  "    host: h\n"
                  "    user: u\n"
                  "    database: d\n",
                  1, "t.yaml:16:11: duplicate RM name 'pg' in rms[2] (already used by rms[0] at "
                     "line 6); expected unique RM names\n");
    expect_errors("tm:\n"
                  "  id: a\n"
                  "  socket: /s\n"
                  "  id: b\n"
                  "  log_dir: /l\n"
                  "rms:\n" RM_OK,
                  1, "t.yaml:4:3: duplicate key 'id' in tm (first given at line 2); expected each "
                     "key at most once\n");
    expect_errors(TM_OK RM_OK "tm: {}\n", 1,
                  "t.yaml:11:1: duplicate key 'tm' in the top-level mapping (first given at line "
                  "1)");
}

static void test_yaml_level(void)
{
    expect_errors("", 1, "t.yaml:1:1: no YAML document (the file is empty or holds only "
                         "comments); expected a mapping with the keys 'tm' and 'rms'\n");
    expect_errors("# only a comment\n\n", 1, "t.yaml:1:1: no YAML document");
    expect_errors("---\n", 1, "t.yaml:2:1: the document is empty; expected a mapping with the "
                              "keys 'tm' and 'rms'\n");
    expect_errors(TM_OK RM_OK "---\nfoo: 1\n", 1,
                  "t.yaml:11:1: a second YAML document in the file; expected exactly one "
                  "document\n");
    /* syntax errors: libyaml's problem at its problem mark */
    expect_errors("tm:\n"
                  "  id: x\n"
                  " socket: /s\n",
                  1, "t.yaml:3:2: YAML syntax error: did not find expected key (while parsing a "
                     "block mapping that starts at line 1, column 1); expected well-formed YAML\n");
    expect_errors("tm: [a, b\nrms:\n", 1,
                  "t.yaml:2:4: YAML syntax error: did not find expected ',' or ']' (while "
                  "parsing a flow sequence that starts at line 1, column 5); expected");
    expect_errors("tm:\n  id: \"abc\n", 1, "t.yaml:3:1: YAML syntax error: found unexpected end of "
                                          "stream (while scanning a quoted scalar that starts at "
                                          "line 2, column 7)");
    expect_errors("tm:\n  id: t\xc3\xa9\xff\n", 1,
                  "t.yaml:2:9: YAML syntax error: invalid leading UTF-8 octet (byte 0xff); "
                  "expected UTF-8 text\n");
    expect_errors("tm:\n\tid: x\n", 1, "t.yaml:2:1: YAML syntax error: found character that "
                                       "cannot start any token");
    /* anchors, aliases and tags are refused, and the rest is still checked */
    expect_errors("tm: &t\n"
                  "  id: tm1\n"
                  "  socket: !!str /s\n"
                  "  log_dir: *t\n"
                  "rms:\n" RM_OK,
                  4, "t.yaml:1:5: anchors are not supported (found '&t'); expected every value "
                     "written out\n");
    expect_errors("tm: &t\n"
                  "  id: tm1\n"
                  "  socket: !!str /s\n"
                  "  log_dir: *t\n"
                  "rms:\n" RM_OK,
                  4, "t.yaml:3:11: tags are not supported (found 'tag:yaml.org,2002:str'); "
                     "expected an untagged value\n");
    expect_errors("tm: &t\n"
                  "  id: tm1\n"
                  "  socket: !!str /s\n"
                  "  log_dir: *t\n"
                  "rms:\n" RM_OK,
                  4, "t.yaml:4:12: aliases are not supported (found '*t'); expected every value "
                     "written out\n");
    expect_errors("tm: &t\n"
                  "  id: tm1\n"
                  "  socket: !!str /s\n"
                  "  log_dir: *t\n"
                  "rms:\n" RM_OK,
                  4, "t.yaml:4:12: tm.log_dir has no value; expected a directory path\n");
}

static void test_many_errors(void)
{
    /* one file, many mistakes: all reported, sorted by position, one per line */
    const char *yaml = "tm:\n"                          /* 1 */
                       "  id: bad id\n"                 /* 2 */
                       "  sockt: /s\n"                  /* 3 */
                       "  log_dir: /l\n"                /* 4 */
                       "  format_id: 1\n"               /* 5 */
                       "  transaction_timeout: 10x\n"   /* 6 */
                       "rms:\n"                         /* 7 */
                       "  - name: a\n"                  /* 8 */
                       "    type: db2\n"                /* 9 */
                       "    host: h\n"                  /* 10 */
                       "    user: u\n"                  /* 11 */
                       "    database: d\n"              /* 12 */
                       "    port: 99999\n"              /* 13 */
                       "  - name: a\n"                  /* 14 */
                       "    type: mysql\n"              /* 15 */
                       "    socket: /m\n"               /* 16 */
                       "    user: u\n"                  /* 17 */
                       "    database: d\n"              /* 18 */
                       "    password: x\n"              /* 19 */
                       "    password_file: /nonexistent/pw\n"; /* 20 */
    xatm_config *cfg = (xatm_config *)1;
    char *errs = NULL;
    CHECK_INT(load(yaml, &cfg, &errs), XATM_ECONFIG);
    CHECK(cfg == NULL);
    CHECK_INT(count_lines(errs), 9);
    check_error_format(errs);
    const char *order[] = {
        "t.yaml:2:3: missing required key 'socket' in tm",
        "t.yaml:2:7: tm.id 'bad id' is not a valid TM id",
        "t.yaml:3:3: unknown key 'sockt' in tm (did you mean 'socket'?); expected one of",
        "t.yaml:5:14: tm.format_id '1' is reserved",
        "t.yaml:6:24: tm.transaction_timeout '10x' is not a duration",
        "t.yaml:9:11: rms[0].type: unknown RM type 'db2'",
        "t.yaml:13:11: rms[0].port '99999' is out of range",
        "t.yaml:14:11: duplicate RM name 'a' in rms[1] (already used by rms[0] at line 8)",
        "t.yaml:20:5: rms[1] has both 'password' (line 19) and 'password_file'; expected at "
        "most one of password, password_env or password_file",
    };
    const char *at = errs;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *hit = at ? strstr(at, order[i]) : NULL;
        CHECK_CONTAINS(at, order[i]);
        CHECK(hit == at); /* the next line, in this order */
        at = hit ? strchr(hit, '\n') + 1 : at;
    }
    free(errs);

    /* errors may be NULL: the code alone */
    cfg = (xatm_config *)1;
    CHECK_INT(load(yaml, &cfg, NULL), XATM_ECONFIG);
    CHECK(cfg == NULL);
}

static void test_password_env(void)
{
    const char *yaml = TM_OK RM_OK "    password_env: XATM_TEST_CONFIG_PW\n";
    unsetenv("XATM_TEST_CONFIG_PW");
    expect_errors(yaml, 1, "t.yaml:11:19: rms[0].password_env: environment variable "
                           "'XATM_TEST_CONFIG_PW' is not set; expected the name of an "
                           "environment variable that is set when the configuration is loaded\n");
    setenv("XATM_TEST_CONFIG_PW", "s3cr\xc3\xa9t with spaces", 1);
    xatm_config *cfg = expect_ok(yaml);
    if (cfg) CHECK_STR(cfg->rms[0].password, "s3cr\xc3\xa9t with spaces");
    xatm_config_free(cfg);
    setenv("XATM_TEST_CONFIG_PW", "", 1); /* set but empty: an empty password */
    cfg = expect_ok(yaml);
    if (cfg) CHECK_STR(cfg->rms[0].password, "");
    xatm_config_free(cfg);
    unsetenv("XATM_TEST_CONFIG_PW");

    /* two sources: the later one is reported, naming the first */
    expect_errors(TM_OK RM_OK "    password_file: /nonexistent/x\n    password: p\n", 2,
                  "t.yaml:12:5: rms[0] has both 'password_file' (line 11) and 'password'; "
                  "expected at most one of password, password_env or password_file\n");
    expect_errors(TM_OK RM_OK "    password: [p]\n", 1,
                  "t.yaml:11:15: rms[0].password is a sequence; expected the password as a "
                  "string\n");
    expect_errors(TM_OK RM_OK "    password:\n", 1,
                  "t.yaml:11:14: rms[0].password has no value; expected the password as a string");
    /* an inline password keeps its exact text */
    cfg = expect_ok(TM_OK RM_OK "    password: ' p#w: x '\n");
    if (cfg) CHECK_STR(cfg->rms[0].password, " p#w: x ");
    xatm_config_free(cfg);
}

static char *write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, name) < 0) return NULL;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK_INT(fwrite(data, 1, len, f), len);
        fclose(f);
    }
    return path;
}

static void test_password_file(void)
{
    char *dir = t_tmpdir("config");
    static const struct {
        const char *name; /* file name */
        const char *data; /* content */
        size_t len;       /* content bytes */
        const char *want; /* resolved password */
    } cases[] = {
        { "nl", "secret\n", 7, "secret" },
        { "crlf", "secret\r\n", 8, "secret" },
        { "bare", "secret", 6, "secret" },
        { "two", "secret\n\n", 8, "secret\n" },  /* only one line break is stripped */
        { "space", " sec ret \n", 10, " sec ret " }, /* blanks are part of it */
        { "empty", "", 0, "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = write_file(dir, cases[i].name, cases[i].data, cases[i].len);
        char yaml[1024];
        snprintf(yaml, sizeof yaml, TM_OK RM_OK "    password_file: %s\n", path);
        xatm_config *cfg = expect_ok(yaml);
        if (cfg) CHECK_STR(cfg->rms[0].password, cases[i].want);
        xatm_config_free(cfg);
        unlink(path);
        free(path);
    }

    /* a file bigger than any read buffer is read whole */
    size_t big = 100000;
    char *data = malloc(big + 1);
    CHECK(data != NULL);
    if (data) {
        memset(data, 'k', big);
        data[big] = '\n';
        char *path = write_file(dir, "big", data, big + 1);
        char yaml[1024];
        snprintf(yaml, sizeof yaml, TM_OK RM_OK "    password_file: %s\n", path);
        xatm_config *cfg = expect_ok(yaml);
        if (cfg) CHECK_INT(strlen(cfg->rms[0].password), big);
        xatm_config_free(cfg);
        unlink(path);
        free(path);
        free(data);
    }

    /* a NUL byte cannot be passed on: refused, not truncated */
    char *path = write_file(dir, "nul", "ab\0cd\n", 6);
    char yaml[1024], want[1024];
    snprintf(yaml, sizeof yaml, TM_OK RM_OK "    password_file: %s\n", path);
    snprintf(want, sizeof want, "t.yaml:11:20: rms[0].password_file: '%s' contains a NUL byte; "
                                "expected a readable file holding the password (mode 0600)\n",
             path);
    expect_errors(yaml, 1, want);
    unlink(path);
    free(path);

    /* missing file */
    snprintf(yaml, sizeof yaml, TM_OK RM_OK "    password_file: %s/missing\n", dir);
    snprintf(want, sizeof want, "t.yaml:11:20: rms[0].password_file: cannot read '%s/missing': No "
                                "such file or directory; expected a readable file holding the "
                                "password (mode 0600)\n",
             dir);
    expect_errors(yaml, 1, want);

    /* a directory is not a password file */
    snprintf(yaml, sizeof yaml, TM_OK RM_OK "    password_file: %s\n", dir);
    expect_errors(yaml, 1, "t.yaml:11:20: rms[0].password_file: cannot read '");
    rmdir(dir);
    free(dir);
}

static void test_load_file(void)
{
    xatm_config *cfg = (xatm_config *)1;
    char *errs = NULL;
    CHECK_INT(xatm_config_load("/nonexistent/xatm.yaml", &cfg, &errs), XATM_EIO);
    CHECK(cfg == NULL);
    CHECK_STR(errs, "/nonexistent/xatm.yaml: cannot read the configuration file: No such file "
                    "or directory; expected a readable YAML file\n");
    free(errs);

    /* a file with mistakes: messages carry the path given */
    char *dir = t_tmpdir("config");
    const char *text = "tm:\n  id: x\nrms: []\n";
    char *path = write_file(dir, "bad.yaml", text, strlen(text));
    char want[1024];
    errs = NULL;
    CHECK_INT(xatm_config_load(path, &cfg, &errs), XATM_ECONFIG);
    snprintf(want, sizeof want, "%s:2:3: missing required key 'socket' in tm; expected", path);
    CHECK_CONTAINS(errs, want);
    snprintf(want, sizeof want, "%s:3:6: rms is empty; expected at least one RM entry\n", path);
    CHECK_CONTAINS(errs, want);
    CHECK_INT(count_lines(errs), 3);
    free(errs);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);

    /* bad arguments */
    CHECK_INT(xatm_config_load(NULL, &cfg, NULL), XATM_EINVAL);
    CHECK_INT(xatm_config_load("x", NULL, NULL), XATM_EINVAL);
    CHECK_INT(xatm_config_load_string("t", NULL, 3, &cfg, NULL), XATM_EINVAL);
    CHECK_INT(xatm_config_load_string("t", "", 0, NULL, NULL), XATM_EINVAL);
    xatm_config_free(NULL);
    CHECK_INT(xatm_config_rm_index(NULL, "x"), -1);
    CHECK_STR(xatm_rm_type_name((enum xatm_rm_type)0), "unknown");

    /* load_string honours len: text after it is not read */
    const char *two = TM_OK RM_OK "garbage: [";
    cfg = NULL;
    CHECK_INT(xatm_config_load_string("t.yaml", two, strlen(two) - strlen("garbage: ["), &cfg,
                                      NULL),
              0);
    xatm_config_free(cfg);
}

static void test_deep_nesting(void)
{
    /* deep nesting is an error, never a crash or a leak */
    size_t depth = 20000;
    size_t len = 4 + 2 * depth + 1;
    char *yaml = malloc(len + 1);
    CHECK(yaml != NULL);
    if (!yaml) return;
    memcpy(yaml, "tm: ", 4);
    memset(yaml + 4, '[', depth);
    memset(yaml + 4 + depth, ']', depth);
    yaml[len - 1] = '\n';
    yaml[len] = '\0';
    xatm_config *cfg = NULL;
    char *errs = NULL;
    CHECK_INT(xatm_config_load_string("t.yaml", yaml, len, &cfg, &errs), XATM_ECONFIG);
    CHECK_CONTAINS(errs, "t.yaml:1:5: tm is a sequence; expected a mapping");
    free(errs);
    free(yaml);
}

int main(void)
{
    test_example();
    test_defaults();
    test_unknown_keys();
    test_wrong_types();
    test_missing_required();
    test_bad_values();
    test_format_id();
    test_durations();
    test_sizes();
    test_socket_paths();
    test_duplicates();
    test_yaml_level();
    test_many_errors();
    test_password_env();
    test_password_file();
    test_load_file();
    test_deep_nesting();
    return t_finish("config");
}
