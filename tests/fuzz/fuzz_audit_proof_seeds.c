/*  fuzz_audit_proof_seeds DIR: writes fuzz_audit_proof's seeds: a fresh
 *  log key (made in a temporary directory, then thrown away), its
 *  verifier key in DIR/verifier_key, and in DIR/corpus receipts of trees
 *  of 1, 7 and 300 leaves, each leaf "fuzz leaf N" at index N, as
 *  `caveat subscribe --receipts` writes them (the leaf as extra data).
 *  Run again only to change the seeds; the fuzzer grows its own corpus. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv_audit.h"
#include "fuzz.h"

/*  Leaf index of every seed tree, in leaf; its length. */
static size_t leaf_text(uint64_t index, char leaf[64])
{
    return (size_t)snprintf(leaf, 64, "fuzz leaf %" PRIu64, index);
}

static bool leaf_hash(void *arg, uint64_t index, cv_hash_t *out)
{
    (void)arg;
    char leaf[64];
    cv_merkle_leaf_hash(leaf, leaf_text(index, leaf), out);
    return true;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) == EOF || fclose(f) != 0)
        fuzz_fail("%s: %s", path, strerror(errno));
}

static void write_receipt(const char *dir, const cv_note_signer_t *signer, uint64_t size,
                          uint64_t index)
{
    cv_checkpoint_t checkpoint = {.size = size};
    snprintf(checkpoint.origin, sizeof checkpoint.origin, "%s",
             cv_note_signer_verifier(signer)->name);
    cv_hash_t proof[CV_MERKLE_MAX_PROOF];
    int n = cv_merkle_inclusion_proof(index, size, leaf_hash, NULL, proof);
    if (!cv_merkle_root(size, leaf_hash, NULL, &checkpoint.root) || n < 0)
        fuzz_fail("no proof of %" PRIu64 " in %" PRIu64, index, size);
    char *body = cv_checkpoint_body(&checkpoint);
    char *note = body ? cv_note_sign(signer, body) : NULL;
    char leaf[64];
    size_t len = leaf_text(index, leaf);
    char *text = note ? cv_audit_proof_text(index, leaf, len, proof, n, note) : NULL;
    if (!text)
        fuzz_fail("out of memory");
    char name[64];
    snprintf(name, sizeof name, "corpus/receipt-%" PRIu64 "-of-%" PRIu64, index, size);
    write_file(dir, name, text);
    free(text);
    free(note);
    free(body);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        fuzz_fail("usage: fuzz_audit_proof_seeds DIR");
    char tmp[] = "/tmp/fuzz-audit-proof-XXXXXX";
    cv_error_t err = {0};
    cv_note_signer_t *signer =
        mkdtemp(tmp) ? cv_audit_key_open(tmp, "fuzz.example/log", &err) : NULL;
    if (!signer)
        fuzz_fail("a log key: %s", err.msg);
    char key[CV_VERIFIER_KEY_MAX + 1];
    cv_note_verifier_text(cv_note_signer_verifier(signer), key);
    strcat(key, "\n");
    write_file(argv[1], "verifier_key", key);
    write_receipt(argv[1], signer, 1, 0);
    write_receipt(argv[1], signer, 7, 0);
    write_receipt(argv[1], signer, 7, 6);
    write_receipt(argv[1], signer, 300, 255);
    write_receipt(argv[1], signer, 300, 299);
    cv_note_signer_destroy(&signer);
    char path[sizeof tmp + 16];
    snprintf(path, sizeof path, "%s/audit.key", tmp);
    unlink(path);
    rmdir(tmp);
    return 0;
}
