/*
 * direct.c — libxatm's helpers for tools that work beside xatmd rather than through it:
 * plain sessions to a configured RM (no xatmd, no global transaction, autocommit) and the
 * config's XA formatID, so that a setup script or a consistency check reads the same
 * config file as the application and never duplicates connection settings.
 *
 * Owns nothing after returning: the caller owns the native connection it gets.
 * These are independent of any xatm_t handle and safe to call from any thread.
 */
#include "xatm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <mysql.h>

#include "config.h"
#include "internal.h"

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (!err || !errlen) return;
    snprintf(err, errlen, "%s", msg);
    size_t len = strlen(err);
    while (len > 0 && err[len - 1] == '\n') err[--len] = '\0';
}

/* Loads the config into *cfg; on failure the loader's text (or the code's) is in err. */
static int load(const char *config_path, xatm_config **cfg, char *err, size_t errlen)
{
    if (!config_path) {
        set_err(err, errlen, "config path is NULL");
        return XATM_EINVAL;
    }
    char *errors = NULL;
    int rc = xatm_config_load(config_path, cfg, &errors);
    if (rc) set_err(err, errlen, errors && *errors ? errors : xatm_strerror(rc));
    free(errors);
    return rc;
}

/* Loads the config and finds RM `name` of type `want`. */
static int load_rm(const char *config_path, const char *name, enum xatm_rm_type want,
                   xatm_config **cfg, const xatm_rm_config **rm, char *err, size_t errlen)
{
    char msg[512];
    int rc = load(config_path, cfg, err, errlen);
    if (rc) return rc;
    *rm = name ? xatm_config_rm(*cfg, name) : NULL;
    if (!*rm) {
        snprintf(msg, sizeof msg, "no RM named '%s' in %s", name ? name : "(null)", config_path);
        rc = XATM_ENOTFOUND;
        goto free_cfg;
    }
    if ((*rm)->type != want) {
        snprintf(msg, sizeof msg, "RM '%s' is %s, not %s", name, xatm_rm_type_name((*rm)->type),
                 xatm_rm_type_name(want));
        rc = XATM_EINVAL;
        goto free_cfg;
    }
    return 0;

free_cfg:
    set_err(err, errlen, msg);
    xatm_config_free(*cfg);
    *cfg = NULL;
    return rc;
}

XATM_EXPORT int xatm_pg_connect(const char *config_path, const char *rm, struct pg_conn **out,
                                char *err, size_t errlen)
{
    if (!out) return XATM_EINVAL;
    *out = NULL;
    xatm_config *cfg;
    const xatm_rm_config *r;
    int rc = load_rm(config_path, rm, XATM_RM_POSTGRESQL, &cfg, &r, err, errlen);
    if (rc) return rc;

    char port[16], timeout[16];
    snprintf(port, sizeof port, "%u", (unsigned)r->port);
    unsigned secs = (r->connect_timeout_ms + 999) / 1000;
    snprintf(timeout, sizeof timeout, "%u", secs < 2 ? 2 : secs);
    const char *keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout",
                          "application_name", NULL};
    const char *vals[] = {r->host ? r->host : r->socket, port, r->user, r->password,
                          r->database, timeout, program_invocation_short_name, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "cannot connect to RM '%s' (postgresql at %s:%u): %s", r->name,
                 r->host ? r->host : r->socket ? r->socket : "(default)", (unsigned)r->port,
                 c ? PQerrorMessage(c) : "out of memory");
        set_err(err, errlen, msg);
        PQfinish(c);
        rc = XATM_ERMUNAVAIL;
        goto free_cfg;
    }
    *out = c;
    rc = 0;

free_cfg:
    xatm_config_free(cfg);
    return rc;
}

XATM_EXPORT int xatm_mysql_connect(const char *config_path, const char *rm,
                                   struct st_mysql **out, char *err, size_t errlen)
{
    if (!out) return XATM_EINVAL;
    *out = NULL;
    int rc = xatm__lib_init(NULL, 0); /* MariaDB client init must not race */
    (void)rc;                         /* a bad XATM_FAULT does not concern a tool */
    xatm_config *cfg;
    const xatm_rm_config *r;
    rc = load_rm(config_path, rm, XATM_RM_MYSQL, &cfg, &r, err, errlen);
    if (rc) return rc;

    MYSQL *c = mysql_init(NULL);
    if (!c) {
        set_err(err, errlen, "out of memory");
        rc = XATM_ENOMEM;
        goto free_cfg;
    }
    unsigned secs = (r->connect_timeout_ms + 999) / 1000;
    if (secs == 0) secs = 1;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    if (!mysql_real_connect(c, r->host, r->user, r->password, r->database, r->port, r->socket,
                            0)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "cannot connect to RM '%s' (mysql at %s:%u): %s", r->name,
                 r->host ? r->host : r->socket ? r->socket : "(default)", (unsigned)r->port,
                 mysql_error(c));
        set_err(err, errlen, msg);
        rc = XATM_ERMUNAVAIL;
        goto close_conn;
    }
    *out = c;
    rc = 0;
    goto free_cfg;

close_conn:
    mysql_close(c);
free_cfg:
    xatm_config_free(cfg);
    return rc;
}

XATM_EXPORT int xatm_config_format_id(const char *config_path, uint32_t *format_id, char *err,
                                      size_t errlen)
{
    if (!format_id) return XATM_EINVAL;
    xatm_config *cfg;
    int rc = load(config_path, &cfg, err, errlen);
    if (rc) return rc;
    *format_id = cfg->format_id;
    xatm_config_free(cfg);
    return 0;
}
