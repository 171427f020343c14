/* The modules of this build, in one explicit list (core/modules.c). */
#ifndef ATR_MODULES_H
#define ATR_MODULES_H

/* A module adds its hooks (net/hooks.h) when registered. */
typedef struct atr_module {
    const char *name;
    void (*register_hooks)(void);
} atr_module_t;

/* Register every module's hooks, once, on the main thread, before a config
 * is loaded or a worker starts (main.c). */
void atr_modules_register(void);

#endif
