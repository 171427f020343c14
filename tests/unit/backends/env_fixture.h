/* Hand-made CGI environments for the encoder tests: variables in the order
 * a case gives them, values with any bytes. */
#ifndef ATR_TEST_ENV_FIXTURE_H
#define ATR_TEST_ENV_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "backends/cgi_env.h"

static void env_add(atr_cgi_env_t *e, const char *name, const char *value, size_t vn)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->names = realloc(e->names, (size_t)e->cap * sizeof *e->names);
        e->values = realloc(e->values, (size_t)e->cap * sizeof *e->values);
        e->name_lens = realloc(e->name_lens, (size_t)e->cap * sizeof *e->name_lens);
        e->value_lens = realloc(e->value_lens, (size_t)e->cap * sizeof *e->value_lens);
    }
    e->names[e->n] = strdup(name);
    e->name_lens[e->n] = (uint32_t)strlen(name);
    e->values[e->n] = malloc(vn + 1);
    memcpy(e->values[e->n], value, vn);
    e->values[e->n][vn] = '\0';
    e->value_lens[e->n] = (uint32_t)vn;
    e->n++;
}

static void env_adds(atr_cgi_env_t *e, const char *name, const char *value)
{
    env_add(e, name, value, strlen(value));
}

static void env_clear(atr_cgi_env_t *e)
{
    int i;
    for (i = 0; i < e->n; i++) {
        free(e->names[i]);
        free(e->values[i]);
    }
    /* Four arrays of its own (atr_cgi_env_build's env keeps them in one block). */
    free(e->names);
    free(e->values);
    free(e->name_lens);
    free(e->value_lens);
    memset(e, 0, sizeof *e);
}

#endif
