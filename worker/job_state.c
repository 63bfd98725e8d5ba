/*
 * worker/job_state.c - the job's transition table (the diagram in
 * worker_int.h) as one pure function: which state a job in state `s` moves
 * to on event `ev`, given the few facts the answer depends on. job.c's
 * job__advance() asks it, then runs what entering the new state does; the
 * unit test walks every state and event through it.
 */
#include "worker_int.h"

int job__state_is_ended(job_state_t s)
{
    return s == JOB_ENDED || s == JOB_LOST;
}

job_state_t job__next(job_state_t s, job_event_t ev, const job_facts_t *f)
{
    switch (ev) {
    case JOB_EV_READY:
        if (s == JOB_STARTING)
            return f->cancel_asked ? JOB_CANCELING : JOB_RUNNING;
        return s;
    case JOB_EV_PUMP:
        if (s == JOB_RUNNING && f->settled == f->images)
            return JOB_FINISHING;
        if (s == JOB_CANCELING && f->running == 0)
            return JOB_FINISHING;
        return s;
    case JOB_EV_CANCEL:
        /* While starting nothing runs yet: the cancel is remembered (cancel_asked). */
        return s == JOB_RUNNING ? JOB_CANCELING : s;
    case JOB_EV_UNRUNNABLE:
        return s == JOB_STARTING ? JOB_FINISHING : s;
    case JOB_EV_FINISHED:
        return s == JOB_FINISHING ? JOB_CLOSING : s;
    case JOB_EV_CLOSE:
        return s == JOB_STARTING ? JOB_CLOSING : s;
    case JOB_EV_QUEUE_ANSWERED:
        return s == JOB_CLOSING || s == JOB_HANDING_BACK ? JOB_ENDED : s;
    case JOB_EV_STORE_FAILED:
        return s <= JOB_FINISHING ? JOB_HANDING_BACK : s;
    case JOB_EV_DRAIN_TIMEOUT:
        /* A finish already on its way to Postgres (or an end to the queue) is waited for:
         * FINISHING's, or the last image's record that carries it (sent while RUNNING).
         * Handed back then, a generation Postgres has finished would run again. */
        return s <= JOB_CANCELING && !f->finish_sent ? JOB_HANDING_BACK : s;
    case JOB_EV_LEASE_LOST:
        return s == JOB_HANDING_BACK || job__state_is_ended(s) ? s : JOB_LOST;
    }
    return s;
}

const char *job__state_name(job_state_t s)
{
    static const char *const names[] = {
        [JOB_STARTING] = "starting",   [JOB_RUNNING] = "running",
        [JOB_CANCELING] = "canceling", [JOB_FINISHING] = "finishing",
        [JOB_CLOSING] = "closing",     [JOB_HANDING_BACK] = "handing back",
        [JOB_ENDED] = "ended",         [JOB_LOST] = "lost",
    };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) && names[s] ? names[s] : "?";
}
