/*
 * tests/fuzz/fuzz_upload.c - an upload's bytes through img_upload_normalize
 * (imaging/upload.c: size, type by bytes, declared dimensions, one full
 * decode, re-encode), as POST /v1/uploads runs it.
 *
 * The pixel limit is 1 MP instead of the default 40 MP so each input decodes
 * in milliseconds; the header checks the limit guards are the same.
 *
 * What must hold, else abort: an accepted upload's output is an image of the
 * format and byte length `info` reports, and normalizing that output again accepts
 * it with the same dimensions (what is stored can be read back).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "imaging.h"

static img_limits lim;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gf_log_min_level = GF_LOG_ERROR + 1;
    char *env[] = {"FARM_UPLOAD_MAX_PIXELS=1048576", "FARM_VIPS_CONCURRENCY=1",
                   "FARM_VIPS_CACHE_MB=0", NULL};
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(env, &err);
    if (cfg == NULL || img_init(cfg, &err) != 0) {
        fprintf(stderr, "fuzz_upload: setup failed: %s\n", err.msg);
        abort();
    }
    lim = img_limits_from_config(cfg);
    gf_cfg_free(cfg);
    return 0;
}

static void check_output(const img_buf *out, const img_info *info)
{
    if (out->len == 0 || out->len != info->bytes || info->width <= 0 || info->height <= 0 ||
        img_sniff(out->data, out->len) != info->format) {
        fprintf(stderr, "accepted upload: output of %zu bytes does not match its info\n", out->len);
        abort();
    }
    img_buf again;
    img_info info2;
    gf_err_t err = {0};
    if (img_upload_normalize(out->data, out->len, &lim, &again, &info2, &err) != 0 ||
        info2.width != info->width || info2.height != info->height) {
        fprintf(stderr, "the normalized upload (%dx%d) does not normalize again: %s\n", info->width,
                info->height, err.msg);
        abort();
    }
    img_buf_dispose(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    img_buf out;
    img_info info;
    gf_err_t err = {0};
    if (img_upload_normalize(data, size, &lim, &out, &info, &err) == 0)
        check_output(&out, &info);
    else if (out.data != NULL || err.code == 0) {
        fprintf(stderr, "a refused upload left an output or no error\n");
        abort();
    }
    img_buf_dispose(&out);
    return 0;
}
