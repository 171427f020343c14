/* The generic registry: lookup by the name that is each entry's first member,
 * exact and case-sensitive; the names listed for messages as "a, b or c",
 * cut short but terminated when the buffer is small. */
#include "base/registry.h"
#include "base/util.h"
#include "t.h"

/* An ops table of the shape the registry expects: the name first. */
typedef struct demo_ops {
    const char *name;
    int id;
} demo_ops_t;

static const demo_ops_t alpha = { "alpha", 1 }, beta = { "beta", 2 }, gamma_ = { "gamma", 3 };
static const void *const three[] = { &alpha, &beta, &gamma_ };

static const atr_registry_t reg0 = { "demo", three, 0 };
static const atr_registry_t reg1 = { "demo", three, 1 };
static const atr_registry_t reg2 = { "demo", three, 2 };
static const atr_registry_t reg3 = { "demo", three, 3 };

static const struct {
    int line;
    const atr_registry_t *reg;
    const char *name;
    int id; /* 0 = not found */
} find_cases[] = {
    { __LINE__, &reg3, "alpha", 1 },
    { __LINE__, &reg3, "beta", 2 },
    { __LINE__, &reg3, "gamma", 3 },
    { __LINE__, &reg2, "gamma", 0 }, /* past n */
    { __LINE__, &reg0, "alpha", 0 },
    { __LINE__, &reg3, "Alpha", 0 },
    { __LINE__, &reg3, "alph", 0 },
    { __LINE__, &reg3, "alphas", 0 },
    { __LINE__, &reg3, "", 0 },
};

static const struct {
    int line;
    const atr_registry_t *reg;
    size_t cap;
    const char *want;
} names_cases[] = {
    { __LINE__, &reg0, 64, "" },
    { __LINE__, &reg1, 64, "alpha" },
    { __LINE__, &reg2, 64, "alpha or beta" },
    { __LINE__, &reg3, 64, "alpha, beta or gamma" },
    { __LINE__, &reg3, 21, "alpha, beta or gamma" }, /* exactly fits */
    { __LINE__, &reg3, 20, "alpha, beta or gamm" },
    { __LINE__, &reg3, 9, "alpha, b" },
    { __LINE__, &reg3, 1, "" },
};

static const char *const words[] = { "debug", "info", "crit" };

static const struct {
    int line;
    size_t n;
    const char *want;
} join_cases[] = {
    { __LINE__, 0, "" },
    { __LINE__, 1, "debug" },
    { __LINE__, 2, "debug or info" },
    { __LINE__, 3, "debug, info or crit" },
};

int main(void)
{
    char buf[64];
    for (size_t c = 0; c < ATR_ARRAY_SIZE(find_cases); c++) {
        const demo_ops_t *o = atr_registry_find(find_cases[c].reg, find_cases[c].name);
        T_CHECK(find_cases[c].line, (o == NULL ? 0 : o->id) == find_cases[c].id, "find(\"%s\")",
                find_cases[c].name);
        if (o != NULL)
            T_CHECK(find_cases[c].line, atr_registry_name(o) == o->name, "name of %s", o->name);
    }
    for (size_t c = 0; c < ATR_ARRAY_SIZE(names_cases); c++) {
        memset(buf, 'x', sizeof(buf));
        char *got = atr_registry_names(names_cases[c].reg, buf, names_cases[c].cap);
        T_CHECK(names_cases[c].line, got == buf && strcmp(buf, names_cases[c].want) == 0, "got '%s'",
                buf);
    }
    for (size_t c = 0; c < ATR_ARRAY_SIZE(join_cases); c++) {
        atr_words_join(words, join_cases[c].n, buf, sizeof(buf));
        T_CHECK(join_cases[c].line, strcmp(buf, join_cases[c].want) == 0, "got '%s'", buf);
    }
    T_DONE();
}
