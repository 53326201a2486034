/*
 * config.h — the one YAML configuration shared by xatmd, libxatm and xatmctl (libyaml).
 * docs/configuration.md is the reference for every key; config/xatm.example.yaml is a
 * complete, commented example. Owns the parsed xatm_config and everything it points to.
 *
 * Invariants of a successfully loaded config: every required key is present, every value
 * has been type- and range-checked, RM names are unique and valid (xatm_rm_name_valid),
 * the TM id is valid, passwords have been resolved (inline, from an environment variable
 * or from a file with the trailing newline stripped), durations are in milliseconds.
 * Loading reports every mistake it finds (not just the first) as
 *     <file>:<line>:<column>: <what is wrong>; expected <what was expected>
 * lines and columns are 1-based.
 */
#ifndef XATM_CONFIG_H
#define XATM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xatm_rm_type { XATM_RM_POSTGRESQL = 1, XATM_RM_MYSQL = 2 };

/* 3PC: what libxatm does when DoCommit does not come after it acknowledged PreCommit
 * (docs/protocols.md). */
enum xatm_participant_action {
    XATM_PARTICIPANT_COMMIT = 1, /* "commit": commit every prepared branch (default) */
    XATM_PARTICIPANT_WAIT = 2,   /* "wait": keep waiting for xatmd, as 2PC does */
};

/* One resource manager. */
typedef struct xatm_rm_config {
    char *name;                  /* unique RM name; also the XA bqual */
    enum xatm_rm_type type;      /* postgresql | mysql */
    char *host;                  /* host name or address; NULL when socket is used */
    uint16_t port;               /* TCP port (default 5432 / 3306) */
    char *socket;                /* Unix socket path (PG: directory), or NULL */
    char *user;                  /* login role / user */
    char *password;              /* resolved password, or NULL for none */
    char *database;              /* database / schema name */
    uint32_t connect_timeout_ms; /* default 5000 */
    int line, column;            /* where this RM's entry starts in the file */
} xatm_rm_config;

/* The whole file. */
typedef struct xatm_config {
    char *path;                   /* the file it was read from */
    char *tm_id;                  /* tm.id */
    uint32_t format_id;           /* tm.format_id: XA formatID, default 0x78614d31 ("xaM1") */
    char *socket_path;            /* tm.socket: the AP socket */
    char *admin_socket_path;      /* tm.admin_socket: the xatmctl socket */
    uint32_t socket_mode;         /* tm.socket_mode: permission bits of tm.socket, default 0660 */
    char *log_dir;                /* tm.log_dir: decision log directory */
    uint64_t log_segment_size;    /* tm.log_segment_size: bytes, default 16 MiB */
    uint32_t transaction_timeout_ms; /* tm.transaction_timeout: default 60 s */
    uint32_t request_timeout_ms;  /* tm.request_timeout: how long libxatm waits for xatmd, default 30 s */
    uint32_t recovery_interval_ms;/* tm.recovery_interval: periodic recovery, default 10 s */
    uint8_t default_protocol;     /* tm.protocol: 2 or 3 (enum xatm_protocol) */
    uint32_t precommit_timeout_ms;  /* tm.precommit_timeout: 3PC, how long xatmd waits for the
                                       PreCommit acknowledgement before aborting; default 5 s */
    uint32_t participant_timeout_ms;/* tm.participant_timeout: 3PC, how long libxatm waits for
                                       DoCommit after acknowledging PreCommit; default 10 s */
    uint8_t participant_timeout_action; /* tm.participant_timeout_action (enum
                                       xatm_participant_action): what libxatm does then */
    char *decision_rm;            /* tm.decision_rm: the RM whose branch decides a 2PC commit
                                     (docs/protocols.md, "Decision in a branch"); NULL = off.
                                     Always names a configured RM */
    uint32_t decision_retention_ms; /* tm.decision_retention: how long xatmd keeps abort rows
                                     (and orphaned commit rows) of xatm_decisions; default 24 h */
    xatm_rm_config *rms;          /* rms: array of n_rms */
    size_t n_rms;
} xatm_config;

/* Loads and validates `path`. On success 0 and *out (free with xatm_config_free). On
 * failure XATM_ECONFIG (or XATM_ENOMEM / XATM_EIO) and, if errors is not NULL, *errors is a
 * malloc'd text with one "file:line:column: message" line per mistake (caller frees). */
int xatm_config_load(const char *path, xatm_config **out, char **errors);
/* Details of the above: on success *errors is NULL. XATM_EIO means the file itself could
 * not be read; its one error line is "<file>: <message>" (there is no position). With
 * XATM_ENOMEM, *errors may be NULL. A YAML syntax error is the only error reported for its
 * file (libyaml cannot parse past it). Bad arguments (NULL path or out) are XATM_EINVAL. */

/* Same, from a string (for tests); `name` is used as the file name in messages. */
int xatm_config_load_string(const char *name, const char *yaml, size_t len, xatm_config **out,
                            char **errors);

void xatm_config_free(xatm_config *cfg);

/* The RM called `name`, or NULL. */
const xatm_rm_config *xatm_config_rm(const xatm_config *cfg, const char *name);
/* Index of RM `name`, or -1. */
int xatm_config_rm_index(const xatm_config *cfg, const char *name);

const char *xatm_rm_type_name(enum xatm_rm_type t);

#endif
