/*
 * tests/unit/core/config_util.h - what the configuration unit tests share:
 * loading an environment that must be refused or accepted.
 */
#ifndef CONFIG_UTIL_H
#define CONFIG_UTIL_H

#include <stddef.h>

#include "config.h"

/* A teardown: forgets the secrets the load registered, logs to stderr again. */
int cu_teardown(void **state);

/* Loads a config that must be refused; returns the error message. */
gf_err_t cu_load_refused(char *const *envp);

/* Loads one variable; the config when accepted (free it), NULL with `err` otherwise. */
gf_config_t *cu_load_one(const char *var, gf_err_t *err);

/* A single-variable environment is refused with a message holding `needle`. */
void cu_refused(const char *var, const char *needle);

/* Each of `n` single-variable environments is refused with a message holding `needle`. */
void cu_all_refused(const char *const *vars, size_t n, const char *needle);
#define ALL_REFUSED(vars, needle) cu_all_refused((vars), sizeof(vars) / sizeof((vars)[0]), (needle))

/* A single-variable environment is accepted. */
void cu_accepted(const char *var);

#endif
