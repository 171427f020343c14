/* atrium: command line. -c FILE runs in the foreground, -t checks the
 * configuration exactly as a start would, -T dumps the effective
 * configuration, -v prints versions. */
#include <ares.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "backends/backend.h"
#include "conf/conf.h"
#include "core/ctl_client.h"
#include "core/modules.h"
#include "core/runtime.h"

/* The configuration read without -c: a build setting (meson's default_config):
 * the installed one for an install, the tree's for tools/dev's builds. */
#ifndef ATR_DEFAULT_CONF
#define ATR_DEFAULT_CONF "conf/atrium.conf"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: atrium [-c FILE] [-t] [-T] [-s reload|stop|reopen] [-v] [-h]\n"
            "       atrium [-c FILE | -S SOCKET] ctl COMMAND...   (ctl help lists them)\n"
            "  -c, --config FILE  configuration file (default " ATR_DEFAULT_CONF ")\n"
            "  -t, --test         check the configuration and exit (1 on error)\n"
            "  -T, --dump         check, then print the effective configuration\n"
            "  -s, --signal SIG   tell the running atrium (its pid_file) to reload, stop\n"
            "                     (gracefully) or reopen its logs\n"
            "  -S, --socket PATH  ctl: the control socket (default: the config's 'control')\n"
            "  -v, --version      print the versions of atrium and its libraries\n"
            "  -h, --help         print this help\n"
            "Signals: HUP reloads the configuration, TERM and INT stop gracefully,\n"
            "USR1 reopens the log files. docs/config.md describes the configuration.\n");
}

/* Descriptors Atrium inherited must not reach the scripts and applications
 * it starts: mark every one above stderr close-on-exec. */
static void cloexec_inherited(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(d))
            fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
    closedir(d);
}

static void versions(void)
{
    printf("atrium %s\n", ATR_VERSION);
    printf("libuv %s\n", uv_version_string());
    printf("BoringSSL (%s, API %d)\n", OPENSSL_VERSION_TEXT, BORINGSSL_API_VERSION);
    printf("c-ares %s\n", ares_version(NULL));
}

/* -s: the signal for a word, sent to the pid in the config's pid_file. */
static int send_signal(const atr_conf_t *conf, const char *path, const char *word)
{
    static const struct { const char *word; int sig; } sigs[] = {
        { "reload", SIGHUP }, { "stop", SIGTERM }, { "quit", SIGTERM }, { "reopen", SIGUSR1 },
    };
    int sig = 0;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (strcmp(word, sigs[i].word) == 0)
            sig = sigs[i].sig;
    if (sig == 0) {
        fprintf(stderr, "atrium: -s %s: expected reload, stop or reopen\n", word);
        return 2;
    }
    if (conf->pid_file == NULL) {
        fprintf(stderr, "atrium: -s needs a pid_file in %s to find the running atrium\n", path);
        return 1;
    }
    FILE *f = fopen(conf->pid_file, "r");
    long pid = 0;
    if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        fprintf(stderr, "atrium: pid_file %s: %s\n", conf->pid_file,
                f == NULL ? strerror(errno) : "no process id in it");
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    if (kill((pid_t)pid, sig) < 0) {
        fprintf(stderr, "atrium: process %ld (pid_file %s): %s\n", pid, conf->pid_file,
                strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = ATR_DEFAULT_CONF;
    int check = 0, dump = 0, opt;
    static const struct option longs[] = {
        { "config", required_argument, NULL, 'c' }, { "test", no_argument, NULL, 't' },
        { "dump", no_argument, NULL, 'T' },          { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },          { "signal", required_argument, NULL, 's' },
        { "socket", required_argument, NULL, 'S' },  { NULL, 0, NULL, 0 },
    };
    const char *sig = NULL, *sock = NULL;
    /* '+': options end at the first word, so `ctl`'s own words stay its own */
    while ((opt = getopt_long(argc, argv, "+c:tTvhs:S:", longs, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'T': dump = 1; break;
        case 'v': versions(); return 0;
        case 'h': usage(stdout); return 0;
        case 's': sig = optarg; break;
        case 'S': sock = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    int ctl = optind < argc && strcmp(argv[optind], "ctl") == 0;
    if (ctl && optind + 1 == argc) {
        fprintf(stderr, "atrium: ctl needs a command ('atrium ctl help' lists them)\n");
        return 2;
    }
    if (ctl && sock != NULL)
        return atr_ctl_main(sock, argc - optind - 1, argv + optind + 1);
    if (optind != argc && !ctl) {
        usage(stderr);
        return 2;
    }
    atr_modules_register();
    char err[1024] = "";
    atr_conf_use_protocols(&atr_backend_registry); /* before any load, reloads included */
    if (ctl) {
        /* only `control`: the file may be mid-edit (the reason for a reload) */
        atr_conf_t *cc = atr_conf_load_ex(path, ATR_CONF_CONTROL_ONLY, err, sizeof err);
        int rc = 1;
        if (cc == NULL)
            fprintf(stderr, "%s\n", err);
        else if (cc->control == NULL)
            fprintf(stderr, "atrium: ctl: %s has no 'control PATH;' (or give -S SOCKET)\n", path);
        else
            rc = atr_ctl_main(cc->control, argc - optind - 1, argv + optind + 1);
        atr_conf_free(cc);
        return rc;
    }
    atr_conf_t *conf = atr_conf_load(path, err, sizeof err);
    if (conf == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (sig != NULL) {
        int rc = send_signal(conf, path, sig);
        atr_conf_free(conf);
        return rc;
    }
    if ((check || dump) && atr_runtime_check(conf, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        atr_conf_free(conf);
        return 1;
    }
    if (check || dump) {
        if (dump)
            atr_conf_dump(conf, stdout);
        else
            fprintf(stderr, "atrium: configuration %s is ok\n", path);
        atr_conf_free(conf);
        return 0;
    }
    cloexec_inherited();
    return atr_runtime_run(conf);
}
