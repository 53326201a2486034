/*
 * test_xid.c — unit tests of common/xid.c: names, gtrids, xids and PostgreSQL gids, both
 * ways, every rejection class, and the canonical-form property (whatever a parser accepts,
 * the formatter spells back identically).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "xatm.h"
#include "xid.h"

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void test_names(void)
{
    CHECK(xatm_tm_id_valid("tm1"));
    CHECK(xatm_tm_id_valid("A_b-9"));
    CHECK(xatm_tm_id_valid("0123456789abcdef")); /* 16 */
    CHECK(!xatm_tm_id_valid("0123456789abcdefg")); /* 17 */
    CHECK(!xatm_tm_id_valid(""));
    CHECK(!xatm_tm_id_valid(NULL));
    CHECK(!xatm_tm_id_valid("tm.1"));
    CHECK(!xatm_tm_id_valid("tm 1"));
    CHECK(!xatm_tm_id_valid("tm:1"));
    CHECK(!xatm_tm_id_valid("tm/1"));
    CHECK(!xatm_tm_id_valid("tm\xc3\xa9"));
    CHECK(!xatm_tm_id_valid("tm1\n"));

    CHECK(xatm_rm_name_valid("ledger_pg"));
    CHECK(xatm_rm_name_valid("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
    CHECK(!xatm_rm_name_valid("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    CHECK(!xatm_rm_name_valid(""));
    CHECK(!xatm_rm_name_valid(NULL));
    CHECK(!xatm_rm_name_valid("a:b"));
    CHECK(!xatm_rm_name_valid("a.b"));
    CHECK(!xatm_rm_name_valid("a'b"));
}

static void test_gtrid_format(void)
{
    char buf[XATM_GTRID_MAX + 1];
    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, "tm1", 7, 42), 0);
    CHECK_STR(buf, "tm1.7.42");
    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, "0123456789abcdef", UINT32_MAX, UINT64_MAX), 0);
    CHECK_STR(buf, "0123456789abcdef.4294967295.18446744073709551615");
    CHECK_INT((long long)strlen(buf), 48);

    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, "tm1", 0, 42), XATM_EINVAL);
    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, "tm1", 7, 0), XATM_EINVAL);
    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, "tm.1", 7, 42), XATM_EINVAL);
    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, "", 7, 42), XATM_EINVAL);
    CHECK_INT(xatm_gtrid_format(buf, sizeof buf, NULL, 7, 42), XATM_EINVAL);
    CHECK_INT(xatm_gtrid_format(NULL, 10, "tm1", 7, 42), XATM_EINVAL);

    /* exactly enough room, and one byte short (never a truncated id) */
    char small[9];
    CHECK_INT(xatm_gtrid_format(small, 9, "tm1", 7, 42), 0);
    CHECK_STR(small, "tm1.7.42");
    CHECK_INT(xatm_gtrid_format(small, 8, "tm1", 7, 42), XATM_EINVAL);
    CHECK_STR(small, "");
}

static void test_gtrid_parse(void)
{
    xatm_gtrid_parts p;
    CHECK_INT(xatm_gtrid_parse("tm1.7.42", &p), 0);
    CHECK_STR(p.tm_id, "tm1");
    CHECK_INT(p.epoch, 7);
    CHECK(p.seq == 42);
    CHECK_INT(xatm_gtrid_parse("0123456789abcdef.4294967295.18446744073709551615", &p), 0);
    CHECK_STR(p.tm_id, "0123456789abcdef");
    CHECK(p.epoch == UINT32_MAX);
    CHECK(p.seq == UINT64_MAX);
    CHECK_INT(xatm_gtrid_parse("a.1.1", NULL), 0);

    static const char *const bad[] = {
        "",
        "tm1",
        "tm1.7",
        "tm1.7.",
        "tm1..42",
        ".7.42",
        "tm1.07.42",                /* leading zero */
        "tm1.7.042",
        "tm1.0.42",                 /* epoch 0 is never issued */
        "tm1.7.0",                  /* seq 0 is never issued */
        "tm1.00.1",
        "tm1.+7.42",
        "tm1.-7.42",
        "tm1. 7.42",
        "tm1.7.42 ",
        " tm1.7.42",
        "tm1.7.42\n",
        "tm1.7.42.1",
        "tm1.7.4x",
        "tm1.0x7.42",
        "tm1.7e1.42",
        "tm1.4294967296.1",         /* u32 overflow */
        "tm1.99999999999.1",
        "tm1.1.18446744073709551616", /* u64 overflow */
        "tm1.1.99999999999999999999",
        "tm1.1.184467440737095516150",
        "0123456789abcdefg.1.1",     /* tm id of 17 */
        "tm 1.7.42",
        "tm:1.7.42",
        "tm1:7:42",
        "TM1.7.42\xff",
        "tm1.7.42aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = xatm_gtrid_parse(bad[i], &p);
        if (rc != XATM_EINVAL) fprintf(stderr, "accepted bad gtrid \"%s\"\n", bad[i]);
        CHECK_INT(rc, XATM_EINVAL);
    }
    CHECK_INT(xatm_gtrid_parse(NULL, &p), XATM_EINVAL);

    /* longer than XATM_GTRID_MAX, even if otherwise well formed */
    char longg[100];
    memset(longg, '1', sizeof longg - 1);
    longg[sizeof longg - 1] = '\0';
    memcpy(longg, "tm1.1.", 6);
    CHECK_INT(xatm_gtrid_parse(longg, &p), XATM_EINVAL);

    /* property: format -> parse is the identity on random valid parts */
    int mismatches = 0;
    for (int i = 0; i < 20000; i++) {
        char id[XATM_TM_ID_MAX + 1];
        static const char alpha[] = "ABCXYZabcxyz0123456789_-";
        size_t n = 1 + rng() % XATM_TM_ID_MAX;
        for (size_t k = 0; k < n; k++) id[k] = alpha[rng() % (sizeof alpha - 1)];
        id[n] = '\0';
        uint32_t epoch = (uint32_t)(rng() >> (rng() % 32)) | 1u;
        uint64_t seq = (rng() >> (rng() % 64)) | 1u;
        char g[XATM_GTRID_MAX + 1];
        xatm_gtrid_parts q;
        if (xatm_gtrid_format(g, sizeof g, id, epoch, seq) != 0 || xatm_gtrid_parse(g, &q) != 0 ||
            strcmp(q.tm_id, id) != 0 || q.epoch != epoch || q.seq != seq)
            mismatches++;
    }
    CHECK_INT(mismatches, 0);
}

static void test_xid_make(void)
{
    xatm_xid x;
    CHECK_INT(xatm_xid_make(&x, 0x78614d31u, "tm1.7.42", "ledger_pg"), 0);
    CHECK(x.format_id == 0x78614d31u);
    CHECK_STR(x.gtrid, "tm1.7.42");
    CHECK_STR(x.bqual, "ledger_pg");

    CHECK_INT(xatm_xid_make(&x, 0, "tm1.7.42", "pg"), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 1, "tm1.7.42", "pg"), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 2, "tm1.7.042", "pg"), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 2, "tm1.7.42", ""), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 2, "tm1.7.42", "a:b"), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 2, "tm1.7.42", "abcdefghijklmnopqrstuvwxyz0123456"), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 2, NULL, "pg"), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(&x, 2, "tm1.7.42", NULL), XATM_EINVAL);
    CHECK_INT(xatm_xid_make(NULL, 2, "tm1.7.42", "pg"), XATM_EINVAL);
}

static void test_pg_gid(void)
{
    xatm_xid x, y;
    char gid[XATM_PG_GID_MAX];

    CHECK_INT(xatm_xid_make(&x, 0x78614d31u, "tm1.7.42", "ledger_pg"), 0);
    CHECK_INT(xatm_xid_to_pg_gid(&x, gid, sizeof gid), 0);
    CHECK_STR(gid, "xatm:78614d31:tm1.7.42:ledger_pg");
    CHECK_INT(xatm_xid_from_pg_gid(gid, &y), 0);
    CHECK(memcmp(&x, &y, sizeof x) == 0);

    CHECK_INT(xatm_xid_make(&x, 2, "tm1.1.1", "p"), 0);
    CHECK_INT(xatm_xid_to_pg_gid(&x, gid, sizeof gid), 0);
    CHECK_STR(gid, "xatm:00000002:tm1.1.1:p");

    /* the longest possible gid is well under PostgreSQL's limit */
    CHECK_INT(xatm_xid_make(&x, 0xffffffffu, "0123456789abcdef.4294967295.18446744073709551615",
                            "abcdefghijklmnopqrstuvwxyz012345"),
              0);
    CHECK_INT(xatm_xid_to_pg_gid(&x, gid, sizeof gid), 0);
    CHECK(strlen(gid) < XATM_PG_GID_MAX);
    CHECK_INT(xatm_xid_from_pg_gid(gid, &y), 0);
    CHECK(memcmp(&x, &y, sizeof x) == 0);

    /* too small a buffer: EINVAL and an empty string, never a truncated gid */
    char small[10];
    CHECK_INT(xatm_xid_to_pg_gid(&x, small, sizeof small), XATM_EINVAL);
    CHECK_STR(small, "");

    /* invalid xids are refused */
    xatm_xid bad = x;
    bad.format_id = 1;
    CHECK_INT(xatm_xid_to_pg_gid(&bad, gid, sizeof gid), XATM_EINVAL);
    bad = x;
    memset(bad.gtrid, 'a', sizeof bad.gtrid); /* not NUL-terminated */
    CHECK_INT(xatm_xid_to_pg_gid(&bad, gid, sizeof gid), XATM_EINVAL);
    bad = x;
    strcpy(bad.bqual, "no spaces");
    CHECK_INT(xatm_xid_to_pg_gid(&bad, gid, sizeof gid), XATM_EINVAL);
    CHECK_INT(xatm_xid_to_pg_gid(NULL, gid, sizeof gid), XATM_EINVAL);

    static const char *const badgids[] = {
        "",
        "xatm:",
        "xatm:78614d31",
        "xatm:78614d31:",
        "xatm:78614d31:tm1.7.42",
        "xatm:78614d31:tm1.7.42:",           /* empty bqual */
        "xatm:78614d31:tm1.7.42:pg:x",       /* extra field */
        "xatm:78614d31:tm1.7.42:p g",
        "xatm:78614d31:tm1.7.42:pg\n",
        "XATM:78614d31:tm1.7.42:pg",         /* prefix is case-sensitive */
        "xatm-78614d31:tm1.7.42:pg",
        "pxatm:78614d31:tm1.7.42:pg",
        " xatm:78614d31:tm1.7.42:pg",
        "xatm:78614D31:tm1.7.42:pg",         /* uppercase hex is not canonical */
        "xatm:78614d3:tm1.7.42:pg",          /* 7 digits */
        "xatm:078614d31:tm1.7.42:pg",        /* 9 digits */
        "xatm:78614d3g:tm1.7.42:pg",
        "xatm:0x614d31:tm1.7.42:pg",
        "xatm:78614d31tm1.7.42:pg",
        "xatm:00000001:tm1.7.42:pg",         /* MySQL's default format id */
        "xatm:00000000:tm1.7.42:pg",
        "xatm:78614d31::pg",
        "xatm:78614d31:tm1.07.42:pg",
        "xatm:78614d31:tm1.0.42:pg",
        "xatm:78614d31:tm1.7.42.1:pg",
        "xatm:78614d31:tm1.4294967296.1:pg",
        "xatm:78614d31:tm1.7.42:abcdefghijklmnopqrstuvwxyz0123456",
        "xatm:78614d31:0123456789abcdefg.7.42:pg",
    };
    for (size_t i = 0; i < sizeof badgids / sizeof badgids[0]; i++) {
        memset(&y, 0x5a, sizeof y);
        xatm_xid before = y;
        int rc = xatm_xid_from_pg_gid(badgids[i], &y);
        if (rc != XATM_EINVAL) fprintf(stderr, "accepted bad gid \"%s\"\n", badgids[i]);
        CHECK_INT(rc, XATM_EINVAL);
        CHECK(memcmp(&y, &before, sizeof y) == 0); /* untouched on failure */
    }
    CHECK_INT(xatm_xid_from_pg_gid(NULL, &y), XATM_EINVAL);
    CHECK_INT(xatm_xid_from_pg_gid("xatm:78614d31:tm1.7.42:pg", NULL), XATM_EINVAL);

    /* a gid of XATM_PG_GID_MAX bytes or more is refused before anything else */
    char huge[300];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "xatm:78614d31:tm1.7.42:", 23);
    CHECK_INT(xatm_xid_from_pg_gid(huge, &y), XATM_EINVAL);
}

/* Mutates a valid gid at every position with a set of bytes; whatever is accepted must be
 * spelled back identically (canonical form), and nothing may crash. */
static void test_pg_gid_mutations(void)
{
    static const char base[] = "xatm:78614d31:tm1.7.42:ledger_pg";
    static const char subst[] = "\x01:.0179afAF-_ zx\xff";
    int accepted = 0, noncanonical = 0, total = 0;
    for (size_t pos = 0; pos < sizeof base - 1; pos++) {
        for (size_t k = 0; k < sizeof subst - 1; k++) {
            for (int op = 0; op < 3; op++) { /* replace, insert, delete */
                char g[64];
                size_t n = 0;
                for (size_t i = 0; i < sizeof base - 1; i++) {
                    if (i == pos && op == 0) {
                        g[n++] = subst[k];
                        continue;
                    }
                    if (i == pos && op == 1) g[n++] = subst[k];
                    if (i == pos && op == 2) continue;
                    g[n++] = base[i];
                }
                g[n] = '\0';
                xatm_xid x;
                char back[XATM_PG_GID_MAX];
                total++;
                if (xatm_xid_from_pg_gid(g, &x) != 0) continue;
                accepted++;
                if (xatm_xid_to_pg_gid(&x, back, sizeof back) != 0 || strcmp(back, g) != 0) {
                    fprintf(stderr, "non-canonical gid accepted: \"%s\"\n", g);
                    noncanonical++;
                }
            }
        }
    }
    CHECK_INT(noncanonical, 0);
    CHECK(accepted > 0 && accepted < total);
}

/* ---- the snprintf-based spelling and copying parser xid.c had before its hand-written
 * versions (0fb13e3^1), kept here as references for the differential test below ---- */

static bool ref_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static bool ref_decimal(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    if (*s < '1' || *s > '9') return false;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

static int ref_gtrid_parse(const char *gtrid, xatm_gtrid_parts *out)
{
    char tmp[XATM_GTRID_MAX + 1];
    size_t len = strnlen(gtrid, XATM_GTRID_MAX + 1);
    if (len == 0 || len > XATM_GTRID_MAX) return XATM_EINVAL;
    memcpy(tmp, gtrid, len);
    tmp[len] = '\0';
    const char *dot = strchr(tmp, '.');
    if (!dot) return XATM_EINVAL;
    size_t id_len = (size_t)(dot - tmp);
    if (id_len == 0 || id_len > XATM_TM_ID_MAX) return XATM_EINVAL;
    for (size_t i = 0; i < id_len; i++)
        if (!ref_name_char(tmp[i])) return XATM_EINVAL;
    const char *p = dot + 1;
    uint64_t epoch, seq;
    if (!ref_decimal(&p, UINT32_MAX, &epoch) || *p != '.') return XATM_EINVAL;
    p++;
    if (!ref_decimal(&p, UINT64_MAX, &seq) || *p != '\0') return XATM_EINVAL;
    memcpy(out->tm_id, tmp, id_len);
    out->tm_id[id_len] = '\0';
    out->epoch = (uint32_t)epoch;
    out->seq = seq;
    return 0;
}

/* Compares the parser (alone and inside a gid) with the reference on s. */
static void diff_parse(const char *s)
{
    xatm_gtrid_parts a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int ra = ref_gtrid_parse(s, &a), rb = xatm_gtrid_parse(s, &b);
    if (ra != rb) t_fail_(__FILE__, __LINE__, "gtrid '%s': reference %d, xid.c %d", s, ra, rb);
    if (ra == 0 && rb == 0 &&
        (strcmp(a.tm_id, b.tm_id) != 0 || a.epoch != b.epoch || a.seq != b.seq))
        t_fail_(__FILE__, __LINE__, "gtrid '%s': parts differ", s);
    char gid[256];
    snprintf(gid, sizeof gid, "%s0000abcd:%s:rm1", XATM_PG_GID_PREFIX, s);
    xatm_xid x;
    CHECK_INT(xatm_xid_from_pg_gid(gid, &x), ra == 0 ? 0 : XATM_EINVAL);
}

/* The hand-written spelling, parsing and copying against snprintf and the old parser at
 * the boundaries: longest TM id, epoch and seq at 0, 1, powers of ten and their maxima,
 * every output size around the length, leading zeros, overflow by one, empty fields,
 * trailing bytes; then random mutations of valid gtrids. */
static void test_differential(void)
{
    const char *ids[] = {"t", "tm1", "0123456789abcdef"};
    const uint32_t epochs[] = {1, 9, 10, 999999999u, 1000000000u, UINT32_MAX - 1, UINT32_MAX};
    const uint64_t seqs[] = {1, 9, 10, 4294967295ull, 4294967296ull, 9999999999999999999ull,
                             10000000000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        for (size_t e = 0; e < sizeof epochs / sizeof *epochs; e++)
            for (size_t q = 0; q < sizeof seqs / sizeof *seqs; q++) {
                char ref[XATM_GTRID_MAX + 1];
                int n = snprintf(ref, sizeof ref, "%s.%lu.%llu", ids[i],
                                 (unsigned long)epochs[e], (unsigned long long)seqs[q]);
                for (size_t size = 0; size <= (size_t)n + 2; size++) {
                    char buf[XATM_GTRID_MAX + 8];
                    memset(buf, '#', sizeof buf);
                    int rc = xatm_gtrid_format(buf, size, ids[i], epochs[e], seqs[q]);
                    if ((size_t)n < size) {
                        CHECK_INT(rc, 0);
                        CHECK_STR(buf, ref);
                    } else {
                        CHECK_INT(rc, XATM_EINVAL);
                        if (size) CHECK_INT(buf[0], '\0');
                    }
                    CHECK(buf[size] == '#'); /* nothing written at or past size */
                }
                diff_parse(ref);
                char digits[24];
                size_t d = xatm_put_decimal(digits, seqs[q]);
                digits[d] = '\0';
                char want[24];
                snprintf(want, sizeof want, "%llu", (unsigned long long)seqs[q]);
                CHECK_STR(digits, want);

                /* the gid of this gtrid with the longest bqual, against snprintf */
                xatm_xid x;
                const char *bq = "abcdefghijklmnopqrstuvwxyz012345"; /* 32 */
                CHECK_INT(xatm_xid_make(&x, 0xfedcba98u, ref, bq), 0);
                char gref[XATM_PG_GID_MAX];
                int gn = snprintf(gref, sizeof gref, "%s%08lx:%s:%s", XATM_PG_GID_PREFIX,
                                  0xfedcba98ul, ref, bq);
                for (size_t size = (size_t)gn - 1; size <= (size_t)gn + 1; size++) {
                    char g[XATM_PG_GID_MAX + 8];
                    memset(g, '#', sizeof g);
                    int rc = xatm_xid_to_pg_gid(&x, g, size);
                    CHECK_INT(rc, (size_t)gn < size ? 0 : XATM_EINVAL);
                    if (rc == 0) CHECK_STR(g, gref);
                    CHECK(g[size] == '#');
                }
            }
    CHECK_INT(xatm_put_decimal((char[24]){0}, 0), 1);

    const char *cases[] = {
        "tm1.1.1", "tm1.01.1", "tm1.1.01", "tm1.0.1", "tm1.1.0", "tm1.00.1", "tm1..1",
        "tm1.1.", "tm1.1", "tm1.", "tm1", ".1.1", "", ".", "..", "tm1.1..1", "tm1.1.1.",
        "tm1.1.1.1", "tm1.4294967295.1", "tm1.4294967296.1", "tm1.42949672950.1",
        "tm1.1.18446744073709551615", "tm1.1.18446744073709551616",
        "tm1.1.99999999999999999999", "tm1.1.184467440737095516150", "tm1.1.1x", "tm1.1.1 ",
        "tm1.1.1\n", "tm1.+1.1", "tm1.1.-1", "tm1.1.1:rm", "tm 1.1.1", "a-_Z.1.1",
        "0123456789abcdef.4294967295.18446744073709551615", "0123456789abcdefg.1.1",
        "x.1.0000000000000000000000000000000000000000000000000000000000001",
        "x.1.11111111111111111111111111111111111111111111111111111111111",
        "x.1.111111111111111111111111111111111111111111111111111111111111",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) diff_parse(cases[i]);

    const char alphabet[] = "0123456789.ab-_Z: +\x01\xff";
    for (int it = 0; it < 200000; it++) {
        char s[80];
        snprintf(s, sizeof s, "%s.%llu.%llu", ids[rng() % 3],
                 (unsigned long long)(rng() >> (rng() % 64)),
                 (unsigned long long)(rng() >> (rng() % 64)));
        size_t n = strlen(s);
        for (int m = (int)(rng() % 3); m > 0 && n > 0; m--) {
            size_t pos = rng() % n;
            char c = alphabet[rng() % (sizeof alphabet - 1)];
            switch (rng() % 3) {
            case 0: s[pos] = c; break;
            case 1:
                if (n + 2 < sizeof s) {
                    memmove(s + pos + 1, s + pos, n - pos + 1);
                    s[pos] = c;
                    n++;
                }
                break;
            default:
                memmove(s + pos, s + pos + 1, n - pos);
                n--;
            }
        }
        diff_parse(s);
    }
}

/* xatm_str_copy is snprintf(dst, size, "%s", src) at every size around src's length. */
static void test_str_copy(void)
{
    const char *src = "0123456789abcdef.4294967295.18446744073709551615";
    size_t len = strlen(src);
    for (size_t size = 1; size <= len + 2; size++) {
        char a[64], b[64];
        memset(a, '#', sizeof a);
        memset(b, '#', sizeof b);
        snprintf(a, size, "%s", src);
        CHECK(xatm_str_copy(b, size, src) == b);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
}

int main(void)
{
    test_names();
    test_gtrid_format();
    test_gtrid_parse();
    test_xid_make();
    test_pg_gid();
    test_pg_gid_mutations();
    test_differential();
    test_str_copy();
    return t_finish("xid");
}
