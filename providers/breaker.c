/*
 * providers/breaker.c - a circuit breaker per adapter.
 *
 * closed --(threshold consecutive failures)--> open --(cool-down over)-->
 * half_open: exactly one probe goes through; its success closes the breaker,
 * its failure opens it again for another cool-down. A probe that ends with no
 * verdict (canceled, the caller's bad input) lets the next call probe.
 * Time is passed in (monotonic ms) so the state machine is pure.
 */
#include "provider_int.h"

void provider__breaker_init(provider_breaker_t *b, int threshold, uint64_t cooldown_ms)
{
    *b = (provider_breaker_t){.state = BREAKER_CLOSED,
                              .threshold = threshold > 0 ? threshold : 1,
                              .cooldown_ms = cooldown_ms};
}

int provider__breaker_allow(provider_breaker_t *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return 1;
    case BREAKER_OPEN:
        if (now_ms < b->open_until_ms)
            return 0;
        b->state = BREAKER_HALF_OPEN;
        b->probe_out = 1;
        return 1;
    case BREAKER_HALF_OPEN:
        if (b->probe_out)
            return 0;
        b->probe_out = 1;
        return 1;
    }
    return 0;
}

void provider__breaker_success(provider_breaker_t *b)
{
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->probe_out = 0;
}

void provider__breaker_failure(provider_breaker_t *b, uint64_t now_ms, uint64_t cooldown_ms)
{
    b->failures++;
    if (b->state == BREAKER_HALF_OPEN || b->failures >= b->threshold ||
        cooldown_ms > b->cooldown_ms) {
        b->state = BREAKER_OPEN;
        b->open_until_ms = now_ms + (cooldown_ms ? cooldown_ms : b->cooldown_ms);
        b->probe_out = 0;
    }
}

void provider__breaker_release(provider_breaker_t *b)
{
    if (b->state == BREAKER_HALF_OPEN)
        b->probe_out = 0;
}

int provider__breaker_refusing(const provider_breaker_t *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_OPEN:
        return now_ms < b->open_until_ms; /* past it, the next call goes as the probe */
    case BREAKER_HALF_OPEN:
        return b->probe_out;
    case BREAKER_CLOSED:
    default:
        return 0;
    }
}

const char *provider__breaker_name(const provider_breaker_t *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return now_ms >= b->open_until_ms ? "half_open" : "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "closed";
}
