/*
 * tests/unit/core/test_vocab.c - core/vocab.c, and the queue's Lua functions
 * (the .lua files of queue/lua/) against it. The Lua cannot include the C
 * table, so this reads their sources: every event they append (ev_append,
 * terminal) is an event the vocabulary says the queue appends, with the same
 * terminal flag, and every such event is appended somewhere; every job state
 * they write, answer or test is a queue state of the vocabulary, and every
 * queue state is one of them; the events whose stage event.lua keeps are the
 * worker's stage events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#ifndef FARM_LUA_DIR
#define FARM_LUA_DIR "queue/lua"
#endif

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < GF_GEN_STATUS_COUNT; i++)
        assert_int_equal(gf_gen_status_parse(gf_gen_status_name(i)), i);
    for (int i = 0; i < GF_STAGE_COUNT; i++)
        assert_int_equal(gf_stage_parse(gf_stage_name(i)), i);
    for (int i = 0; i < GF_EV_COUNT; i++)
        assert_int_equal(gf_event_parse(gf_event_name(i)), i);
    for (int i = 0; i < GF_QS_COUNT; i++)
        assert_int_equal(gf_queue_state_parse(gf_queue_state_name(i)), i);
    assert_int_equal(gf_gen_status_parse("done"), -1); /* the queue's word, not a status */
    assert_int_equal(gf_stage_parse(NULL), -1);
    assert_int_equal(gf_event_parse("succeeded"), -1); /* clients' name for a 'done' */
    assert_string_equal(gf_stage_name(GF_STAGE_POSTPROCESSING), "postprocessing");
}

/* API.md's lists, word for word. */
static void test_api_md_words(void **state)
{
    (void)state;
    const char *statuses[] = {"queued", "running",  "succeeded", "partial",
                              "failed", "canceled", "expired"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        assert_true(gf_gen_status_parse(statuses[i]) >= 0);
    assert_int_equal(GF_GEN_STATUS_COUNT, 7);
    const char *stages[] = {"starting", "generating", "postprocessing", "storing"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(gf_stage_parse(stages[i]), (int)i);
    assert_int_equal(GF_STAGE_COUNT, 4);
    /* Every terminal event but 'done' is also the status clients see. */
    for (int e = 0; e < GF_EV_COUNT; e++)
        if (gf_event_is_terminal(e) && e != GF_EV_DONE)
            assert_true(gf_gen_status_is_final(gf_gen_status_parse(gf_event_name(e))));
    assert_false(gf_gen_status_is_final(GF_GEN_RUNNING));
}

static void test_queue_final_states(void **state)
{
    (void)state;
    assert_int_equal(gf_queue_state_final_status(GF_QS_DEAD), GF_GEN_FAILED);
    assert_int_equal(gf_queue_state_final_status(GF_QS_CANCELED), GF_GEN_CANCELED);
    assert_int_equal(gf_queue_state_final_status(GF_QS_EXPIRED), GF_GEN_EXPIRED);
    assert_int_equal(gf_queue_state_final_status(GF_QS_DONE), -1);
    assert_int_equal(gf_queue_state_final_status(GF_QS_RUNNING), -1);
    int finals = 0;
    for (int s = 0; s < GF_QS_COUNT; s++)
        finals += gf_queue_state_is_final(s);
    assert_int_equal(finals, 4);
    assert_false(gf_queue_state_is_final(-1));
}

/* --- the Lua sources --------------------------------------------------------------- */

/* Words found in the Lua, with where they were found (for messages). */
typedef struct {
    char word[32];
    char where[64];
    int terminal; /* events: the terminal flag it was appended with */
} found_t;

typedef struct {
    found_t events[64], states[64], stage_events[8];
    int nevents, nstates, nstage_events;
} lua_words_t;

static void add(found_t *list, int *n, const char *word, size_t len, const char *file, int terminal)
{
    assert_true(*n < 64 && len < sizeof(list->word));
    snprintf(list[*n].word, sizeof(list[*n].word), "%.*s", (int)len, word);
    snprintf(list[*n].where, sizeof(list[*n].where), "%s", file);
    list[*n].terminal = terminal;
    (*n)++;
}

/* The source with its comments blanked (no '--' occurs inside the Lua's strings). */
static char *read_lua(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (char *p = strstr(buf, "--"); p; p = strstr(p, "--"))
        while (*p && *p != '\n')
            *p++ = ' ';
    return buf;
}

/*
 * The arguments of the call whose '(' is at `open`: up to `max` of them,
 * each as a pointer and a length (trimmed). Returns how many.
 */
static int call_args(const char *open, const char **arg, size_t *len, int max)
{
    int depth = 0, n = 0;
    const char *start = open + 1;
    for (const char *p = open + 1; *p; p++) {
        if (*p == '\'') {
            p = strchr(p + 1, '\'');
            assert_non_null(p);
        } else if (*p == '(' || *p == '{') {
            depth++;
        } else if ((*p == ')' || *p == '}') && depth > 0) {
            depth--;
        } else if ((*p == ',' && depth == 0) || (*p == ')' && depth == 0)) {
            while (*start == ' ' || *start == '\n')
                start++;
            const char *end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\n'))
                end--;
            if (n < max) {
                arg[n] = start;
                len[n] = (size_t)(end - start);
            }
            n++;
            if (*p == ')')
                return n;
            start = p + 1;
        }
    }
    fail_msg("unbalanced call");
    return 0;
}

static int is_quoted(const char *a, size_t len)
{
    return len >= 2 && a[0] == '\'' && a[len - 1] == '\'' && memchr(a + 1, '\'', len - 2) == NULL;
}

/* Whether the line of `p` reads fields (HMGET): there 's' is a name, not a value. */
static int in_hmget(const char *src, const char *p)
{
    const char *line = p;
    while (line > src && line[-1] != '\n')
        line--;
    const char *at = strstr(line, "'HMGET'");
    return at != NULL && at < p;
}

/* Every `'s', '<state>'` pair (the job's state field) and `{0|1, '<state>'` answer. */
static void scan_states(const char *src, const char *file, lua_words_t *w)
{
    for (const char *p = strstr(src, "'s', '"); p; p = strstr(p + 1, "'s', '")) {
        if (in_hmget(src, p))
            continue;
        const char *word = p + 6;
        add(w->states, &w->nstates, word, strcspn(word, "'"), file, 0);
    }
    const char *answers[] = {"{0, '", "{1, '"};
    for (int k = 0; k < 2; k++)
        for (const char *p = strstr(src, answers[k]); p; p = strstr(p + 1, answers[k])) {
            const char *word = p + 5;
            add(w->states, &w->nstates, word, strcspn(word, "'"), file, 0);
        }
    /* A job's state as read: s, f[1] or old[1] compared with a word. */
    const char *reads[] = {"s == '", "s ~= '", "f[1] == '", "f[1] ~= '", "old[1] == '"};
    for (size_t k = 0; k < sizeof(reads) / sizeof(reads[0]); k++)
        for (const char *p = strstr(src, reads[k]); p; p = strstr(p + 1, reads[k])) {
            if (p > src && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
                continue; /* another name ending in s */
            const char *word = p + strlen(reads[k]);
            add(w->states, &w->nstates, word, strcspn(word, "'"), file, 0);
        }
}

static void scan_events(const char *src, const char *file, lua_words_t *w)
{
    const char *a[8];
    size_t l[8];
    for (const char *p = strstr(src, "ev_append("); p; p = strstr(p + 1, "ev_append(")) {
        if (p >= src + 15 && strncmp(p - 15, "local function ", 15) == 0)
            continue;
        int n = call_args(p + strlen("ev_append"), a, l, 8);
        assert_true(n >= 7);
        if (!is_quoted(a[4], l[4]))
            continue; /* a type passed through (event.lua, terminal()) */
        add(w->events, &w->nevents, a[4] + 1, l[4] - 2, file,
            l[6] == 4 && !strncmp(a[6], "true", 4));
    }
    for (const char *p = strstr(src, "terminal("); p; p = strstr(p + 1, "terminal(")) {
        if (p > src && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
            continue;
        if (p >= src + 15 && strncmp(p - 15, "local function ", 15) == 0)
            continue;
        int n = call_args(p + strlen("terminal"), a, l, 8);
        assert_int_equal(n, 6);
        assert_true(is_quoted(a[4], l[4]));
        add(w->events, &w->nevents, a[4] + 1, l[4] - 2, file, 1);
        add(w->states, &w->nstates, a[4] + 1, l[4] - 2, file, 0); /* terminal() writes it as 's' */
    }
    /* The events whose stage is kept: those the statement that reads 'sg' names (event.lua
     * names others on other lines, for their progress). */
    const char *sg = strstr(src, "local sg =");
    const char *sg_end = sg ? sg + strcspn(sg, "\n") : NULL;
    for (const char *p = sg ? strstr(sg, "typ == '") : NULL; p && p < sg_end;
         p = strstr(p + 1, "typ == '")) {
        const char *word = p + 8;
        add(w->stage_events, &w->nstage_events, word, strcspn(word, "'"), file, 0);
    }
}

static void read_all_lua(lua_words_t *w)
{
    memset(w, 0, sizeof(*w));
    DIR *d = opendir(FARM_LUA_DIR);
    assert_non_null(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", FARM_LUA_DIR, e->d_name);
        const char *src = read_lua(path);
        scan_events(src, e->d_name, w);
        scan_states(src, e->d_name, w);
        files++;
    }
    closedir(d);
    assert_true(files >= 10);
}

static int has(const found_t *list, int n, const char *word)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i].word, word) == 0)
            return 1;
    return 0;
}

static void test_lua_events_are_the_vocabulary(void **state)
{
    (void)state;
    lua_words_t w;
    read_all_lua(&w);
    assert_true(w.nevents >= 6);
    for (int i = 0; i < w.nevents; i++) {
        int e = gf_event_parse(w.events[i].word);
        if (e < 0 || !gf_event_is_from_queue(e))
            fail_msg("%s appends '%s', not a queue event of core/vocab.c", w.events[i].where,
                     w.events[i].word);
        if (gf_event_is_terminal(e) != w.events[i].terminal)
            fail_msg("%s appends '%s' with terminal=%d; core/vocab.c says %d", w.events[i].where,
                     w.events[i].word, w.events[i].terminal, gf_event_is_terminal(e));
    }
    for (int e = 0; e < GF_EV_COUNT; e++)
        if (gf_event_is_from_queue(e) && !has(w.events, w.nevents, gf_event_name(e)))
            fail_msg("core/vocab.c says the queue appends '%s'; no Lua function does",
                     gf_event_name(e));
    /* event.lua keeps the stage of the worker's stage events: exactly those. */
    assert_int_equal(w.nstage_events, 2);
    assert_true(has(w.stage_events, 2, gf_event_name(GF_EV_STARTED)));
    assert_true(has(w.stage_events, 2, gf_event_name(GF_EV_PROGRESS)));
}

static void test_lua_states_are_the_vocabulary(void **state)
{
    (void)state;
    lua_words_t w;
    read_all_lua(&w);
    for (int i = 0; i < w.nstates; i++)
        if (gf_queue_state_parse(w.states[i].word) < 0)
            fail_msg("%s uses the job state '%s', not one of core/vocab.c", w.states[i].where,
                     w.states[i].word);
    for (int s = 0; s < GF_QS_COUNT; s++)
        if (!has(w.states, w.nstates, gf_queue_state_name(s)))
            fail_msg("core/vocab.c has the queue state '%s'; no Lua function uses it",
                     gf_queue_state_name(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_api_md_words),
        cmocka_unit_test(test_queue_final_states),
        cmocka_unit_test(test_lua_events_are_the_vocabulary),
        cmocka_unit_test(test_lua_states_are_the_vocabulary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
