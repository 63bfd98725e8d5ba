/*
 * worker_leftovers (local storage) and worker_leftovers_s3 (the fixture's S3
 * server): the sweeper deletes leftover files (issue #17; docs/storage.md,
 * "Leftover files") and nothing else. A farm-api and one farm-worker on the
 * fake provider, sweeping every second in pages of 3 objects (so a pass
 * takes several pages, each resumed from the last one's cursor).
 *
 * One generation is made and succeeds; its outputs are the referenced
 * files. Beside them the test plants, old:
 * - a put's temporary file (".{name}.tmp.{suffix}", what a writer killed
 *   mid-put leaves) in the generation's folder;
 * - an attempt file of that generation that no output records (a stale
 *   attempt's, "{index}-{variant}.a{attempt}.{ext}");
 * - a file in an upload's place that no upload row records (an api stopped
 *   between its put and its record), beside a real upload's file, made old
 *   too;
 * - an attempt-named file in a folder that is no generation (never the
 *   sweeper's);
 * and, young, another temporary file. Then: the old temporary file, the
 * stale attempt file and the unrecorded upload's file are gone; every
 * output, the recorded upload's file, the non-generation file and the young
 * temporary file remain with their bytes (sha256sum and ls locally, the AWS
 * SDK on S3: clients that are not ours);
 * farm_sweeper_leftover_files_deleted_total counts one of each kind, and
 * GET still serves every output.
 *
 * "Old": locally, files are backdated two hours (touch -d) and the grace is
 * the default (FARM_SWEEP_LEFTOVER_GRACE_S, one hour); S3 cannot be
 * backdated, so there the grace is 30 s and the test waits it out before it
 * plants the young file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <vips/vips.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "farm_fixture.h"

#define S3_GRACE_S 30 /* FARM_SWEEP_LEFTOVER_GRACE_S on S3 */

/* --- the farm ------------------------------------------------------------------ */

static const char *const both_env[] = {
    "FARM_PROVIDER=fake", "FARM_PROVIDER_FALLBACK=fal,bfl,replicate,hf",
    "FARM_QUEUE_TIERS=pro:4:1000,free:1:3", "FARM_QUEUE_LEASE_S=2", NULL};
/* The last: the grace on S3, which cannot be backdated. */
static const char *worker_env[] = {"FARM_SWEEP_INTERVAL_S=1", "FARM_SWEEP_BATCH=3",
                                   "FARM_LOG_LEVEL=info", NULL, NULL};
static const ff_farm_t farm = {.reason = "leftovers",
                               .fake_latency_ms = 200,
                               .s3_prefix = "left/",
                               .metrics = 1,
                               .both = both_env,
                               .worker = worker_env};

static int setup(void **state)
{
    (void)state;
    if (ff_wants_s3())
        worker_env[3] = "FARM_SWEEP_LEFTOVER_GRACE_S=30";
    if (VIPS_INIT("worker_leftovers") != 0) /* the recorded upload's PNG */
        return -1;
    return ff_setup(&farm);
}

static int teardown(void **state)
{
    (void)state;
    return ff_teardown();
}

/* --- objects, planted and checked with clients that are not ours ------------------ */

/* Stores `text` under `key` (locally backdated two hours when `old`); its SHA-256 into `sha`. */
static void plant(const char *key, const char *text, int old, char sha[65])
{
    char file[700];
    snprintf(file, sizeof(file), "%s/planted", ts_env("FARM_TEST_TMPDIR"));
    assert_int_equal(ts_sh("printf '%%s' '%s' > '%s'", text, file), 0);
    char cmd[900];
    snprintf(cmd, sizeof(cmd), "sha256sum < '%s' | cut -c1-64", file);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(sha, 65, p));
    pclose(p);
    if (ff_s3) {
        assert_int_equal(ff_interop("put", key, file), 0);
        return;
    }
    assert_int_equal(ts_sh("mkdir -p \"$(dirname '%s/%s')\" && cp '%s' '%s/%s'", ff_storage_dir,
                           key, file, ff_storage_dir, key),
                     0);
    if (old)
        assert_int_equal(ts_sh("touch -d '2 hours ago' '%s/%s'", ff_storage_dir, key), 0);
}

static int object_absent(const char *key)
{
    if (ff_s3)
        return ff_interop("absent", key, NULL) == 0;
    return ts_sh("! ls -a \"$(dirname '%s/%s')\" | grep -qxF \"$(basename '%s')\"", ff_storage_dir,
                 key, key) == 0;
}

/* --- the test ---------------------------------------------------------------------- */

static void test_the_sweeper_deletes_leftovers_and_nothing_else(void **state)
{
    (void)state;
    char id[37];
    au_create(ff_tok,
              "{\"kind\":\"avatar\",\"prompt\":\"leftovers\",\"count\":1,\"width\":256,"
              "\"height\":256}",
              id);
    json_t *g = au_wait_status(ff_tok, id, AU_ENDED, 60);
    if (g == NULL)
        ff_dump_logs(30);
    assert_non_null(g);
    assert_string_equal(json_string_value(json_object_get(g, "status")), "succeeded");
    json_t *outputs = json_object_get(g, "outputs");
    size_t n_out = json_array_size(outputs);
    assert_true(n_out >= 4 && n_out <= 8);
    char out_keys[8][300];
    for (size_t i = 0; i < n_out; i++)
        ff_output_key(json_array_get(outputs, i), out_keys[i]);
    /* "{user}/{gen}/0-full.a{N}.webp" and its siblings: an attempt's names. */
    const char *slash = strrchr(out_keys[0], '/');
    assert_non_null(slash);
    assert_non_null(strstr(slash, ".a"));
    char dir[300];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - out_keys[0]), out_keys[0]);

    /* A recorded upload, its file made old like the planted ones. */
    char up_id[37], recorded[400];
    ff_upload_png(ff_tok, 32, 32, up_id);
    snprintf(recorded, sizeof(recorded), "%s/uploads/%s.png", ff_user, up_id);
    char sha_recorded[65] = "", cmd[300];
    snprintf(cmd, sizeof(cmd),
             "psql -XAt \"$FARM_DATABASE_URL\" -c \"SELECT sha256 FROM uploads WHERE id = '%s'\"",
             up_id);
    FILE *q = popen(cmd, "r");
    assert_non_null(q);
    assert_non_null(fgets(sha_recorded, sizeof(sha_recorded), q));
    pclose(q);
    assert_true(ff_object_present(recorded, sha_recorded));
    if (!ff_s3)
        assert_int_equal(ts_sh("touch -d '2 hours ago' '%s/%s'", ff_storage_dir, recorded), 0);
    char stale_tmp[400], stale_attempt[400], upload[400], not_gen[400], young_tmp[400];
    snprintf(stale_tmp, sizeof(stale_tmp), "%s/.0-full.a999999.webp.tmp.Ab12Cd", dir);
    snprintf(stale_attempt, sizeof(stale_attempt), "%s/0-full.a999999.webp", dir);
    snprintf(upload, sizeof(upload), "%s/uploads/0b9c5d2e-1f3a-4b5c-8d6e-7f8091a2b3c4.png",
             ff_user);
    snprintf(not_gen, sizeof(not_gen), "%s/not-a-generation/0-full.a1.webp", ff_user);
    snprintf(young_tmp, sizeof(young_tmp), "%s/.1-full.a999999.webp.tmp.Yo93ng", dir);
    char sha_stale_tmp[65], sha_stale_attempt[65], sha_upload[65], sha_not_gen[65], sha_young[65];
    plant(stale_tmp, "a temporary file of a killed writer", 1, sha_stale_tmp);
    plant(stale_attempt, "a file of a stale attempt", 1, sha_stale_attempt);
    plant(upload, "the file of an upload", 1, sha_upload);
    plant(not_gen, "not the file of a generation", 1, sha_not_gen);
    if (ff_s3)
        sleep(S3_GRACE_S + 2); /* the grace runs out for what was planted so far */
    plant(young_tmp, "a put in flight", 0, sha_young);
    double planted_young = ts_now();

    /* A pass over storage is a few pages of 3, one a second. */
    double end = ts_now() + 20;
    while (!(object_absent(stale_tmp) && object_absent(stale_attempt) && object_absent(upload)) &&
           ts_now() < end)
        usleep(250000);
    int gone = object_absent(stale_tmp) && object_absent(stale_attempt) && object_absent(upload);
    if (!gone)
        ff_dump_logs(30);
    assert_true(gone);
    /* A pass more: what stays has been seen again. The counts and the young file are read
     * while it is still young (on S3 the grace runs from its planting). */
    sleep(4);
    double temps = ff_worker_metric("farm_sweeper_leftover_files_deleted_total{kind=\"temp\"} ");
    double attempts =
        ff_worker_metric("farm_sweeper_leftover_files_deleted_total{kind=\"attempt\"} ");
    double uploads =
        ff_worker_metric("farm_sweeper_leftover_files_deleted_total{kind=\"upload\"} ");
    assert_true(ff_object_present(young_tmp, sha_young));
    if (ff_s3) /* the young file was younger than the grace all along, or this proves nothing */
        assert_true(ts_now() - planted_young < S3_GRACE_S - 1);
    assert_int_equal((int)temps, 1);
    assert_int_equal((int)attempts, 1);
    assert_int_equal((int)uploads, 1);
    (void)sha_upload;
    /* Never the sweeper's, whatever their age. */
    assert_true(ff_object_present(recorded, sha_recorded));
    assert_true(ff_object_present(not_gen, sha_not_gen));
    for (size_t i = 0; i < n_out; i++) {
        json_t *o = json_array_get(outputs, i);
        assert_true(
            ff_object_present(out_keys[i], json_string_value(json_object_get(o, "sha256"))));
    }
    json_decref(g);
    /* GET still serves the same outputs. */
    g = au_wait_status(ff_tok, id, AU_ENDED, 5);
    assert_non_null(g);
    assert_int_equal(json_array_size(json_object_get(g, "outputs")), n_out);
    json_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_sweeper_deletes_leftovers_and_nothing_else),
    };
    return cmocka_run_group_tests_name("worker_leftovers", tests, setup, teardown);
}
