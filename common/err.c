/*
 * err.c — the one table of xatm error codes (XATM_ERRNO_MAP in xatm.h) turned into names
 * and messages. Owns nothing else.
 */
#include "xatm.h"

XATM_EXPORT const char *xatm_errname(int err)
{
    switch (err) {
    case XATM_OK:
        return "OK";
#define XATM_ERR_NAME_(name, value, msg)                                                     \
    case XATM_##name:                                                                        \
        return #name;
        XATM_ERRNO_MAP(XATM_ERR_NAME_)
#undef XATM_ERR_NAME_
    default:
        return "EUNKNOWNCODE";
    }
}

XATM_EXPORT const char *xatm_strerror(int err)
{
    switch (err) {
    case XATM_OK:
        return "success";
#define XATM_ERR_MSG_(name, value, msg)                                                      \
    case XATM_##name:                                                                        \
        return msg;
        XATM_ERRNO_MAP(XATM_ERR_MSG_)
#undef XATM_ERR_MSG_
    default:
        return "unknown error code";
    }
}
