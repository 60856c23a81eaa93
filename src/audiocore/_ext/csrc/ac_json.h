/* A restricted JSON scanner for the fused protocol paths.
 *
 * It matches one JSON object against a shape (a small table of fields, each with its parent
 * field, the value types it accepts, whether it is required and, optionally, the string values
 * it may take) and records where each value lies in the text. It succeeds only on the plain
 * case it can answer exactly: ASCII text, no escapes in strings, integers without fraction or
 * exponent (at most 18 digits), every key known to the shape, no key twice. Anything else makes
 * it return 0, and the caller falls back to a full JSON parser, which gives the answer (or the
 * error) for the general case. Whitespace between tokens is allowed, as JSON allows it.
 *
 * A field that is null or absent reads as absent (AC_J_ABSENT); a required field must then be
 * present whenever its parent is. Keys may be compared ASCII-case-insensitively (shape->ci; the
 * names in the shape are then lower case).
 */
#ifndef AC_JSON_H
#define AC_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AC_JSON_MAX_FIELDS 16
#define AC_JSON_MAX_ALTS 4

enum {
    AC_J_ABSENT = 0,
    AC_J_STR = 1,
    AC_J_INT = 2,
    AC_J_TRUE = 3,
    AC_J_FALSE = 4,
    AC_J_NULL = 5,
    AC_J_OBJ = 6,
};

/* Masks of accepted value types. */
#define AC_JW_STR (1u << AC_J_STR)
#define AC_JW_INT (1u << AC_J_INT)
#define AC_JW_BOOL ((1u << AC_J_TRUE) | (1u << AC_J_FALSE))
#define AC_JW_OBJ (1u << AC_J_OBJ)
/* A count sent as a string of 1 to 18 decimal digits ("sequenceNumber": "3"): read as an
 * integer. */
#define AC_JW_DIGITS (1u << 8)

typedef struct {
    const uint8_t *name;  /* key (lower case when the shape is case-insensitive) */
    size_t name_len;
    int parent;           /* index of the enclosing object's field; -1 for the top level */
    unsigned want;        /* AC_JW_* mask; null is always accepted (as absent) */
    int required;
    int raw;              /* string checked by its consumer (base64): skip the character check */
    int nalts;            /* if > 0 the string must equal one of alts */
    const uint8_t *alts[AC_JSON_MAX_ALTS];
    size_t alt_len[AC_JSON_MAX_ALTS];
} ac_jfield;

typedef struct {
    ac_jfield f[AC_JSON_MAX_FIELDS];
    int n;
    int ci;
} ac_jshape;

typedef struct {
    const uint8_t *p;   /* string: first character after the opening quote */
    size_t n;           /* string: length */
    int64_t i;          /* integer value */
    int type;           /* AC_J_* */
    int alt;            /* index of the matched alternative */
} ac_jval;

static inline const uint8_t *ac_j_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static inline uint8_t ac_j_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
}

/* The characters a plain string may hold: printable ASCII but '"' and '\\'. */
static const uint8_t ac_j_plain_tab[256] = {
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    [0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5c '\\' */
    [0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* A string at *pp (just past the opening quote) without escapes or non-printable/non-ASCII
 * characters. On success *pp points past the closing quote. */
static inline int ac_j_plain_string(const uint8_t **pp, const uint8_t *end, const uint8_t **s,
                                    size_t *n)
{
    const uint8_t *p = *pp;
    while (end - p >= 4 && (ac_j_plain_tab[p[0]] & ac_j_plain_tab[p[1]] & ac_j_plain_tab[p[2]] &
                            ac_j_plain_tab[p[3]]))
        p += 4;
    while (p < end && ac_j_plain_tab[*p]) p++;
    if (p >= end || *p != '"') return 0;
    *s = *pp;
    *n = (size_t)(p - *pp);
    *pp = p + 1;
    return 1;
}

/* A long string whose characters its consumer validates (base64): find the closing quote and
 * make sure no escape lies before it. */
static inline int ac_j_raw_string(const uint8_t **pp, const uint8_t *end, const uint8_t **s,
                                  size_t *n)
{
    const uint8_t *p = *pp;
    const uint8_t *q = (const uint8_t *)memchr(p, '"', (size_t)(end - p));
    if (q == NULL) return 0;
    if (memchr(p, '\\', (size_t)(q - p)) != NULL) return 0;
    *s = p;
    *n = (size_t)(q - p);
    *pp = q + 1;
    return 1;
}

static inline int ac_j_key_is(const ac_jshape *sh, const ac_jfield *f, const uint8_t *k,
                              size_t n)
{
    if (f->name_len != n) return 0;
    if (!sh->ci) return memcmp(f->name, k, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (ac_j_lower(k[i]) != f->name[i]) return 0;
    return 1;
}

static int ac_j_object(const ac_jshape *sh, int parent, const uint8_t **pp, const uint8_t *end,
                       ac_jval *out);

static int ac_j_value(const ac_jshape *sh, int idx, const uint8_t **pp, const uint8_t *end,
                      ac_jval *out)
{
    const ac_jfield *f = &sh->f[idx];
    ac_jval *v = &out[idx];
    const uint8_t *p = *pp;
    if (p >= end) return 0;
    switch (*p) {
    case '"': {
        if (!(f->want & AC_JW_STR)) {
            if (!(f->want & AC_JW_DIGITS)) return 0;
            const uint8_t *d = ++p;
            int64_t x = 0;
            while (p < end && *p >= '0' && *p <= '9' && p - d < 19) x = x * 10 + (*p++ - '0');
            if (p == d || p - d > 18 || p >= end || *p != '"') return 0;
            v->i = x;
            v->type = AC_J_INT;
            p++;
            break;
        }
        p++;
        if (f->raw ? !ac_j_raw_string(&p, end, &v->p, &v->n)
                   : !ac_j_plain_string(&p, end, &v->p, &v->n))
            return 0;
        if (f->nalts > 0) {
            int k;
            for (k = 0; k < f->nalts; k++)
                if (f->alt_len[k] == v->n && memcmp(f->alts[k], v->p, v->n) == 0) break;
            if (k == f->nalts) return 0;
            v->alt = k;
        }
        v->type = AC_J_STR;
        break;
    }
    case '{':
        if (!(f->want & AC_JW_OBJ)) return 0;
        v->type = AC_J_OBJ;
        if (!ac_j_object(sh, idx, &p, end, out)) return 0;
        break;
    case 't':
        if (!(f->want & AC_JW_BOOL) || end - p < 4 || memcmp(p, "true", 4) != 0) return 0;
        v->type = AC_J_TRUE;
        p += 4;
        break;
    case 'f':
        if (!(f->want & AC_JW_BOOL) || end - p < 5 || memcmp(p, "false", 5) != 0) return 0;
        v->type = AC_J_FALSE;
        p += 5;
        break;
    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) return 0;
        v->type = AC_J_NULL;
        p += 4;
        break;
    default: {
        if (!(f->want & AC_JW_INT)) return 0;
        int neg = 0;
        if (*p == '-') {
            neg = 1;
            p++;
        }
        const uint8_t *d = p;
        int64_t x = 0;
        while (p < end && *p >= '0' && *p <= '9' && p - d < 19) x = x * 10 + (*p++ - '0');
        size_t digits = (size_t)(p - d);
        if (digits == 0 || digits > 18 || (digits > 1 && *d == '0')) return 0;
        /* a fraction, an exponent or a 19th digit: not ours to answer */
        if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
            return 0;
        v->i = neg ? -x : x;
        v->type = AC_J_INT;
        break;
    }
    }
    *pp = p;
    return 1;
}

/* An object at *pp (on its '{') whose keys are the fields with this parent. */
static int ac_j_object(const ac_jshape *sh, int parent, const uint8_t **pp, const uint8_t *end,
                       ac_jval *out)
{
    const uint8_t *p = *pp + 1;
    p = ac_j_ws(p, end);
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 1;
    }
    for (;;) {
        const uint8_t *k;
        size_t kn;
        int idx;
        if (p >= end || *p != '"') return 0;
        p++;
        if (!ac_j_plain_string(&p, end, &k, &kn)) return 0;
        for (idx = 0; idx < sh->n; idx++)
            if (sh->f[idx].parent == parent && ac_j_key_is(sh, &sh->f[idx], k, kn)) break;
        if (idx == sh->n || out[idx].type != AC_J_ABSENT) return 0; /* unknown or twice */
        p = ac_j_ws(p, end);
        if (p >= end || *p != ':') return 0;
        p = ac_j_ws(p + 1, end);
        if (!ac_j_value(sh, idx, &p, end, out)) return 0;
        p = ac_j_ws(p, end);
        if (p >= end) return 0;
        if (*p == ',') {
            p = ac_j_ws(p + 1, end);
            continue;
        }
        if (*p == '}') {
            *pp = p + 1;
            return 1;
        }
        return 0;
    }
}

/* Scans text[0:n]; returns 1 with out[] filled when the text is a plain instance of the shape,
 * 0 when the general parser must decide. */
static int ac_json_scan(const ac_jshape *sh, const uint8_t *text, size_t n, ac_jval *out)
{
    const uint8_t *p = text, *end = text + n;
    memset(out, 0, sizeof(ac_jval) * (size_t)sh->n);
    p = ac_j_ws(p, end);
    if (p >= end || *p != '{') return 0;
    if (!ac_j_object(sh, -1, &p, end, out)) return 0;
    if (ac_j_ws(p, end) != end) return 0;
    for (int i = 0; i < sh->n; i++) {
        if (out[i].type == AC_J_NULL) out[i].type = AC_J_ABSENT;
    }
    for (int i = 0; i < sh->n; i++) {
        const ac_jfield *f = &sh->f[i];
        /* Fields come after their parents in the table, so an absent parent was settled. */
        int parent_present = f->parent < 0 || out[f->parent].type == AC_J_OBJ;
        if (!parent_present) {
            out[i].type = AC_J_ABSENT;
        } else if (f->required && out[i].type == AC_J_ABSENT) {
            return 0;
        }
    }
    return 1;
}

#endif /* AC_JSON_H */
