/*
 * faultio.h — a fault-injecting file layer for xatmd's decision log: an xatm_declog_io
 * table that behaves exactly like the POSIX default until the io fault point
 * "tm.log_write" fires (common/fault.h), and then fills the disk or tears a write. It
 * exists for crash tests (scripts/crash-campaign.sh, tests/unit/test_faultio.c); tm/main.c
 * installs it only when XATM_FAULT arms "tm.log_write", so a normal xatmd never runs it.
 *
 * Every pwrite of the log (records, segment headers and checkpoints, and each write of at
 * most 256 KiB that zero-fills a segment) is one hit of "tm.log_write"; with
 * XATM_FAULT=tm.log_write@<n>:<action> the n-th write does:
 *
 *   enospc  the write fails with ENOSPC before storing anything, and from then on every
 *           write, and every open that could create a file, fails with ENOSPC too, as on a
 *           full disk. The declog turns that into its sticky XATM_ENOSPC and xatmd stops.
 *   torn    the write stores only a prefix of its buffer — a length in [0, n) picked by a
 *           seeded generator — and then the process raises SIGKILL: a crash in the middle of
 *           a write that was never fdatasync'd. The kernel keeps the prefix, and the rest of
 *           the range keeps what the file held (the zeros of a zero-filled segment), so the
 *           next start sees a torn tail (docs/durability.md, section 5).
 *
 * Invariants:
 *   - a torn write never cuts data that is already in the file: it stores a prefix of its
 *     buffer and leaves every other byte as it was;
 *   - before the point fires, every call is the plain POSIX call (EINTR retried, short
 *     writes returned as they are), so the declog's own behaviour is unchanged;
 *   - the prefix length is a pure function of the seed and the buffer length: the same
 *     XATM_FAULT and seed tear the same write at the same byte.
 *
 * Not thread-safe by itself: the declog is only used under the TM's log_mu.
 */
#ifndef XATM_TM_FAULTIO_H
#define XATM_TM_FAULTIO_H

#include <stdint.h>

#include "declog.h"

typedef struct tm_faultio tm_faultio; /* opaque */

/* A layer whose torn prefix lengths come from `seed`. NULL on out of memory. */
tm_faultio *tm_faultio_new(uint64_t seed);

/* The io table to put in xatm_declog_options.io; valid while f lives. */
const xatm_declog_io *tm_faultio_io(tm_faultio *f);

/* The prefix length a torn write of n bytes stores with this seed (n > 0: in [0, n)). */
uint64_t tm_faultio_torn_length(uint64_t seed, uint64_t n);

/* Frees the layer (after the log using it was closed). NULL accepted. */
void tm_faultio_free(tm_faultio *f);

#endif
