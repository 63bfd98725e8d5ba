/*
 * tests/support/s3_faults.h - drives the fixture's S3 fault proxy
 * (tests/s3/faults.js, at FARM_TEST_S3_FAULTS_ENDPOINT, started with
 * FARM_TEST_S3=1 FARM_TEST_S3_FAULTS=1): rules for the next requests, and
 * the log of what it did to each one.
 */
#ifndef TEST_S3_FAULTS_H
#define TEST_S3_FAULTS_H

/* Forgets every rule and the log. 0, or -1 when the proxy did not answer. */
int s3f_clear(void);

/*
 * The next `count` requests of `method` whose path contains `match` (NULL:
 * any path) get `action`: "status" (answered `status`: 500, 503, 429, 400 or
 * 404, with S3's error document: InternalError, SlowDown, TooManyRequests,
 * RequestTimeout, NoSuchKey),
 * "stall" (neither forwarded nor answered for `ms`, then dropped) or "cut"
 * (a PUT's body forwarded in half then dropped; a GET's answer passed on
 * with half its body, framed as whole). 0, or -1 when the proxy refused it.
 */
int s3f_add(const char *method, const char *match, int count, const char *action, int status,
            int ms);

/*
 * How many requests of `method` whose path contains `match` (NULL: any) the
 * proxy saw with `action` ("pass", "status 503", "stall", "cut"; NULL: any).
 * -1 when the proxy did not answer.
 */
int s3f_seen(const char *method, const char *match, const char *action);

/*
 * When the proxy saw the requests s3f_seen() would count, in seconds of its
 * clock, in arrival order: up to `max` into `out`; how many, or -1.
 */
int s3f_times(const char *method, const char *match, const char *action, double *out, int max);

/* How many rules still wait for their requests; -1 when the proxy did not answer. */
int s3f_rules_left(void);

#endif
