/* A registry: one explicit array per kind of plug-in (balancing methods,
 * backend protocols), looked up by name, so that the config, `-T` and error
 * messages all read the same array and a name is spelled once.
 *
 * Contract: every entry is an ops table whose FIRST member is
 * `const char *name` (atr_lb_ops_t, atr_backend_ops_t). The registry only
 * reads that member; the caller casts a found entry back to its ops type.
 * Registries are static const data: nothing here allocates or locks. */
#ifndef ATR_REGISTRY_H
#define ATR_REGISTRY_H

#include <stddef.h>

typedef struct atr_registry {
    const char *kind;           /* what an entry is, for messages: "protocol" */
    const void *const *entries; /* n ops tables, in the order messages list them */
    size_t n;
} atr_registry_t;

/* The entry named `name`, or NULL when none is. */
const void *atr_registry_find(const atr_registry_t *reg, const char *name);

/* The name of an entry (its first member). entry must not be NULL. */
const char *atr_registry_name(const void *entry);

/* Write the registry's names as a message lists them, "a, b or c", into
 * buf[0..cap) (cut short, still NUL-terminated, when it does not fit).
 * Returns buf, so the call can be a printf argument. */
char *atr_registry_names(const atr_registry_t *reg, char *buf, size_t cap);

/* The same for a plain array of n words. */
char *atr_words_join(const char *const *words, size_t n, char *buf, size_t cap);

#endif
