/*
 * tests/unit/storage/local_fixture.h - the local storage the storage unit
 * tests share: a fresh directory under /tmp, a loop, and a storage_t on it.
 */
#ifndef GF_TESTS_STORAGE_LOCAL_FIXTURE_H
#define GF_TESTS_STORAGE_LOCAL_FIXTURE_H

#include <uv.h>

#include "config.h"
#include "storage.h"

/* The directory (objects live in root/objects), the loop and the storage. */
extern char root[256];
extern uv_loop_t loop;
extern gf_config_t *cfg;
extern storage_t *st;

/* cmocka setup and teardown: a new /tmp/genfarm-storage-NAME.XXXXXX and its
 * storage; teardown closes the storage and removes the directory. */
int local_fixture_setup(const char *name);
int local_fixture_teardown(void);

#endif
