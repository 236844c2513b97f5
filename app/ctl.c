/* ctl.c -- elearnctl, the administration CLI: seed, count and reset the
 * store, and manage user accounts (create, change role, delete).
 *
 *   elearnctl [--db URI] COMMAND [OPTIONS]
 *
 * The store is the one --db names, else DB_URI, else MONGO_URI, else
 * sqlite:var/elearn.db -- read straight from the environment, because the
 * responder's configuration (config.c) also demands settings, such as
 * JWT_SECRET, that an admin tool has no use for. A relative sqlite: path is
 * resolved against $DATA_DIR (else $STATE_DIRECTORY) as the responder does.
 *
 * Key decisions: commands are rows of one table ({name, fn, usage,
 * summary}); main() only finds the row, and --help is printed from the
 * table, so adding a command is adding a row. Seeded data comes from a
 * small deterministic PRNG (splitmix64) seeded by --seed: the same seed
 * writes the same titles, texts, numbers and date offsets every time. Only
 * the ids (made by the store) and the dates' anchor (now) differ between
 * runs.
 *
 * Passwords are never arguments (argv is visible to every local user in
 * ps): create-user reads one line from stdin, without echo on a terminal.
 * Commands that change a user also delete the user's cached session in
 * Redis ($REDIS_URL, default redis://127.0.0.1:6379/0, empty = no Redis),
 * so running responders reload the account from the store on its next
 * request. Each responder also keeps sessions in its L1 for a moment
 * (SESSION_L1_MS); those expire on their own.
 *
 * Exit status: 0 done, 1 the store failed (one line "elearnctl: ..." on
 * stderr), 2 bad usage or input (the message and the usage on stderr). A
 * Redis failure after a user change is a warning, not a failure: the store
 * is the truth, and the cached copy expires by its TTL. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "core/buf.h"
#include "model/course.h"
#include "core/el.h"
#include "auth/jwt.h"
#include "cache/bus.h"
#include "cache/key.h"
#include "auth/password.h"
#include "cache/redis.h"
#include "store/store.h"
#include "model/user.h"

#define DEFAULT_DB_URI "sqlite:var/elearn.db"
#define DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"
#define EXIT_USAGE 2
#define SEED_MAX_COURSES 1000000

struct command {
    const char *name;
    /* argv holds the arguments after the command name. */
    int (*fn)(const struct command *self, int argc, char **argv);
    const char *usage;   /* the arguments after the name */
    const char *summary; /* one line */
};

static int cmd_seed(const struct command *self, int argc, char **argv);
static int cmd_count(const struct command *self, int argc, char **argv);
static int cmd_reset(const struct command *self, int argc, char **argv);
static int cmd_create_user(const struct command *self, int argc, char **argv);
static int cmd_set_role(const struct command *self, int argc, char **argv);
static int cmd_delete_user(const struct command *self, int argc, char **argv);
static int cmd_help(const struct command *self, int argc, char **argv);

/* The order here is the order of --help. */
static const struct command commands[] = {
    {"seed", cmd_seed, "--courses N [--seed S] [--if-empty]",
     "write N generated courses (same S, same data; default S 42)"},
    {"count", cmd_count, "", "print the number of courses"},
    {"reset", cmd_reset, "--yes", "delete everything: courses, users, tokens"},
    {"create-user", cmd_create_user, "--email E --role R --password-stdin [--name N]",
     "add a user (role student, instructor or admin); the password is one line on stdin"},
    {"set-role", cmd_set_role, "--email E --role R", "change a user's role"},
    {"delete-user", cmd_delete_user, "--email E", "delete a user"},
    {"help", cmd_help, "", "print this help"},
    {NULL, NULL, NULL, NULL},
};

static const char *db_uri; /* --db, given before or after the command */

static void usage(FILE *out)
{
    const struct command *c;

    fprintf(out, "usage: elearnctl [--db URI] COMMAND [OPTIONS]\n\n"
                 "Administer the elearn store: courses and user accounts.\n\n"
                 "Commands:\n");
    for (c = commands; c->name; c++) {
        char left[96];

        snprintf(left, sizeof(left), "%s %s", c->name, c->usage);
        if (strlen(left) > 40) /* the summary on a line of its own */
            fprintf(out, "  %s\n  %-40s  %s\n", left, "", c->summary);
        else
            fprintf(out, "  %-40s  %s\n", left, c->summary);
    }
    fprintf(out,
            "\nThe store is --db URI, else $DB_URI, else $MONGO_URI, else %s.\n"
            "URIs: sqlite:PATH (relative: under $DATA_DIR when set) or\n"
            "mongodb://HOST[:PORT]/DATABASE.\n"
            "User changes also clear the user's cached session in Redis: $REDIS_URL,\n"
            "else %s (set REDIS_URL= to skip).\n"
            "Run 'elearnctl COMMAND --help' for one command.\n",
            DEFAULT_DB_URI, DEFAULT_REDIS_URL);
}

static void command_usage(FILE *out, const struct command *c)
{
    fprintf(out, "usage: elearnctl [--db URI] %s %s\n  %s\n", c->name, c->usage, c->summary);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;

    fputs("elearnctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE;
}

/* A usage error inside command c: the message, then c's usage. */
static int usage_error(const struct command *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const struct command *c, const char *fmt, ...)
{
    va_list ap;

    fputs("elearnctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c)
        command_usage(stderr, c);
    else
        usage(stderr);
    return EXIT_USAGE;
}

/* If argv[*i] is option name ("--x V" or "--x=V"), store its value in
 * *val, leave *i on the option's last word (the caller's loop steps past
 * it) and return 1; return -1 when the value is missing, 0 when argv[*i]
 * is another argument. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

/* A whole decimal number in [lo, hi]. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The options every command takes: --db and --help. Returns 1 when
 * argv[*i] was one of them (the caller moves on), 0 when it is not, or an
 * exit status + 100 when the command should stop (help printed, usage
 * error). */
#define STOP(rc) (100 + (rc))
static int common_option(const struct command *c, int argc, char **argv, int *i)
{
    const char *v;
    int r;

    if (strcmp(argv[*i], "--help") == 0 || strcmp(argv[*i], "-h") == 0) {
        command_usage(stdout, c);
        return STOP(EXIT_SUCCESS);
    }
    r = opt_value(argc, argv, i, "--db", &v);
    if (r < 0 || (r > 0 && *v == '\0'))
        return STOP(usage_error(c, "--db needs a URI"));
    if (r > 0) {
        db_uri = v;
        return 1;
    }
    return 0;
}

static const char *store_uri_given(void)
{
    const char *v;

    if (db_uri && *db_uri)
        return db_uri;
    if ((v = getenv("DB_URI")) && *v)
        return v;
    if ((v = getenv("MONGO_URI")) && *v)
        return v;
    return DEFAULT_DB_URI;
}

/* A relative sqlite: path names the same file the responder opens: it is
 * resolved against $DATA_DIR (then $STATE_DIRECTORY) when set, as
 * lib/core/config.c does; otherwise against the working directory. */
static const char *store_uri(void)
{
    static char resolved[4200];
    const char *uri = store_uri_given(), *dir = getenv("DATA_DIR");

    if (dir == NULL || *dir != '/')
        dir = getenv("STATE_DIRECTORY");
    if (strncmp(uri, "sqlite:", 7) != 0 || uri[7] == '/' || uri[7] == '\0' || dir == NULL ||
        *dir != '/')
        return uri;
    snprintf(resolved, sizeof(resolved), "sqlite:%.*s/%s", (int)strcspn(dir, ":"), dir, uri + 7);
    return resolved;
}

static int open_store(struct el_store **s)
{
    struct el_err err = {0, ""};
    const char *uri = store_uri();

    if (el_store_open(uri, s, &err) != EL_OK)
        return fail("cannot open store %s: %s", uri, err.msg);
    return EXIT_SUCCESS;
}

static void close_store(struct el_store *s)
{
    el_store_thread_cleanup(s);
    el_store_close(s);
}

/* ---- seed data ---------------------------------------------------------- */

/* splitmix64: tiny, fast and fully determined by its seed. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

/* Uniform in [lo, hi]; the modulo bias is irrelevant at these sizes. */
static int rng_int(int lo, int hi)
{
    return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}

#define PICK(arr) ((arr)[rng_next() % (sizeof(arr) / sizeof((arr)[0]))])

/* A category's vocabulary. Plain ASCII without search metacharacters, so
 * end-to-end tests can search for any word literally. */
struct category {
    const char *name;
    const char *subjects[6];     /* what a course is about */
    const char *subject_tags[6]; /* the tag every course on subjects[i] gets */
    const char *tags[6];         /* more tags, a few per course */
    const char *lessons[10];     /* module topics */
    const char *goal;            /* "you will ..." */
};

static const struct category categories[] = {
    {"programming",
     {"Python", "JavaScript", "Rust", "Go", "C Programming", "TypeScript"},
     {"python", "javascript", "rust", "go", "c", "typescript"},
     {"algorithms", "testing", "backend", "debugging", "tooling", "open-source"},
     {"Setting Up Your Environment", "Variables and Types", "Control Flow", "Functions",
      "Data Structures", "Error Handling", "Modules and Packages", "Testing Your Code",
      "Concurrency", "Performance Tuning"},
     "write clean, tested programs and understand what the machine does with them"},
    {"data-science",
     {"Data Analysis", "Machine Learning", "Statistics", "SQL for Analysts", "Data Visualization",
      "Deep Learning"},
     {"data-analysis", "machine-learning", "statistics", "sql", "visualization", "deep-learning"},
     {"pandas", "numpy", "jupyter", "regression", "python", "analytics"},
     {"Asking the Right Question", "Loading and Cleaning Data", "Exploratory Analysis",
      "Descriptive Statistics", "Visualizing Distributions", "Linear Regression", "Classification",
      "Model Evaluation", "Feature Engineering", "Communicating Results"},
     "turn raw data into answers you can defend"},
    {"design",
     {"Graphic Design", "UX Design", "Typography", "Color Theory", "Figma", "Logo Design"},
     {"graphic-design", "ux", "typography", "color", "figma", "branding"},
     {"ui", "prototyping", "accessibility", "layout", "illustration", "portfolio"},
     {"Design Principles", "Grids and Layout", "Choosing Typefaces", "Working with Color",
      "Wireframing", "Prototyping", "User Research", "Accessibility", "Design Systems",
      "Presenting Your Work"},
     "design interfaces and graphics that are clear, usable and good to look at"},
    {"business",
     {"Project Management", "Business Strategy", "Accounting Basics", "Entrepreneurship",
      "Negotiation", "Leadership"},
     {"project-management", "strategy", "accounting", "startup", "negotiation", "leadership"},
     {"management", "finance", "agile", "sales", "operations", "communication"},
     {"Setting Goals", "Understanding the Market", "Reading a Balance Sheet", "Planning a Project",
      "Managing Risk", "Leading a Team", "Negotiating Deals", "Pricing", "Measuring Success",
      "Writing a Business Plan"},
     "make sound business decisions and explain them to others"},
    {"marketing",
     {"Digital Marketing", "SEO", "Content Marketing", "Social Media Marketing", "Email Marketing",
      "Copywriting"},
     {"digital-marketing", "seo", "content", "social-media", "email", "copywriting"},
     {"analytics", "advertising", "growth", "branding", "campaigns", "funnels"},
     {"Knowing Your Audience", "Positioning", "Keyword Research", "Writing Headlines",
      "Planning Content", "Running Campaigns", "Email Sequences", "Paid Advertising",
      "Measuring Results", "Growth Experiments"},
     "reach the right people and measure what works"},
    {"languages",
     {"Spanish", "French", "German", "Japanese", "Italian", "English Grammar"},
     {"spanish", "french", "german", "japanese", "italian", "english"},
     {"grammar", "vocabulary", "conversation", "pronunciation", "travel", "listening"},
     {"Pronunciation", "Greetings and Introductions", "Everyday Vocabulary", "Present Tense",
      "Asking Questions", "Past Tense", "Ordering Food", "Travel Phrases", "Listening Practice",
      "Conversation Practice"},
     "hold real conversations with confidence"},
    {"music",
     {"Guitar", "Piano", "Music Theory", "Music Production", "Singing", "Songwriting"},
     {"guitar", "piano", "theory", "production", "vocals", "songwriting"},
     {"rhythm", "harmony", "ear-training", "recording", "practice", "performance"},
     {"Reading Notation", "Rhythm and Timing", "Scales", "Chords", "Ear Training",
      "Your First Song", "Recording at Home", "Mixing Basics", "Improvisation", "Performing Live"},
     "play, write and record music you are proud of"},
    {"photography",
     {"Digital Photography", "Portrait Photography", "Lightroom", "Landscape Photography",
      "Street Photography", "Photo Editing"},
     {"camera", "portrait", "lightroom", "landscape", "street", "editing"},
     {"lighting", "composition", "exposure", "color-grading", "gear", "portfolio"},
     {"Know Your Camera", "Exposure", "Composition", "Natural Light", "Studio Lighting",
      "Shooting Portraits", "Shooting Landscapes", "Editing Workflow", "Color Grading",
      "Building a Portfolio"},
     "take and edit photographs with intent"},
};
#define NCATEGORIES (sizeof(categories) / sizeof(categories[0]))

static const char *const difficulties[] = {"beginner", "intermediate", "advanced"};
static const char *const audiences[] = {"beginners", "intermediate learners", "advanced learners"};

static const char *const title_forms[3][4] = {
    {"Introduction to %s", "%s for Beginners", "Getting Started with %s", "%s Fundamentals"},
    {"Practical %s", "%s in Practice", "Building Real Projects with %s", "%s Beyond the Basics"},
    {"Advanced %s", "Mastering %s", "%s Deep Dive", "Expert %s Techniques"},
};

static const char *const openers[] = {
    "A hands-on course",   "A project-based course",
    "A structured course", "A friendly, practical course",
    "A thorough course",
};

static const char *const closers[] = {
    "Every module ends with an exercise.",
    "Includes downloadable notes and a final project.",
    "Learn at your own pace, with quizzes along the way.",
    "Taught through short lessons and real examples.",
    "No prior experience beyond the prerequisites is needed.",
};

static const char *const lesson_forms[] = {
    "What %s is about, shown through worked examples, then a short exercise to try on your own.",
    "A step-by-step walk through %s, with the common mistakes and how to avoid them.",
    "%s explained from first principles, followed by a guided practice session.",
    "Hands-on practice with %s: follow along, then complete the module challenge.",
};

#define NINSTRUCTORS 24
static char instructors[NINSTRUCTORS][EL_OID_HEX];

/* Copy of a formatted string on the heap, or NULL when out of memory. */
static char *fmt_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_dup(const char *fmt, ...)
{
    struct el_buf b;
    va_list ap;
    int rc;

    el_buf_init(&b, 4096);
    va_start(ap, fmt);
    rc = el_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    if (rc != EL_OK) {
        el_buf_cleanup(&b);
        return NULL;
    }
    return el_buf_take(&b, NULL);
}

/* Pick k distinct indexes of n (k <= n) into out, in random order. */
static void pick_distinct(size_t n, size_t k, size_t *out)
{
    size_t idx[16];

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = 0; i < k; i++) { /* a partial Fisher-Yates shuffle */
        size_t j = i + (size_t)(rng_next() % (n - i));
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        out[i] = idx[i];
    }
}

/* Ratings cluster around 4.2 as on real course sites, with a tail of
 * poorly rated courses; one decimal place. */
static double gen_rating(void)
{
    double r;

    if (rng_unit() < 0.06)
        r = 1.0 + 2.5 * rng_unit();
    else
        r = 4.2 + (rng_unit() + rng_unit() + rng_unit() - 1.5) * 1.1;
    if (r < 1.0)
        r = 1.0;
    if (r > 5.0)
        r = 5.0;
    return round(r * 10.0) / 10.0;
}

/* Enrollments follow a power law: most courses have a few dozen or
 * hundred students, a few have tens of thousands. */
static int gen_enrollment(void)
{
    double u = 1.0 - rng_unit(); /* (0, 1] */
    double e = 15.0 / pow(u, 1.4);

    return e > 250000.0 ? 250000 : (int)e;
}

/* Fill c with generated course data (heap strings; el_course_cleanup).
 * now anchors the dates. */
static int gen_course(struct el_course *c, int64_t now)
{
    static const int64_t two_years = 2LL * 365 * 24 * 3600 * 1000;
    const struct category *cat = &categories[rng_next() % NCATEGORIES];
    int level = rng_int(0, 2);
    size_t subj = (size_t)(rng_next() % 6);
    size_t picks[10], i;

    memset(c, 0, sizeof(*c));
    c->title = fmt_dup(PICK(title_forms[level]), cat->subjects[subj]);
    c->description = fmt_dup("%s in %s for %s. You will %s. %s", PICK(openers), cat->subjects[subj],
                             audiences[level], cat->goal, PICK(closers));
    c->category = fmt_dup("%s", cat->name);
    c->difficulty = fmt_dup("%s", difficulties[level]);
    if (!c->title || !c->description || !c->category || !c->difficulty)
        return EL_ENOMEM;

    c->ntags = (size_t)rng_int(2, 4);
    c->tags = calloc(c->ntags, sizeof(*c->tags));
    if (c->tags == NULL)
        return EL_ENOMEM;
    pick_distinct(6, c->ntags - 1, picks);
    for (i = 0; i < c->ntags; i++) {
        const char *tag = i == 0 ? cat->subject_tags[subj] : cat->tags[picks[i - 1]];

        if ((c->tags[i] = fmt_dup("%s", tag)) == NULL)
            return EL_ENOMEM;
    }

    memcpy(c->instructor_id, instructors[rng_next() % NINSTRUCTORS], EL_OID_HEX);
    c->rating = gen_rating();
    c->enrollment_count = gen_enrollment();
    c->rating_count = 1 + (int)(c->enrollment_count * (0.05 + 0.3 * rng_unit()));
    /* Every seeded course is in the catalogue: drafts (issue 12) are what
     * instructors make. The draw stays so the rest of the data is as it was. */
    (void)rng_unit();
    c->published = true;
    c->created_at = now - (int64_t)(rng_unit() * (double)two_years);
    c->updated_at = c->created_at + (int64_t)(rng_unit() * (double)(now - c->created_at));

    c->nmodules = (size_t)rng_int(3, 8);
    c->modules = calloc(c->nmodules, sizeof(*c->modules));
    if (c->modules == NULL)
        return EL_ENOMEM;
    /* Lessons in the vocabulary's teaching order, as a syllabus would. */
    pick_distinct(10, c->nmodules, picks);
    for (i = 1; i < c->nmodules; i++)
        for (size_t j = i; j > 0 && picks[j - 1] > picks[j]; j--) {
            size_t t = picks[j];
            picks[j] = picks[j - 1];
            picks[j - 1] = t;
        }
    for (i = 0; i < c->nmodules; i++) {
        struct el_module *m = &c->modules[i];
        const char *topic = cat->lessons[picks[i]];

        m->title = fmt_dup("%s", topic);
        m->content = fmt_dup(PICK(lesson_forms), topic);
        if (!m->title || !m->content)
            return EL_ENOMEM;
        m->duration_minutes = 5 * rng_int(2, 12);
        m->order = (int)i + 1;
        c->duration_minutes += m->duration_minutes;
    }
    return EL_OK;
}

/* ---- commands ------------------------------------------------------------ */

static int cmd_seed(const struct command *self, int argc, char **argv)
{
    uint64_t ncourses = 0, seed = 42;
    bool have_courses = false, if_empty = false;
    struct el_store *s = NULL;
    int64_t have, now;
    int rc;

    for (int i = 0; i < argc; i++) {
        const char *v;
        int r;

        if ((r = common_option(self, argc, argv, &i)) >= STOP(0))
            return r - STOP(0);
        if (r)
            continue;
        if (strcmp(argv[i], "--if-empty") == 0) {
            if_empty = true;
        } else if ((r = opt_value(argc, argv, &i, "--courses", &v)) != 0) {
            if (r < 0 || parse_u64(v, 1, SEED_MAX_COURSES, &ncourses) != 0)
                return usage_error(self, "--courses needs a number from 1 to %d", SEED_MAX_COURSES);
            have_courses = true;
        } else if ((r = opt_value(argc, argv, &i, "--seed", &v)) != 0) {
            if (r < 0 || parse_u64(v, 0, UINT64_MAX, &seed) != 0)
                return usage_error(self, "--seed needs a non-negative whole number");
        } else {
            return usage_error(self, "seed: unexpected argument '%s'", argv[i]);
        }
    }
    if (!have_courses)
        return usage_error(self, "seed: --courses N is required");

    if ((rc = open_store(&s)) != EXIT_SUCCESS)
        return rc;
    if (if_empty) {
        if ((rc = el_store_course_count(s, &have)) != EL_OK) {
            rc = fail("cannot count the courses in %s: %s", store_uri(), el_strerror(rc));
            goto out;
        }
        if (have > 0) {
            printf("%s store already has %" PRId64 " courses; not seeding\n", el_store_kind(s),
                   have);
            rc = EXIT_SUCCESS;
            goto out;
        }
    }

    rng_state = seed;
    for (int i = 0; i < NINSTRUCTORS; i++) {
        /* Ids shaped like ObjectIds made over the last few years. */
        snprintf(instructors[i], EL_OID_HEX, "%08" PRIx32 "%016" PRIx64,
                 (uint32_t)(0x5f000000u + (uint32_t)(rng_next() % 0x8000000u)), rng_next());
    }
    now = el_wall_ms();
    for (uint64_t n = 0; n < ncourses; n++) {
        struct el_course c;

        rc = gen_course(&c, now);
        if (rc == EL_OK)
            rc = el_store_course_insert(s, &c);
        el_course_cleanup(&c);
        if (rc != EL_OK) {
            rc = fail("inserting course %" PRIu64 " of %" PRIu64 " into %s failed: %s (%" PRIu64
                      " were written)",
                      n + 1, ncourses, store_uri(), el_strerror(rc), n);
            goto out;
        }
    }
    printf("seeded %" PRIu64 " courses into %s store\n", ncourses, el_store_kind(s));
    rc = EXIT_SUCCESS;
out:
    close_store(s);
    return rc;
}

static int cmd_count(const struct command *self, int argc, char **argv)
{
    struct el_store *s = NULL;
    int64_t n = 0;
    int rc;

    for (int i = 0; i < argc; i++) {
        int r = common_option(self, argc, argv, &i);
        if (r >= STOP(0))
            return r - STOP(0);
        if (!r)
            return usage_error(self, "count: unexpected argument '%s'", argv[i]);
    }
    if ((rc = open_store(&s)) != EXIT_SUCCESS)
        return rc;
    rc = el_store_course_count(s, &n);
    if (rc != EL_OK)
        rc = fail("cannot count the courses in %s: %s", store_uri(), el_strerror(rc));
    else
        printf("%" PRId64 "\n", n);
    close_store(s);
    return rc == EL_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int cmd_reset(const struct command *self, int argc, char **argv)
{
    struct el_store *s = NULL;
    bool yes = false;
    int rc;

    for (int i = 0; i < argc; i++) {
        int r = common_option(self, argc, argv, &i);
        if (r >= STOP(0))
            return r - STOP(0);
        if (r)
            continue;
        if (strcmp(argv[i], "--yes") == 0)
            yes = true;
        else
            return usage_error(self, "reset: unexpected argument '%s'", argv[i]);
    }
    if (!yes)
        return usage_error(self,
                           "reset deletes every course, user and token; add --yes to confirm");
    if ((rc = open_store(&s)) != EXIT_SUCCESS)
        return rc;
    rc = el_store_reset(s);
    if (rc != EL_OK)
        rc = fail("cannot reset %s: %s", store_uri(), el_strerror(rc));
    else
        printf("deleted every course, user and token from the %s store\n", el_store_kind(s));
    close_store(s);
    return rc == EL_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- users ---------------------------------------------------------------- */

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
    va_list ap;

    fputs("elearnctl: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* 1 if s is valid UTF-8 (no overlong forms, surrogates or values above
 * U+10FFFF) without control characters (C0, DEL, C1): fit for a display
 * name. */
static int printable_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        uint32_t cp;
        int n;

        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7F)
                return 0;
            p++;
            continue;
        }
        if ((*p & 0xE0) == 0xC0)
            n = 1, cp = *p & 0x1Fu;
        else if ((*p & 0xF0) == 0xE0)
            n = 2, cp = *p & 0x0Fu;
        else if ((*p & 0xF8) == 0xF0)
            n = 3, cp = *p & 0x07u;
        else
            return 0;
        for (int i = 1; i <= n; i++) { /* stops at the NUL: it is no continuation byte */
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0xA0)
            return 0;
        p += n + 1;
    }
    return 1;
}

/* Read the password: one line of stdin without its line ending (LF or
 * CRLF); on a terminal, prompted for and not echoed. On success *out is a
 * heap string the caller wipes (explicit_bzero) and frees. Its length is
 * checked as the API checks it, in bytes. */
static int read_password(const struct command *self, char **out)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    char *line = NULL;
    size_t cap = 0, n;
    ssize_t got;
    int rc = EXIT_SUCCESS;

    *out = NULL;
    if (tty) {
        fputs("Password: ", stderr);
        fflush(stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    got = getline(&line, &cap, stdin);
    if (tty) {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (got < 0) {
        free(line);
        return usage_error(self, "create-user: no password on stdin");
    }
    n = (size_t)got;
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    if (memchr(line, '\0', n) != NULL)
        rc = usage_error(self, "create-user: the password contains a NUL byte");
    else if (n < EL_PASSWORD_MIN || n > EL_PASSWORD_MAX)
        rc = usage_error(self, "create-user: the password must be %d to %d bytes long (got %zu)",
                         EL_PASSWORD_MIN, EL_PASSWORD_MAX, n);
    if (rc != EXIT_SUCCESS) {
        explicit_bzero(line, cap);
        free(line);
        return rc;
    }
    *out = line;
    return EXIT_SUCCESS;
}

/* Delete the Redis bucket that holds user_id's cached session (see
 * cache/key.h), so the responders reload the account (its new role, or that
 * it is gone) on its next request: with its marker gone they trust none of
 * the bucket until it is copied from the store again. The store change is
 * what counts: a Redis that cannot be reached is reported as a warning,
 * and the cached copy then lives out its TTL. */
static void drop_session(const char *user_id)
{
    const char *url = getenv("REDIS_URL");
    struct el_redis *r = NULL;
    struct el_err err = {0, ""};
    char key[EL_KEY_MAX];
    int rc;

    if (url == NULL)
        url = DEFAULT_REDIS_URL;
    if (*url == '\0')
        return; /* no Redis in this deployment */
    if (el_key_auth_bucket(key, sizeof(key), el_key_auth_bucket_index(user_id)) < 0) {
        warn("cannot name the session key of user %s; the cached session was not cleared", user_id);
        return;
    }
    /* The URL may hold a password, so it is never printed. */
    if (el_redis_new(url, NULL, &r, &err) != EL_OK) {
        warn("REDIS_URL: %s; the cached session of user %s was not cleared", err.msg, user_id);
        return;
    }
    rc = el_redis_del(r, key);
    if (rc != EL_OK)
        warn("cannot clear the cached session of user %s in Redis (%s); it expires on its own",
             user_id, el_strerror(rc));
    /* ...and every responder drops its L1 copy (the one it serves without
     * asking Redis). Not heard by a responder whose bus is down -- which
     * then does not trust its local state either. */
    snprintf(key, sizeof(key), "session:%s", user_id);
    if (rc == EL_OK && (rc = el_bus_publish_key_once(r, key)) != EL_OK)
        warn("cannot tell the responders to drop the session of user %s (%s); their copies "
             "expire within seconds",
             user_id, el_strerror(rc));
    el_redis_thread_cleanup(r);
    el_redis_free(r);
}

/* Parse --email into its normalised form. */
static int email_arg(const struct command *self, const char *email, char norm[EL_EMAIL_MAX + 1])
{
    if (email == NULL)
        return usage_error(self, "%s: --email E is required", self->name);
    if (el_email_normalize(email, norm, EL_EMAIL_MAX + 1) != EL_OK)
        return usage_error(self, "%s: '%s' is not a valid email address", self->name, email);
    return EXIT_SUCCESS;
}

static int role_arg(const struct command *self, const char *role)
{
    if (role == NULL)
        return usage_error(self, "%s: --role R is required", self->name);
    if (!el_role_valid(role))
        return usage_error(self, "%s: --role must be student, instructor or admin", self->name);
    return EXIT_SUCCESS;
}

/* The options of the user commands: --email, --role, --name and
 * --password-stdin, each accepted only where `allowed` names it. Returns
 * -1 to go on, else an exit status. */
struct user_opts {
    const char *email, *role, *name;
    bool password_stdin;
};

static int user_options(const struct command *self, int argc, char **argv, const char *allowed,
                        struct user_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < argc; i++) {
        static const char *const names[] = {"--email", "--role", "--name"};
        const char **slot[] = {&o->email, &o->role, &o->name};
        const char *v;
        int r = common_option(self, argc, argv, &i);
        bool known = false;

        if (r >= STOP(0))
            return r - STOP(0);
        if (r)
            continue;
        if (strcmp(argv[i], "--password-stdin") == 0 && strstr(allowed, "--password-stdin")) {
            o->password_stdin = true;
            continue;
        }
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && !known; k++) {
            if (!strstr(allowed, names[k]))
                continue;
            if ((r = opt_value(argc, argv, &i, names[k], &v)) < 0)
                return usage_error(self, "%s needs a value", names[k]);
            if (r > 0) {
                *slot[k] = v;
                known = true;
            }
        }
        if (!known)
            return usage_error(self, "%s: unexpected argument '%s'", self->name, argv[i]);
    }
    return -1;
}

static int cmd_create_user(const struct command *self, int argc, char **argv)
{
    char norm[EL_EMAIL_MAX + 1], hash[EL_PASSWORD_HASH_MAX], local[EL_NAME_MAX + 1];
    struct el_store *s = NULL;
    struct user_opts o;
    struct el_user u;
    struct el_buf b;
    char *password = NULL;
    int rc;

    if ((rc = user_options(self, argc, argv, "--email --role --name --password-stdin", &o)) >= 0)
        return rc;
    if ((rc = email_arg(self, o.email, norm)) != EXIT_SUCCESS ||
        (rc = role_arg(self, o.role)) != EXIT_SUCCESS)
        return rc;
    if (!o.password_stdin)
        return usage_error(self, "create-user: the password is read from stdin only; "
                                 "add --password-stdin");
    if (o.name == NULL) { /* the email's local part, which is never empty */
        snprintf(local, sizeof(local), "%.*s", (int)strcspn(norm, "@"), norm);
        o.name = local;
    }
    if (*o.name == '\0' || strlen(o.name) > EL_NAME_MAX || !printable_utf8(o.name))
        return usage_error(self,
                           "create-user: --name must be 1 to %d bytes of UTF-8 text without "
                           "control characters",
                           EL_NAME_MAX);
    if ((rc = read_password(self, &password)) != EXIT_SUCCESS)
        return rc;
    if ((rc = open_store(&s)) != EXIT_SUCCESS)
        goto out;
    el_password_setup(NULL, 1);
    rc = el_password_hash(password, hash);
    if (rc != EL_OK) {
        rc = fail("cannot hash the password: %s", el_strerror(rc));
        goto out;
    }
    memset(&u, 0, sizeof(u));
    u.email = norm;
    u.name = (char *)o.name; /* borrowed: u is never cleaned up */
    snprintf(u.role, sizeof(u.role), "%s", o.role);
    u.password_hash = hash;
    rc = el_store_user_insert(s, &u);
    if (rc == EL_ECONFLICT) {
        rc = fail("a user with email %s already exists", norm);
        goto out;
    }
    if (rc != EL_OK) {
        rc = fail("cannot add the user to %s: %s", store_uri(), el_strerror(rc));
        goto out;
    }
    el_buf_init(&b, 4096);
    if (el_user_to_json(&u, &b) == EL_OK)
        printf("%s\n", b.data);
    else
        printf("created user %s (%s)\n", u.id, norm);
    el_buf_cleanup(&b);
    rc = EXIT_SUCCESS;
out:
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    explicit_bzero(hash, sizeof(hash));
    close_store(s);
    return rc;
}

/* Open the store and find the user with email norm: EXIT_SUCCESS with *s
 * open and *u filled (the caller closes and cleans up), else an exit
 * status with nothing to release. */
static int find_user(const char *norm, struct el_store **s, struct el_user *u)
{
    int rc;

    if ((rc = open_store(s)) != EXIT_SUCCESS)
        return rc;
    rc = el_store_user_get_by_email(*s, norm, u);
    if (rc == EL_OK)
        return EXIT_SUCCESS;
    if (rc == EL_ENOTFOUND)
        rc = fail("no user with email %s", norm);
    else
        rc = fail("cannot look up %s in %s: %s", norm, store_uri(), el_strerror(rc));
    close_store(*s);
    *s = NULL;
    return rc;
}

static int cmd_set_role(const struct command *self, int argc, char **argv)
{
    char norm[EL_EMAIL_MAX + 1];
    struct el_store *s = NULL;
    struct user_opts o;
    struct el_user u;
    int rc;

    if ((rc = user_options(self, argc, argv, "--email --role", &o)) >= 0)
        return rc;
    if ((rc = email_arg(self, o.email, norm)) != EXIT_SUCCESS ||
        (rc = role_arg(self, o.role)) != EXIT_SUCCESS)
        return rc;
    if ((rc = find_user(norm, &s, &u)) != EXIT_SUCCESS)
        return rc;
    rc = el_store_user_update(s, u.id, o.role, NULL);
    if (rc == EL_ENOTFOUND) {
        rc = fail("no user with email %s", norm); /* deleted meanwhile */
    } else if (rc != EL_OK) {
        rc = fail("cannot change the role of %s in %s: %s", norm, store_uri(), el_strerror(rc));
    } else {
        drop_session(u.id);
        printf("%s (%s): role %s -> %s\n", norm, u.id, u.role, o.role);
        rc = EXIT_SUCCESS;
    }
    el_user_cleanup(&u);
    close_store(s);
    return rc;
}

static int cmd_delete_user(const struct command *self, int argc, char **argv)
{
    char norm[EL_EMAIL_MAX + 1];
    struct el_store *s = NULL;
    struct user_opts o;
    struct el_user u;
    int rc;

    if ((rc = user_options(self, argc, argv, "--email", &o)) >= 0)
        return rc;
    if ((rc = email_arg(self, o.email, norm)) != EXIT_SUCCESS)
        return rc;
    if ((rc = find_user(norm, &s, &u)) != EXIT_SUCCESS)
        return rc;
    rc = el_store_user_delete(s, u.id);
    if (rc == EL_ENOTFOUND) {
        rc = fail("no user with email %s", norm);
    } else if (rc != EL_OK) {
        rc = fail("cannot delete %s from %s: %s", norm, store_uri(), el_strerror(rc));
    } else {
        drop_session(u.id);
        printf("deleted user %s (%s)\n", norm, u.id);
        rc = EXIT_SUCCESS;
    }
    el_user_cleanup(&u);
    close_store(s);
    return rc;
}

static int cmd_help(const struct command *self, int argc, char **argv)
{
    EL_UNUSED(self);
    EL_UNUSED(argc);
    EL_UNUSED(argv);
    usage(stdout);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    int i = 1;

    /* Options before the command: --db and --help. */
    while (i < argc && argv[i][0] == '-') {
        const char *v;
        int r;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return cmd_help(NULL, 0, NULL);
        r = opt_value(argc, argv, &i, "--db", &v);
        if (r < 0 || (r > 0 && *v == '\0'))
            return usage_error(NULL, "--db needs a URI");
        if (r == 0)
            return usage_error(NULL, "unknown option '%s'", argv[i]);
        db_uri = v;
        i++;
    }
    if (i >= argc)
        return usage_error(NULL, "no command given");
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(argv[i], c->name) == 0)
            return c->fn(c, argc - i - 1, argv + i + 1);
    return usage_error(NULL, "unknown command '%s'", argv[i]);
}
