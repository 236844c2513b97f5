/* oid.c -- ObjectIds in hex: checking them and making them (see oid.h). */
#include "model/oid.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/el.h"

int el_oid_valid(const char *s)
{
    int i;

    if (s == NULL)
        return 0;
    for (i = 0; i < 24; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return s[24] == '\0';
}

/* The 5 "random" bytes identify this process; the counter makes ids made
 * in the same second distinct. Both are set once (pthread_once) and again
 * in a forked child, so two pre-forked responders never share a prefix. */
static pthread_once_t oid_once = PTHREAD_ONCE_INIT;
static unsigned char oid_process[5];
static atomic_uint_fast32_t oid_counter;

/* getrandom() only fails on kernels older than 3.17 or with a seccomp
 * filter; time, pid and an address are then a weaker but still
 * per-process substitute. */
static void fill_random(void *dst, size_t n)
{
    unsigned char *p = dst;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            break;
    }
    if (got < n) {
        uint64_t x = (uint64_t)el_now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)dst;
        for (; got < n; got++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[got] = (unsigned char)x;
        }
    }
}

static void oid_seed(void)
{
    uint32_t start;

    fill_random(oid_process, sizeof(oid_process));
    fill_random(&start, sizeof(start));
    atomic_store_explicit(&oid_counter, start & 0xFFFFFF, memory_order_relaxed);
}

static void oid_init(void)
{
    oid_seed();
    /* The child of a fork() is single-threaded here, so reseeding without
     * a lock is safe. */
    pthread_atfork(NULL, NULL, oid_seed);
}

void el_oid_new(char out[EL_OID_HEX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[12];
    uint32_t secs = (uint32_t)(el_wall_ms() / 1000);
    uint32_t cnt;
    int i;

    pthread_once(&oid_once, oid_init);
    cnt = (uint32_t)atomic_fetch_add_explicit(&oid_counter, 1, memory_order_relaxed);
    b[0] = (unsigned char)(secs >> 24);
    b[1] = (unsigned char)(secs >> 16);
    b[2] = (unsigned char)(secs >> 8);
    b[3] = (unsigned char)secs;
    memcpy(b + 4, oid_process, 5);
    b[9] = (unsigned char)(cnt >> 16);
    b[10] = (unsigned char)(cnt >> 8);
    b[11] = (unsigned char)cnt;
    for (i = 0; i < 12; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[24] = '\0';
}
