/*
 * tests/fuzz/replay.c - the main() of a fuzz target in the test build (gcc,
 * ASan/UBSan, no libFuzzer): feeds every file of the corpus directories
 * given as arguments to LLVMFuzzerTestOneInput, once each, in name order.
 * A sanitizer report or an abort fails the ctest; so does a directory with
 * no inputs, so a broken corpus path cannot pass silently.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Reads a whole file; NULL on error. A zero-length file gives a 1-byte buffer and *len = 0. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL &&
        fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)st.st_size : 0;
    return buf;
}

static int replay_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot read %s\n", dir);
        return -1;
    }
    int done = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (names[i]->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(names[i]);
            continue;
        }
        size_t len;
        uint8_t *data = read_file(path, &len);
        if (data == NULL) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            failed = 1;
        } else {
            /* The input in its own allocation of its exact size, as libFuzzer gives it,
             * so ASan catches a read one past its end. */
            uint8_t *exact = malloc(len ? len : 1);
            memcpy(exact, data, len);
            free(data);
            LLVMFuzzerTestOneInput(exact, len);
            free(exact);
            done++;
        }
        free(names[i]);
    }
    free(names);
    printf("replay: %d inputs from %s\n", done, dir);
    if (done == 0) {
        fprintf(stderr, "replay: no inputs in %s\n", dir);
        return -1;
    }
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++)
        if (replay_dir(argv[i]) < 0)
            return 1;
    return 0;
}
