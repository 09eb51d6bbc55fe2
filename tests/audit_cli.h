/*  `caveat audit ARGS` (and any `caveat ARGS`, or any shell command) run
 *  from a test, as an operator runs it: its exit status, and its output in
 *  out. Needs CAVEAT_CLI. */
#ifndef AUDIT_CLI_H
#define AUDIT_CLI_H

#include <stdio.h>
#include <sys/wait.h>

/*  A shell command's exit status, its stdout (and whatever it sends
 *  there) in out. */
static inline int command_output(const char *command, char *out, size_t size)
{
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    size_t got = fread(out, 1, size - 1, pipe);
    out[got] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*  `caveat ARGS`, stdout and stderr together. */
static inline int caveat_cli(const char *args, char *out, size_t size)
{
    char command[16384];
    snprintf(command, sizeof command, "'%s' %s 2>&1", CAVEAT_CLI, args);
    return command_output(command, out, size);
}

static inline int audit_cli(const char *args, char *out, size_t size)
{
    char command[8192];
    snprintf(command, sizeof command, "audit %s", args);
    return caveat_cli(command, out, size);
}

#endif
