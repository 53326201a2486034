/*
 * crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
 * decision-log record and segment header. A pure function of its arguments; its lookup
 * tables are built once, on first use (pthread_once: safe from any thread).
 *
 * Convention (the same as zlib's crc32()): start with crc = 0 and feed the bytes in any
 * number of calls; the pre- and post-inversion happen inside, so
 *     xatm_crc32c(xatm_crc32c(0, a, na), b, nb) == xatm_crc32c(0, ab, na + nb).
 * Check value: xatm_crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef XATM_CRC32C_H
#define XATM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues the CRC-32C `crc` (0 to start) over n bytes at p (p may be NULL when n is 0). */
uint32_t xatm_crc32c(uint32_t crc, const void *p, size_t n);

#endif
