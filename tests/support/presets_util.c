/*
 * tests/support/presets_util.c - see presets_util.h.
 */
#include "presets_util.h"

#include <stdlib.h>

img_presets_t *pu_presets;

const char *pu_presets_dir(void)
{
    const char *dir = getenv("FARM_TEST_PRESETS_DIR");
    return dir ? dir : "imaging/presets";
}

int pu_presets_setup(void **state)
{
    (void)state;
    pu_presets = img_presets_load(pu_presets_dir(), NULL);
    return pu_presets ? 0 : -1;
}

int pu_presets_teardown(void **state)
{
    (void)state;
    img_presets_free(pu_presets);
    pu_presets = NULL;
    return 0;
}
