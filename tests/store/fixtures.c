/* fixtures.c -- see fixtures.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/course.h"
#include "model/user.h"
#include "fixtures.h"
#include "unit.h"

void fx_build(const struct fx_spec *s, struct el_course *c)
{
    char buf[256];
    size_t i;

    memset(c, 0, sizeof(*c));
    if (s->id)
        snprintf(c->id, sizeof(c->id), "%s", s->id);
    c->title = unit_strdup(s->title);
    c->description = unit_strdup(s->description ? s->description : "plain words only");
    c->category = unit_strdup(s->category);
    c->difficulty = unit_strdup(s->difficulty);
    while (c->ntags < 4 && s->tags[c->ntags])
        c->ntags++;
    c->tags = unit_calloc(c->ntags, sizeof(char *));
    for (i = 0; i < c->ntags; i++)
        c->tags[i] = unit_strdup(s->tags[i]);
    strcpy(c->instructor_id, "5f00000000000000000000aa");
    c->duration_minutes = s->duration;
    c->rating = s->rating;
    c->rating_count = s->enrollment / 3;
    c->enrollment_count = s->enrollment;
    c->published = s->enrollment % 2 == 0;
    c->created_at = s->created_at;
    c->updated_at = s->created_at + 86400000;
    c->nmodules = (size_t)s->nmods;
    c->modules = unit_calloc(c->nmodules, sizeof(*c->modules));
    for (i = 0; i < c->nmodules; i++) {
        struct el_module *m = &c->modules[i];

        snprintf(buf, sizeof(buf), "%s, part %zu", s->title, i + 1);
        m->title = unit_strdup(buf);
        snprintf(buf, sizeof(buf), "Lesson %zu of %s.\nRead, then practise.", i + 1, s->title);
        m->content = unit_strdup(buf);
        m->duration_minutes = s->duration / s->nmods + (i == 0 ? s->duration % s->nmods : 0);
        m->order = (int)i + 1;
        if (s->id) {
            memcpy(m->id, s->id, EL_OID_HEX);
            snprintf(buf, sizeof(buf), "ff%02x", (unsigned)i & 0xffu);
            memcpy(m->id + 16, buf, 4);
        }
    }
}

void fx_course(struct el_course *c, const char *title, const char *desc, const char *tag)
{
    memset(c, 0, sizeof(*c));
    c->title = unit_strdup(title);
    c->description = unit_strdup(desc);
    c->category = unit_strdup("testing");
    c->difficulty = unit_strdup("beginner");
    c->ntags = 1;
    c->tags = unit_calloc(1, sizeof(char *));
    c->tags[0] = unit_strdup(tag);
    strcpy(c->instructor_id, "5f00000000000000000000aa");
    c->duration_minutes = 90;
    c->rating = 4.5;
    c->rating_count = 7;
    c->enrollment_count = 21;
    c->published = true;
    c->created_at = 1735689600123LL;
    c->updated_at = 1735689700456LL;
    c->nmodules = 2;
    c->modules = unit_calloc(2, sizeof(*c->modules));
    for (int i = 0; i < 2; i++) {
        c->modules[i].title = unit_strdup(i ? "Second" : "First");
        c->modules[i].content = unit_strdup("Read this.");
        c->modules[i].duration_minutes = 45;
        c->modules[i].order = i + 1;
    }
}

void fx_user(struct el_user *u, const char *email, const char *role)
{
    memset(u, 0, sizeof(*u));
    u->email = unit_strdup(email);
    u->name = unit_strdup("Ann \xc3\x89lise O'Neil");
    snprintf(u->role, sizeof(u->role), "%s", role);
    u->password_hash = unit_strdup("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
}
