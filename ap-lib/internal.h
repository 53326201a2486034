/*
 * internal.h — what the files of ap-lib share besides tmlink.h: the process-wide
 * one-time initialisation. Not installed, not exported.
 */
#ifndef XATM_AP_INTERNAL_H
#define XATM_AP_INTERNAL_H

#include <stddef.h>

/* Runs once per process, whichever thread comes first: arms the fault point named by
 * XATM_FAULT (fault.h) and initialises the MariaDB client library, whose implicit
 * initialisation inside mysql_init() is not thread-safe. Returns 0, or XATM_EINVAL when
 * XATM_FAULT is malformed, with the message copied to err (every later call returns the
 * same result). */
int xatm__lib_init(char *err, size_t errlen);

#endif
