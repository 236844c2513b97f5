/* password.c -- argon2id hashing through libargon2 (see password.h).
 *
 * Key decision: every hash and every verification passes one counting gate
 * (a mutex and a condition variable) that lets `slots` of them run and
 * `slots` more wait, and turns any further caller away at once with
 * EL_EUNAVAIL. An argon2id hash at the default cost holds 19 MiB and a core
 * for tens of milliseconds; without the gate a burst of logins would take
 * every worker thread and every core from the course reads, and memory
 * would grow with the burst. With it, memory is bounded by 2 * slots
 * hashes' worth at most and a worker never waits longer than two hashes.
 *
 * The encoded PHC string ($argon2id$v=19$m=..,t=..,p=..$salt$hash) is parsed
 * here too, for el_password_needs_rehash() and to refuse a stored hash whose
 * parameters no configuration of ours would produce before argon2 is asked
 * to spend them (a corrupted "t=4000000000" would otherwise hold a slot for
 * hours).
 *
 * The dummy hash behind el_password_verify_dummy() is made lazily, the first
 * time it is needed, with the parameters current then; el_password_setup()
 * discards it, so after a change of costs the dummy still costs what a real
 * verification costs. (A pthread_once dummy would keep the costs of its
 * first use forever.) */
#include "auth/password.h"
#include "auth/testing.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <argon2.h>
#include <openssl/rand.h>

#define SALT_LEN 16
#define HASH_LEN 32
#define PREFIX "$argon2id$"
#define VERSION 19 /* ARGON2_VERSION_13 */

/* Bounds on parameters, for setup and for hashes read back from the store.
 * The upper ones are far above anything a web login should cost. */
#define M_MAX_KIB (4u * 1024 * 1024) /* 4 GiB */
#define T_MAX 256u
#define P_MAX 64u

static const struct el_password_params defaults = {19456, 2, 1};

/* The gate and the process-wide settings, all under mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_free = PTHREAD_COND_INITIALIZER;
static struct el_password_params cur = {19456, 2, 1};
static int slots;   /* 0 until set: then the number of online CPUs */
static int running; /* hashes in progress */
static int waiting; /* callers queued for a slot */

/* The dummy hash, under dummy_mu (taken before mu, never after). */
static pthread_mutex_t dummy_mu = PTHREAD_MUTEX_INITIALIZER;
static char dummy[EL_PASSWORD_HASH_MAX];
static int dummy_ready;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi, uint32_t dflt)
{
    if (v == 0)
        return dflt;
    return v < lo ? lo : v > hi ? hi : v;
}

void el_password_setup(const struct el_password_params *params, int nslots)
{
    struct el_password_params p = params ? *params : defaults;

    p.parallelism = clamp(p.parallelism, 1, P_MAX, defaults.parallelism);
    p.t_cost = clamp(p.t_cost, ARGON2_MIN_TIME, T_MAX, defaults.t_cost);
    /* argon2 needs 8 KiB per lane at least. */
    p.m_cost_kib = clamp(p.m_cost_kib, 8 * p.parallelism, M_MAX_KIB, defaults.m_cost_kib);

    el_must(pthread_mutex_lock(&dummy_mu));
    el_must(pthread_mutex_lock(&mu));
    cur = p;
    slots = nslots > 0 ? nslots : online_cpus();
    pthread_cond_broadcast(&slot_free); /* there may be more slots now */
    el_must(pthread_mutex_unlock(&mu));
    dummy_ready = 0;
    el_must(pthread_mutex_unlock(&dummy_mu));
}

int el_password_inflight(void)
{
    int n;

    el_must(pthread_mutex_lock(&mu));
    n = running + waiting;
    el_must(pthread_mutex_unlock(&mu));
    return n;
}

int el_password_waiting(void)
{
    int n;

    el_must(pthread_mutex_lock(&mu));
    n = waiting;
    el_must(pthread_mutex_unlock(&mu));
    return n;
}

/* Take a slot: at once if one is free, after waiting if fewer than
 * 2 * slots callers are inside, never otherwise (EL_EUNAVAIL). On success
 * *p holds the parameters to hash with, read under the same lock, so one
 * hash never mixes two setups. */
static int gate_enter(struct el_password_params *p)
{
    el_must(pthread_mutex_lock(&mu));
    if (slots == 0)
        slots = online_cpus();
    if (running + waiting >= 2 * slots) {
        el_must(pthread_mutex_unlock(&mu));
        return EL_EUNAVAIL;
    }
    if (running >= slots) {
        waiting++;
        while (running >= slots)
            el_must(pthread_cond_wait(&slot_free, &mu));
        waiting--;
    }
    running++;
    *p = cur;
    el_must(pthread_mutex_unlock(&mu));
    return EL_OK;
}

static void gate_leave(void)
{
    el_must(pthread_mutex_lock(&mu));
    running--;
    pthread_cond_signal(&slot_free);
    el_must(pthread_mutex_unlock(&mu));
}

/* getrandom(), or OpenSSL's CSPRNG where the kernel will not give bytes
 * (seccomp, very old kernels). */
static int fill_random(void *dst, size_t n)
{
    unsigned char *b = dst;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            break;
    }
    if (got == n || RAND_bytes(b, (int)n) == 1)
        return EL_OK;
    return EL_EIO;
}

/* A hash whose memory cannot be allocated is the gate's case again -- too
 * much hashing for this machine right now -- and is answered the same way
 * (EL_EUNAVAIL: 503, retry), not as a wrong password. */
static int map_argon2(int r)
{
    switch (r) {
    case ARGON2_OK:
        return EL_OK;
    case ARGON2_MEMORY_ALLOCATION_ERROR:
        return EL_EUNAVAIL;
    default:
        return EL_EINVAL;
    }
}

/* ---- PHC strings --------------------------------------------------------- */

struct phc {
    uint32_t version, m, t, p;
    size_t salt_len, hash_len; /* decoded bytes */
};

/* Read a decimal uint32 at *s, then expect the character end. */
static int parse_u32(const char **s, char end, uint32_t *out)
{
    uint64_t v = 0;
    const char *p = *s;

    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    if (*p != end)
        return -1;
    *s = p + 1;
    *out = (uint32_t)v;
    return 0;
}

/* Length in bytes of the unpadded standard base64 at *s up to end, or -1. */
static long b64_field(const char **s, char end)
{
    const char *p = *s;
    size_t n;

    for (n = 0; p[n] != end; n++) {
        char c = p[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return -1;
    }
    if (n == 0 || n % 4 == 1)
        return -1;
    *s = p + n + (end != '\0');
    return (long)(n * 3 / 4);
}

/* Parse an argon2id PHC string in exactly the form libargon2 writes. */
static int phc_parse(const char *enc, struct phc *out)
{
    const char *s = enc;
    long salt, hash;

    if (enc == NULL || strnlen(enc, EL_PASSWORD_HASH_MAX) >= EL_PASSWORD_HASH_MAX ||
        strncmp(s, PREFIX, strlen(PREFIX)) != 0)
        return -1;
    s += strlen(PREFIX);
    if (strncmp(s, "v=", 2) != 0)
        return -1;
    s += 2;
    if (parse_u32(&s, '$', &out->version) != 0 || strncmp(s, "m=", 2) != 0)
        return -1;
    s += 2;
    if (parse_u32(&s, ',', &out->m) != 0 || strncmp(s, "t=", 2) != 0)
        return -1;
    s += 2;
    if (parse_u32(&s, ',', &out->t) != 0 || strncmp(s, "p=", 2) != 0)
        return -1;
    s += 2;
    if (parse_u32(&s, '$', &out->p) != 0)
        return -1;
    salt = b64_field(&s, '$');
    if (salt < 0)
        return -1;
    hash = b64_field(&s, '\0');
    if (hash < 0)
        return -1;
    out->salt_len = (size_t)salt;
    out->hash_len = (size_t)hash;
    return 0;
}

/* A stored hash we are willing to spend a slot on. */
static int phc_sane(const struct phc *h)
{
    return h->version == VERSION && h->p >= 1 && h->p <= P_MAX && h->t >= ARGON2_MIN_TIME &&
           h->t <= T_MAX && h->m >= 8 * h->p && h->m <= M_MAX_KIB && h->salt_len >= 8 &&
           h->hash_len >= 4;
}

int el_password_needs_rehash(const char *encoded)
{
    struct phc h;
    struct el_password_params p;

    if (phc_parse(encoded, &h) != 0 || !phc_sane(&h))
        return 1;
    el_must(pthread_mutex_lock(&mu));
    p = cur;
    el_must(pthread_mutex_unlock(&mu));
    return h.m < p.m_cost_kib || h.t < p.t_cost || h.p < p.parallelism || h.salt_len < SALT_LEN ||
           h.hash_len < HASH_LEN;
}

/* ---- hash and verify ---------------------------------------------------- */

/* strlen, or -1 when password is NULL or longer than EL_PASSWORD_MAX; never
 * reads more than EL_PASSWORD_MAX + 1 bytes. */
static long password_len(const char *password)
{
    size_t n;

    if (password == NULL)
        return -1;
    n = strnlen(password, EL_PASSWORD_MAX + 1);
    return n > EL_PASSWORD_MAX ? -1 : (long)n;
}

int el_password_hash(const char *password, char out[EL_PASSWORD_HASH_MAX])
{
    struct el_password_params p;
    unsigned char salt[SALT_LEN];
    long len = password_len(password);
    int rc;

    if (len < 0 || out == NULL)
        return EL_EINVAL;
    rc = fill_random(salt, sizeof(salt));
    if (rc != EL_OK)
        return rc;
    rc = gate_enter(&p);
    if (rc != EL_OK)
        return rc;
    if (argon2_encodedlen(p.t_cost, p.m_cost_kib, p.parallelism, SALT_LEN, HASH_LEN, Argon2_id) >
        EL_PASSWORD_HASH_MAX)
        rc = EL_ETOOBIG; /* only for absurd costs; the bounds above prevent it */
    else
        rc = map_argon2(argon2id_hash_encoded(p.t_cost, p.m_cost_kib, p.parallelism, password,
                                              (size_t)len, salt, SALT_LEN, HASH_LEN, out,
                                              EL_PASSWORD_HASH_MAX));
    gate_leave();
    return rc;
}

int el_password_verify(const char *encoded, const char *password)
{
    struct el_password_params unused;
    struct phc h;
    long len = password_len(password);
    int rc;

    if (len < 0 || phc_parse(encoded, &h) != 0 || !phc_sane(&h))
        return EL_EINVAL;
    rc = gate_enter(&unused);
    if (rc != EL_OK)
        return rc;
    /* argon2id_verify recomputes the hash and compares in constant time. */
    rc = map_argon2(argon2id_verify(encoded, password, (size_t)len));
    gate_leave();
    return rc;
}

/* Copy the dummy hash into out, making it first if setup discarded it.
 * Threads that arrive while it is made wait for it (once per setup). */
static int dummy_get(char out[EL_PASSWORD_HASH_MAX])
{
    int rc = EL_OK;

    el_must(pthread_mutex_lock(&dummy_mu));
    if (!dummy_ready) {
        unsigned char raw[24];
        char pw[2 * sizeof(raw) + 1];
        size_t i;

        /* A password nobody knows, so the dummy matches no input. */
        rc = fill_random(raw, sizeof(raw));
        for (i = 0; rc == EL_OK && i < sizeof(raw); i++)
            snprintf(pw + 2 * i, 3, "%02x", raw[i]);
        if (rc == EL_OK)
            rc = el_password_hash(pw, dummy);
        dummy_ready = rc == EL_OK;
    }
    if (rc == EL_OK)
        memcpy(out, dummy, EL_PASSWORD_HASH_MAX);
    el_must(pthread_mutex_unlock(&dummy_mu));
    return rc;
}

int el_password_verify_dummy(const char *password)
{
    char enc[EL_PASSWORD_HASH_MAX];
    int rc;

    if (password_len(password) < 0)
        return EL_EINVAL; /* refused before hashing, as el_password_verify does */
    rc = dummy_get(enc);
    if (rc == EL_OK)
        rc = el_password_verify(enc, password);
    return rc == EL_EUNAVAIL ? EL_EUNAVAIL : EL_EINVAL;
}
