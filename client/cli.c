/*  cli.c: helpers shared by the subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"

/*  The message goes through cv_text_write: it often quotes what a file or
 *  a store said (SQLite's errors name a crafted schema's text), and no
 *  control character of theirs may reach the terminal. */
int cli_error(int status, const char *fmt, ...)
{
    char message[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
    fputs("caveat: ", stderr);
    cv_text_write(stderr, message, len);
    fputc('\n', stderr);
    return status;
}

const char *cli_take_option(int *argc, char **argv, const char *name, bool *missing)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], name) != 0)
            continue;
        if (i + 1 >= *argc) {
            *missing = true;
            return "";
        }
        const char *value = argv[i + 1];
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
        *argc -= 2;
        return value;
    }
    return NULL;
}

bool cli_take_flag(int *argc, char **argv, const char *name)
{
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], name) == 0) {
            memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof *argv);
            (*argc)--;
            return true;
        }
    return false;
}

/*  The broker keeps its pseudonymisation key in DATA/pseudonym.key: 32
 *  raw bytes, mode 0600. */
static bool read_pseudonym_key(const char *data_dir, uint8_t key[CV_KEY_BYTES])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/pseudonym.key", data_dir);
    FILE *file = fopen(path, "rb");
    if (!file) {
        cli_error(CLI_USAGE, "%s: %s", path, strerror(errno));
        return false;
    }
    size_t n = fread(key, 1, CV_KEY_BYTES, file);
    fclose(file);
    if (n != CV_KEY_BYTES) {
        cli_error(CLI_USAGE, "%s: not a pseudonymisation key (32 bytes)", path);
        return false;
    }
    return true;
}

cv_policy_t *cli_load_policy(const char *path, const char *data_dir)
{
    uint8_t key[CV_KEY_BYTES];
    if (data_dir && !read_pseudonym_key(data_dir, key))
        return NULL;
    cv_error_t err;
    cv_policy_t *policy = cv_policy_load_file(path, data_dir ? key : NULL, &err);
    sodium_memzero(key, sizeof key);
    if (!policy)
        fprintf(stderr, "%s\n", err.msg);
    return policy;
}
