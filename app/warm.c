/* warm.c -- start-up cache warming, in the background.
 *
 * As the original service did: the first page of the recent, popular and
 * top_rated lists, and each course on them. Requests are served meanwhile
 * (this is one extra thread, going through the same read path, so its
 * misses share flights and leases with real requests). Bounded by a time
 * budget and by the process's shutdown. */
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "model/course.h"

struct warm {
    pthread_t thread;
    struct el_app *app;
    int budget_ms;
};

/* Warm every course listed in a list page's JSON; returns how many. */
static int warm_items(struct el_app *app, const struct el_blob *page, uint64_t deadline)
{
    struct json_object *root = json_tokener_parse(page->data), *items;
    int n = 0;

    if (root && json_object_object_get_ex(root, "items", &items) &&
        json_object_is_type(items, json_type_array)) {
        size_t len = json_object_array_length(items);
        for (size_t i = 0; i < len && el_now_ms() < deadline; i++) {
            struct json_object *id;
            struct el_blob *b;
            enum el_layer layer;

            if (!json_object_object_get_ex(json_object_array_get_idx(items, i), "_id", &id))
                continue;
            if (el_app_course_read(app, json_object_get_string(id), &b, &layer) == EL_OK) {
                el_blob_unref(b);
                n++;
            }
        }
    }
    json_object_put(root);
    return n;
}

static void *warm_main(void *arg)
{
    static const char *const sorts[] = {"sort_by=recent", "sort_by=popular", "sort_by=top_rated"};
    struct warm *w = arg;
    uint64_t t0 = el_now_ms(), deadline = t0 + (uint64_t)w->budget_ms;
    int lists = 0, courses = 0;

    for (size_t i = 0; i < sizeof(sorts) / sizeof(sorts[0]) && el_now_ms() < deadline; i++) {
        struct el_course_query q;
        struct el_blob *page;
        enum el_layer layer;

        if (el_course_query_parse(sorts[i], &q, NULL) != EL_OK)
            continue;
        if (el_app_list_read(w->app, &q, &page, &layer) != EL_OK)
            continue;
        lists++;
        courses += warm_items(w->app, page, deadline);
        el_blob_unref(page);
    }
    fprintf(stderr, "warm: %d lists and %d course reads in %llu ms%s\n", lists, courses,
            (unsigned long long)(el_now_ms() - t0),
            el_now_ms() >= deadline ? " (time budget used up)" : "");
    el_redis_thread_cleanup(w->app->redis);
    el_store_thread_cleanup(w->app->store);
    return NULL;
}

int el_app_warm_start(struct el_app *app, int budget_ms)
{
    struct warm *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return EL_ENOMEM;
    w->app = app;
    w->budget_ms = budget_ms;
    if (pthread_create(&w->thread, NULL, warm_main, w) != 0) {
        free(w);
        return EL_ENOMEM;
    }
    app->warm = w;
    return EL_OK;
}

void el_app_warm_wait(struct el_app *app)
{
    struct warm *w = app->warm;

    if (w) {
        pthread_join(w->thread, NULL);
        free(w);
        app->warm = NULL;
    }
}
