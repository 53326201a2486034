/*
 * test_header.c — the public header is self-contained: it is included first and alone
 * (no other header before it), and what it declares links against libxatm.
 */
#include "xatm.h"

#include "testutil.h"

int main(void)
{
    CHECK_STR(xatm_errname(XATM_EABORTED), "EABORTED");
    CHECK_STR(xatm_errname(0), "OK");
    CHECK_STR(xatm_errname(-9999), "EUNKNOWNCODE");
    CHECK_STR(xatm_strerror(XATM_EUNKNOWN), "outcome unknown; the transaction manager will resolve it");
    /* every code in the table has a distinct name and a message */
#define CHECK_CODE_(name, value, msg)                                                        \
    CHECK_STR(xatm_errname(value), #name);                                                   \
    CHECK_STR(xatm_strerror(value), msg);
    XATM_ERRNO_MAP(CHECK_CODE_)
#undef CHECK_CODE_
    return t_finish("header");
}
