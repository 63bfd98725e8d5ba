/*
 * core/include/vocab.h - the words of a generation's life, each defined once: the
 * statuses of a generation (Postgres, GET, the terminal events), the stages
 * of a running one, the types of the events in its stream, and the states of
 * its job in the queue. Every module that writes or reads one of these words
 * takes it from here.
 *
 * The queue's Lua functions (queue/lua/) cannot include this header: they
 * write some of these words themselves (the events and states marked "queue"
 * below). tests/unit/core/test_vocab.c reads the Lua sources and checks that
 * every word they emit is one of these and every word marked "queue" is one
 * they emit.
 */
#ifndef GF_VOCAB_H
#define GF_VOCAB_H

/* A generation's status (API.md): queued -> running -> one of the final five. */
typedef enum {
    GF_GEN_QUEUED,
    GF_GEN_RUNNING,
    GF_GEN_SUCCEEDED,
    GF_GEN_PARTIAL, /* some images failed; their credits released */
    GF_GEN_FAILED,
    GF_GEN_CANCELED,
    GF_GEN_EXPIRED,
    GF_GEN_STATUS_COUNT
} gf_gen_status;

/* A running generation's stage (API.md): what its latest image step began. */
typedef enum {
    GF_STAGE_STARTING,       /* claimed: the start recorded, referenced files read */
    GF_STAGE_GENERATING,     /* a provider call */
    GF_STAGE_POSTPROCESSING, /* variants made and stored on the thread pool */
    GF_STAGE_STORING,        /* outputs and capture recorded in Postgres */
    GF_STAGE_COUNT
} gf_stage;

/*
 * The type of an event in a generation's stream, as the queue stores it.
 * Clients see the same name, except for the terminal GF_EV_DONE, which they
 * see as the generation's final status (succeeded, partial or failed).
 */
typedef enum {
    GF_EV_QUEUED,   /* queue: enqueued; data {"status":"queued","queue_position":n} */
    GF_EV_STARTED,  /* worker: the start is recorded; stage starting */
    GF_EV_PROGRESS, /* worker: the generation entered another stage */
    GF_EV_IMAGE,    /* worker: one image settled: its outputs or its error */
    GF_EV_RETRYING, /* queue: handed back, to be claimed again after a backoff */
    GF_EV_REQUEUED, /* queue: a dead letter re-driven by an operator */
    GF_EV_DONE,     /* queue, terminal: the worker finished it */
    GF_EV_FAILED,   /* queue, terminal: dead-lettered */
    GF_EV_CANCELED, /* queue, terminal */
    GF_EV_EXPIRED,  /* queue, terminal: not started before its deadline */
    GF_EV_COUNT
} gf_event;

/* The state of a generation's job in the queue (docs/queue.md). */
typedef enum {
    GF_QS_QUEUED,
    GF_QS_DELAYED, /* waiting out a retry's backoff */
    GF_QS_RUNNING,
    GF_QS_CANCELING, /* a cancel's answer for a running job: its holder is told */
    GF_QS_DONE,      /* final */
    GF_QS_DEAD,      /* final: dead-lettered */
    GF_QS_CANCELED,  /* final */
    GF_QS_EXPIRED,   /* final */
    GF_QS_COUNT
} gf_queue_state;

/* Names on the wire (static strings); the parsers return -1 for a word not in the table. */
const char *gf_gen_status_name(gf_gen_status s);
int gf_gen_status_parse(const char *name);
const char *gf_stage_name(gf_stage s);
int gf_stage_parse(const char *name);
const char *gf_event_name(gf_event e);
int gf_event_parse(const char *name);
const char *gf_queue_state_name(gf_queue_state s);
int gf_queue_state_parse(const char *name);

/* Whether a generation with this status is finished (neither queued nor running). */
int gf_gen_status_is_final(gf_gen_status s);

/* Whether an event ends its generation's stream (done, failed, canceled, expired). */
int gf_event_is_terminal(gf_event e);

/* Whether the queue's Lua functions append this event themselves (else the worker does). */
int gf_event_is_from_queue(gf_event e);

/* Whether a job in this state is over for the queue (done, dead, canceled, expired). */
int gf_queue_state_is_final(gf_queue_state s);

/*
 * The status Postgres is to record for a generation whose job the queue holds
 * in final state `s`: GF_GEN_CANCELED, GF_GEN_EXPIRED, GF_GEN_FAILED (dead),
 * or -1 for done, whose status Postgres decides from its images
 * (succeeded, partial or failed). -1 too for a state that is not final.
 */
int gf_queue_state_final_status(gf_queue_state s);

#endif
