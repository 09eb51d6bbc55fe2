/*  replay: feeds every file under the directories given (a target's
 *  corpus/ and crashes/) to its LLVMFuzzerTestOneInput, so kept inputs run
 *  as an ordinary test in every build, gcc too. A missing directory is
 *  skipped (crashes/ may be empty); finding no input at all fails, since
 *  that is a wrong path, not a pass. Files starting with '.' are ignored. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"
#include "fuzz.h"

/*  Names sorted, so every run feeds the inputs in the same order. */
static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_hidden(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

static int replay_file(const char *path)
{
    size_t len;
    char *data = cv_read_file(path, &len);
    if (!data) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    /* an exact-size copy, so that AddressSanitizer sees a read past the
     * input's end, as under libFuzzer */
    uint8_t *input = malloc(len ? len : 1);
    if (!input)
        abort();
    memcpy(input, data, len);
    free(data);
    printf("replay: %s\n", path); /* named before a crash */
    fflush(stdout);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    return 1;
}

static int replay_dir(const char *dir)
{
    struct dirent **entries;
    int n = scandir(dir, &entries, not_hidden, by_name);
    if (n < 0)
        return 0;
    int count = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, entries[i]->d_name);
        count += replay_file(path);
        free(entries[i]);
    }
    free(entries);
    return count;
}

int main(int argc, char **argv)
{
    int count = 0;
    for (int i = 1; i < argc; i++)
        count += replay_dir(argv[i]);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replay: %d inputs, no failure\n", count);
    return 0;
}
