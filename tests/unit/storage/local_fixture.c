/*
 * tests/unit/storage/local_fixture.c - see local_fixture.h.
 */
#include "local_fixture.h"

#include <stdio.h>
#include <stdlib.h>

char root[256];
uv_loop_t loop;
gf_config_t *cfg;
storage_t *st;

static char root_env[300];
static int closed;

int local_fixture_setup(const char *name)
{
    snprintf(root, sizeof(root), "/tmp/genfarm-storage-%s.XXXXXX", name);
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(root_env, sizeof(root_env), "FARM_STORAGE_DIR=%s/objects", root);
    char *env[] = {root_env, NULL};
    gf_err_t err = {0};
    cfg = gf_cfg_load(env, &err);
    uv_loop_init(&loop);
    st = storage_new(&loop, cfg, NULL, &err);
    return st ? 0 : -1;
}

static void on_closed(void *data)
{
    (void)data;
    closed = 1;
}

int local_fixture_teardown(void)
{
    closed = 0;
    storage_close(st, on_closed, NULL);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_loop_close(&loop);
    gf_cfg_free(cfg);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}
