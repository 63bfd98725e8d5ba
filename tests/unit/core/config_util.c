/*
 * tests/unit/core/config_util.c - see config_util.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config_util.h"
#include "log.h"

int cu_teardown(void **state)
{
    (void)state;
    gf_log_clear_secrets();
    gf_log_set_fd(2);
    return 0;
}

/* Loads a config that must be refused; returns the error message. */
gf_err_t cu_load_refused(char *const *envp)
{
    gf_err_t err = {0};
    gf_config_t *cfg = gf_cfg_load(envp, &err);
    assert_null(cfg);
    assert_int_equal(err.code, GF_EINVAL);
    return err;
}

/* Loads one variable; the config when accepted (free it), NULL with `err` otherwise. */
gf_config_t *cu_load_one(const char *var, gf_err_t *err)
{
    char *envp[] = {(char *)var, NULL};
    return gf_cfg_load(envp, err);
}

/* A single-variable environment is refused with a message holding `needle`. */
void cu_refused(const char *var, const char *needle)
{
    char *envp[] = {(char *)var, NULL};
    gf_err_t err = cu_load_refused(envp);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("%s: refused with \"%s\", which does not hold \"%s\"", var, err.msg, needle);
}

/* Each of `n` single-variable environments is refused with a message holding `needle`. */
void cu_all_refused(const char *const *vars, size_t n, const char *needle)
{
    for (size_t i = 0; i < n; i++)
        cu_refused(vars[i], needle);
}

/* A single-variable environment is accepted. */
void cu_accepted(const char *var)
{
    gf_err_t err = {0};
    gf_config_t *cfg = cu_load_one(var, &err);
    if (cfg == NULL)
        fprintf(stderr, "%s: %s\n", var, err.msg);
    assert_non_null(cfg);
    gf_cfg_free(cfg);
}
