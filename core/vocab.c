/*
 * core/vocab.c - the tables behind vocab.h: one row per word, in the order
 * of its enum.
 */
#include "vocab.h"

#include <string.h>

static const char *const gen_status_names[GF_GEN_STATUS_COUNT] = {
    "queued", "running", "succeeded", "partial", "failed", "canceled", "expired"};

static const char *const stage_names[GF_STAGE_COUNT] = {"starting", "generating", "postprocessing",
                                                        "storing"};

static const struct {
    const char *name;
    int terminal, from_queue;
} events[GF_EV_COUNT] = {
    [GF_EV_QUEUED] = {"queued", 0, 1},     [GF_EV_STARTED] = {"started", 0, 0},
    [GF_EV_PROGRESS] = {"progress", 0, 0}, [GF_EV_IMAGE] = {"image", 0, 0},
    [GF_EV_RETRYING] = {"retrying", 0, 1}, [GF_EV_REQUEUED] = {"requeued", 0, 1},
    [GF_EV_DONE] = {"done", 1, 1},         [GF_EV_FAILED] = {"failed", 1, 1},
    [GF_EV_CANCELED] = {"canceled", 1, 1}, [GF_EV_EXPIRED] = {"expired", 1, 1},
};

static const struct {
    const char *name;
    int final_status; /* gf_queue_state_final_status(); -1: none or Postgres decides */
    int final;
} queue_states[GF_QS_COUNT] = {
    [GF_QS_QUEUED] = {"queued", -1, 0},
    [GF_QS_DELAYED] = {"delayed", -1, 0},
    [GF_QS_RUNNING] = {"running", -1, 0},
    [GF_QS_CANCELING] = {"canceling", -1, 0},
    [GF_QS_DONE] = {"done", -1, 1},
    [GF_QS_DEAD] = {"dead", GF_GEN_FAILED, 1},
    [GF_QS_CANCELED] = {"canceled", GF_GEN_CANCELED, 1},
    [GF_QS_EXPIRED] = {"expired", GF_GEN_EXPIRED, 1},
};

static int find(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

const char *gf_gen_status_name(gf_gen_status s)
{
    return (unsigned)s < GF_GEN_STATUS_COUNT ? gen_status_names[s] : "unknown";
}

int gf_gen_status_parse(const char *name)
{
    return find(gen_status_names, GF_GEN_STATUS_COUNT, name);
}

int gf_gen_status_is_final(gf_gen_status s)
{
    return s != GF_GEN_QUEUED && s != GF_GEN_RUNNING && (unsigned)s < GF_GEN_STATUS_COUNT;
}

const char *gf_stage_name(gf_stage s)
{
    return (unsigned)s < GF_STAGE_COUNT ? stage_names[s] : "unknown";
}

int gf_stage_parse(const char *name)
{
    return find(stage_names, GF_STAGE_COUNT, name);
}

const char *gf_event_name(gf_event e)
{
    return (unsigned)e < GF_EV_COUNT ? events[e].name : "unknown";
}

int gf_event_parse(const char *name)
{
    for (int i = 0; name && i < GF_EV_COUNT; i++)
        if (strcmp(events[i].name, name) == 0)
            return i;
    return -1;
}

int gf_event_is_terminal(gf_event e)
{
    return (unsigned)e < GF_EV_COUNT && events[e].terminal;
}

int gf_event_is_from_queue(gf_event e)
{
    return (unsigned)e < GF_EV_COUNT && events[e].from_queue;
}

const char *gf_queue_state_name(gf_queue_state s)
{
    return (unsigned)s < GF_QS_COUNT ? queue_states[s].name : "unknown";
}

int gf_queue_state_parse(const char *name)
{
    for (int i = 0; name && i < GF_QS_COUNT; i++)
        if (strcmp(queue_states[i].name, name) == 0)
            return i;
    return -1;
}

int gf_queue_state_is_final(gf_queue_state s)
{
    return (unsigned)s < GF_QS_COUNT && queue_states[s].final;
}

int gf_queue_state_final_status(gf_queue_state s)
{
    return (unsigned)s < GF_QS_COUNT ? queue_states[s].final_status : -1;
}
