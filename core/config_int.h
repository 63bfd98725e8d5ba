/*
 * core/config_int.h - private to core/: what config.c (the table and its
 * loader) needs from config_parse.c (the settings with a structure of their
 * own).
 */
#ifndef GF_CONFIG_INT_H
#define GF_CONFIG_INT_H

#include "config.h"

/*
 * Checks the structured settings the table stored as strings (FARM_QUEUE_NAME,
 * FARM_QUEUE_TIERS, FARM_REDIS_URL's database, FARM_PROVIDER_FALLBACK,
 * FARM_RATE_LIMITS, FARM_UPLOAD_QUOTAS) and fills their parsed forms in `cfg`.
 * 0, or GF_EINVAL with `err` naming the variable.
 */
int gf_cfg__derive(gf_config_t *cfg, gf_err_t *err);

#endif
