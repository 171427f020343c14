/* Lookup by name in a registry of ops tables (see registry.h). */
#include "base/registry.h"

#include <stdio.h>
#include <string.h>

const char *atr_registry_name(const void *entry)
{
    /* a pointer to a struct, converted, points to its first member (C11 6.7.2.1) */
    return *(const char *const *)entry;
}

const void *atr_registry_find(const atr_registry_t *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(atr_registry_name(reg->entries[i]), name) == 0)
            return reg->entries[i];
    return NULL;
}

/* "a", "a or b", "a, b or c": the word before the last is followed by " or ". */
static void join(char *buf, size_t cap, size_t n, const char *(*word)(const void *set, size_t i),
                 const void *set)
{
    size_t len = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + len, cap - len, "%s%s", sep, word(set, i));
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static const char *entry_word(const void *set, size_t i)
{
    return atr_registry_name(((const atr_registry_t *)set)->entries[i]);
}

static const char *array_word(const void *set, size_t i)
{
    return ((const char *const *)set)[i];
}

char *atr_registry_names(const atr_registry_t *reg, char *buf, size_t cap)
{
    join(buf, cap, reg->n, entry_word, reg);
    return buf;
}

char *atr_words_join(const char *const *words, size_t n, char *buf, size_t cap)
{
    join(buf, cap, n, array_word, words);
    return buf;
}
