/* test_password.c -- argon2id hashing, rehash detection, the dummy
 * verification and the concurrency gate. Most tests run at a tiny cost
 * (64 KiB, t=1) so the suite stays fast under sanitizers; the dummy timing
 * test runs at the real default cost, and the gate test at a large one so
 * the gate stays full long enough to be probed. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>

#include "auth/password.h"
#include "auth/testing.h"
#include "unit.h"

static const struct el_password_params low = {64, 1, 1};

static int suite_init(void)
{
    el_password_setup(&low, 2);
    return 0;
}

static int suite_clean(void)
{
    el_password_setup(NULL, 0);
    return 0;
}

static void test_round_trip(void)
{
    char h[EL_PASSWORD_HASH_MAX];

    CU_ASSERT_EQUAL_FATAL(el_password_hash("correct horse battery", h), EL_OK);
    CU_ASSERT_NSTRING_EQUAL(h, "$argon2id$v=19$m=64,t=1,p=1$", 28);
    CU_ASSERT_EQUAL(el_password_verify(h, "correct horse battery"), EL_OK);
    /* Non-ASCII bytes are hashed as given. */
    CU_ASSERT_EQUAL_FATAL(el_password_hash("p\xc3\xa4ssw\xc3\xb6rd-\xe2\x82\xac", h), EL_OK);
    CU_ASSERT_EQUAL(el_password_verify(h, "p\xc3\xa4ssw\xc3\xb6rd-\xe2\x82\xac"), EL_OK);
}

static void test_wrong_password(void)
{
    char h[EL_PASSWORD_HASH_MAX];

    CU_ASSERT_EQUAL_FATAL(el_password_hash("correct horse battery", h), EL_OK);
    CU_ASSERT_EQUAL(el_password_verify(h, "correct horse batterY"), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify(h, "correct horse batter"), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify(h, "correct horse battery "), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify(h, ""), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify(h, NULL), EL_EINVAL);
}

static void test_salted(void)
{
    char a[EL_PASSWORD_HASH_MAX], b[EL_PASSWORD_HASH_MAX];

    CU_ASSERT_EQUAL_FATAL(el_password_hash("same password here", a), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_password_hash("same password here", b), EL_OK);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    CU_ASSERT_EQUAL(el_password_verify(a, "same password here"), EL_OK);
    CU_ASSERT_EQUAL(el_password_verify(b, "same password here"), EL_OK);
}

static void test_length_limit(void)
{
    char h[EL_PASSWORD_HASH_MAX], pw[EL_PASSWORD_MAX + 2];

    memset(pw, 'a', EL_PASSWORD_MAX);
    pw[EL_PASSWORD_MAX] = '\0';
    CU_ASSERT_EQUAL_FATAL(el_password_hash(pw, h), EL_OK);
    CU_ASSERT_EQUAL(el_password_verify(h, pw), EL_OK);
    pw[EL_PASSWORD_MAX] = 'a';
    pw[EL_PASSWORD_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(el_password_hash(pw, h), EL_EINVAL);
    /* Not a match for its first EL_PASSWORD_MAX bytes either. */
    CU_ASSERT_EQUAL(el_password_verify(h, pw), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify_dummy(pw), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_hash(NULL, h), EL_EINVAL);
}

static void test_needs_rehash(void)
{
    static const struct el_password_params higher_m = {128, 1, 1}, higher_t = {64, 2, 1},
                                           higher_p = {64, 1, 2};
    char h[EL_PASSWORD_HASH_MAX], i_hash[EL_PASSWORD_HASH_MAX];
    unsigned char salt[16] = "0123456789abcdef";

    CU_ASSERT_EQUAL_FATAL(el_password_hash("rehash me please", h), EL_OK);
    CU_ASSERT_EQUAL(el_password_needs_rehash(h), 0);
    el_password_setup(&higher_m, 2);
    CU_ASSERT_EQUAL(el_password_needs_rehash(h), 1);
    el_password_setup(&higher_t, 2);
    CU_ASSERT_EQUAL(el_password_needs_rehash(h), 1);
    el_password_setup(&higher_p, 2);
    CU_ASSERT_EQUAL(el_password_needs_rehash(h), 1);
    /* Made with more than the current cost: not weaker, keep it. */
    el_password_setup(&higher_m, 2);
    CU_ASSERT_EQUAL_FATAL(el_password_hash("rehash me please", h), EL_OK);
    el_password_setup(&low, 2);
    CU_ASSERT_EQUAL(el_password_needs_rehash(h), 0);
    CU_ASSERT_EQUAL(el_password_verify(h, "rehash me please"), EL_OK);
    /* Not argon2id: always rehash, and never verified by us. */
    CU_ASSERT_EQUAL_FATAL(argon2i_hash_encoded(1, 64, 1, "rehash me please", 16, salt, 16, 32,
                                               i_hash, sizeof(i_hash)),
                          ARGON2_OK);
    CU_ASSERT_EQUAL(el_password_needs_rehash(i_hash), 1);
    CU_ASSERT_EQUAL(el_password_verify(i_hash, "rehash me please"), EL_EINVAL);
    /* A shorter salt or hash than ours is weaker too. */
    CU_ASSERT_EQUAL(el_password_needs_rehash("$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc$"
                                             "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"),
                    1);
    CU_ASSERT_EQUAL(el_password_needs_rehash("$argon2id$v=19$m=64,t=1,p=1$"
                                             "MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg"),
                    1);
    CU_ASSERT_EQUAL(el_password_needs_rehash("$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$"
                                             "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"),
                    0);
    CU_ASSERT_EQUAL(el_password_needs_rehash(""), 1);
    CU_ASSERT_EQUAL(el_password_needs_rehash(NULL), 1);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        "argon2id",
        "$argon2id$",
        "$argon2id$v=19$",
        "$argon2id$v=19$m=64,t=1,p=1",
        "$argon2id$v=19$m=64,t=1,p=1$",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaA!!",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2g=",
        "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=-64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        /* Parameters no setup of ours allows, refused before any work: */
        "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo$extra",
        "$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
    };
    char h[EL_PASSWORD_HASH_MAX], longer[EL_PASSWORD_HASH_MAX + 64];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = el_password_verify(bad[i], "whatever password");

        CU_ASSERT_EQUAL(rc, EL_EINVAL);
        if (rc != EL_EINVAL)
            fprintf(stderr, "\n  accepted: %s\n", bad[i]);
        CU_ASSERT_EQUAL(el_password_needs_rehash(bad[i]), 1);
    }
    CU_ASSERT_EQUAL(el_password_verify(NULL, "whatever password"), EL_EINVAL);
    /* A genuine hash of the right password, but with t above any setup we
     * allow: refused unverified, as t = 4e9 would be instead of running
     * for hours. */
    {
        unsigned char salt[16] = "0123456789abcdef";
        CU_ASSERT_EQUAL_FATAL(
            argon2id_hash_encoded(300, 8, 1, "whatever password", 17, salt, 16, 32, h, sizeof(h)),
            ARGON2_OK);
        CU_ASSERT_EQUAL(el_password_verify(h, "whatever password"), EL_EINVAL);
        CU_ASSERT_EQUAL(el_password_needs_rehash(h), 1);
    }
    /* A real hash, cut short and stretched. */
    CU_ASSERT_EQUAL_FATAL(el_password_hash("whatever password", h), EL_OK);
    h[strlen(h) - 5] = '\0';
    CU_ASSERT_EQUAL(el_password_verify(h, "whatever password"), EL_EINVAL);
    CU_ASSERT_EQUAL_FATAL(el_password_hash("whatever password", h), EL_OK);
    memset(longer, 'A', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    memcpy(longer, h, strlen(h));
    CU_ASSERT_EQUAL(el_password_verify(longer, "whatever password"), EL_EINVAL);
}

static void test_dummy_fails(void)
{
    CU_ASSERT_EQUAL(el_password_verify_dummy("any password at all"), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify_dummy(""), EL_EINVAL);
    CU_ASSERT_EQUAL(el_password_verify_dummy(NULL), EL_EINVAL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Microseconds one call of verify (dummy or not) takes. */
static uint64_t timed_verify(int dummy, const char *hash)
{
    uint64_t t0 = el_now_us();
    int rc = dummy ? el_password_verify_dummy("a wrong password")
                   : el_password_verify(hash, "a wrong password");

    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    return el_now_us() - t0;
}

/* The dummy must cost what a real verification costs, at the real default
 * cost. The dummy was made at the low test cost by test_dummy_fails; setup
 * must have discarded it, or it would be hundreds of times too fast here.
 * Each of 5 rounds times one real and one dummy verification back to back
 * (in alternating order) and the median of the 5 ratios is judged, so
 * neither a descheduling nor a change of machine load between rounds
 * decides the test. */
static void test_dummy_equal_work(void)
{
    char h[EL_PASSWORD_HASH_MAX];
    double ratio[5];
    uint64_t real, fake;
    int i;

    el_password_setup(NULL, 2);
    CU_ASSERT_EQUAL_FATAL(el_password_hash("the real password", h), EL_OK);
    CU_ASSERT_NSTRING_EQUAL(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
    CU_ASSERT_EQUAL(el_password_verify_dummy("warm up"), EL_EINVAL); /* makes the dummy */
    for (i = 0; i < 5; i++) {
        if (i % 2 == 0) {
            real = timed_verify(0, h);
            fake = timed_verify(1, NULL);
        } else {
            fake = timed_verify(1, NULL);
            real = timed_verify(0, h);
        }
        ratio[i] = (double)fake / (double)(real ? real : 1);
    }
    qsort(ratio, 5, sizeof(ratio[0]), cmp_double);
    if (ratio[2] < 0.5 || ratio[2] > 2.0)
        fprintf(stderr, "\n  dummy/real time ratios %.2f %.2f %.2f %.2f %.2f\n", ratio[0], ratio[1],
                ratio[2], ratio[3], ratio[4]);
    CU_ASSERT(ratio[2] >= 0.5 && ratio[2] <= 2.0);
    el_password_setup(&low, 2);
}

/* ---- the gate ----------------------------------------------------------- */

struct hasher {
    pthread_t tid;
    const char *password;
    int rc;
    char hash[EL_PASSWORD_HASH_MAX];
};

static void *hash_thread(void *arg)
{
    struct hasher *h = arg;

    h->rc = el_password_hash(h->password, h->hash);
    return NULL;
}

/* Wait (yielding) until the gate holds n callers; 0, or -1 after 30 s. */
static int wait_inflight(int n)
{
    uint64_t deadline = el_now_us() + 30u * 1000000u;

    while (el_password_inflight() != n) {
        if (el_now_us() > deadline)
            return -1;
        sched_yield();
    }
    return 0;
}

/* slots = 1 at a large cost: A runs, B waits (and does not run), and a
 * third caller is turned away at once -- by hash, verify and dummy alike.
 * A too-long password is refused before the gate (EL_EINVAL, not
 * EL_EUNAVAIL): it does no work. */
static void test_gate_full(void)
{
    static const struct el_password_params big = {65536, 3, 1}; /* 64 MiB */
    struct hasher a = {.password = "first in line"}, b = {.password = "second in line"};
    char out[EL_PASSWORD_HASH_MAX], longpw[EL_PASSWORD_MAX + 2];
    uint64_t t0, dt;
    int rc_hash, rc_verify, rc_dummy, rc_long;

    memset(longpw, 'x', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    el_password_setup(&big, 1);
    CU_ASSERT_EQUAL_FATAL(el_password_inflight(), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&a.tid, NULL, hash_thread, &a), 0);
    CU_ASSERT_EQUAL(wait_inflight(1), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&b.tid, NULL, hash_thread, &b), 0);
    CU_ASSERT_EQUAL(wait_inflight(2), 0);
    /* One slot: B queues behind A instead of hashing beside it. */
    CU_ASSERT_EQUAL(el_password_waiting(), 1);

    t0 = el_now_us();
    rc_hash = el_password_hash("third caller", out);
    rc_verify = el_password_verify("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$"
                                   "aGFzaGhhc2hoYXNo",
                                   "third caller");
    rc_dummy = el_password_verify_dummy("third caller");
    rc_long = el_password_verify_dummy(longpw);
    dt = el_now_us() - t0;
    CU_ASSERT_EQUAL(el_password_inflight(), 2); /* still full: the probe was fair */
    CU_ASSERT_EQUAL(rc_hash, EL_EUNAVAIL);
    CU_ASSERT_EQUAL(rc_verify, EL_EUNAVAIL);
    CU_ASSERT_EQUAL(rc_dummy, EL_EUNAVAIL);
    CU_ASSERT_EQUAL(rc_long, EL_EINVAL);
    CU_ASSERT(dt < 50000);

    pthread_join(a.tid, NULL);
    pthread_join(b.tid, NULL);
    CU_ASSERT_EQUAL(a.rc, EL_OK);
    CU_ASSERT_EQUAL(b.rc, EL_OK);
    CU_ASSERT_EQUAL(el_password_inflight(), 0);
    /* The gate is open again. */
    el_password_setup(&low, 1);
    CU_ASSERT_EQUAL(el_password_hash("after the rush", out), EL_OK);
    CU_ASSERT_EQUAL(el_password_verify(a.hash, "first in line"), EL_OK);
    CU_ASSERT_EQUAL(el_password_verify(b.hash, "second in line"), EL_OK);
    el_password_setup(&low, 2);
}

#define STRESS_THREADS 8
#define STRESS_ROUNDS 25

struct stresser {
    pthread_t tid;
    int ok, busy, other;
};

static void *stress_thread(void *arg)
{
    struct stresser *s = arg;
    char h[EL_PASSWORD_HASH_MAX];
    int i, rc;

    for (i = 0; i < STRESS_ROUNDS; i++) {
        rc = el_password_hash("stress password", h);
        if (rc == EL_OK)
            rc = el_password_verify(h, "stress password");
        if (rc == EL_OK)
            s->ok++;
        else if (rc == EL_EUNAVAIL)
            s->busy++;
        else
            s->other++;
        if (el_password_inflight() > 4 || el_password_waiting() > 2)
            s->other++;
    }
    return NULL;
}

/* Many threads through a 2-slot gate: every call either works or is turned
 * away, never anything else, and the gate never holds more than 4. */
static void test_gate_stress(void)
{
    struct stresser s[STRESS_THREADS];
    int i, ok = 0;

    memset(s, 0, sizeof(s));
    for (i = 0; i < STRESS_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&s[i].tid, NULL, stress_thread, &s[i]), 0);
    for (i = 0; i < STRESS_THREADS; i++) {
        pthread_join(s[i].tid, NULL);
        CU_ASSERT_EQUAL(s[i].other, 0);
        CU_ASSERT_EQUAL(s[i].ok + s[i].busy, STRESS_ROUNDS);
        ok += s[i].ok;
    }
    CU_ASSERT(ok > 0);
    CU_ASSERT_EQUAL(el_password_inflight(), 0);
}

void test_password_register(void)
{
    CU_pSuite s = CU_add_suite("password", suite_init, suite_clean);

    CU_add_test(s, "hash and verify", test_round_trip);
    CU_add_test(s, "wrong password fails", test_wrong_password);
    CU_add_test(s, "hashes are salted", test_salted);
    CU_add_test(s, "length limit", test_length_limit);
    CU_add_test(s, "needs rehash", test_needs_rehash);
    CU_add_test(s, "malformed hashes refused", test_malformed);
    CU_add_test(s, "dummy verification fails", test_dummy_fails);
    CU_add_test(s, "dummy costs a real verification", test_dummy_equal_work);
    CU_add_test(s, "full gate turns callers away", test_gate_full);
    CU_add_test(s, "gate under 8 threads", test_gate_stress);
}
