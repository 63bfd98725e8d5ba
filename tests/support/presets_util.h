/*
 * tests/support/presets_util.h - what the unit tests of a generation's
 * parameters share (imaging's params, the api's validation): the
 * repository's presets (imaging/presets, or FARM_TEST_PRESETS_DIR), loaded
 * once for a group of tests.
 */
#ifndef PRESETS_UTIL_H
#define PRESETS_UTIL_H

#include "imaging.h"

/* The directory of the repository's presets: FARM_TEST_PRESETS_DIR, or imaging/presets. */
const char *pu_presets_dir(void);

/* The presets pu_presets_setup() loaded; NULL outside the group. */
extern img_presets_t *pu_presets;

/* Setup and teardown for a cmocka group or test: loads and frees pu_presets. */
int pu_presets_setup(void **state);
int pu_presets_teardown(void **state);

#endif
