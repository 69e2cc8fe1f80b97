/*
 * llamacpp-quantize: quantize a GGUF file with llama.cpp's own llama_model_quantize, loaded at run time from the
 * libllama shared library node-llama-cpp ships (a dev dependency). Used by test/io/llamacpp-quantized.test.ts, which
 * compiles it with `cc` into a temporary folder; nothing here is part of the package.
 *
 *   llamacpp-quantize LIBLLAMA.so IN.gguf OUT.gguf FTYPE
 *
 * FTYPE is llama.cpp's enum llama_ftype (include/llama.h): 15 MOSTLY_Q4_K_M, 17 MOSTLY_Q5_K_M, 18 MOSTLY_Q6_K.
 *
 * The parameter struct is returned by value from llama_model_quantize_default_params. Its layout changes between
 * llama.cpp releases, but every release so far begins with `int32_t nthread; enum llama_ftype ftype;`, and those are
 * the only two fields set here. A struct that is larger than the real one (the real one is under 100 bytes) is
 * returned through the same hidden pointer on x86-64 and arm64, so declaring 512 bytes after the two fields is safe:
 * the callee writes the real struct, the rest stays as we zeroed it.
 *
 * Exit status: 0 when llama_model_quantize returned 0; 2 usage; 3 the library or a symbol could not be loaded;
 * 4 llama.cpp reported a failure (its log goes to stderr).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct quantize_params {
    int32_t nthread;
    int32_t ftype;             /* enum llama_ftype: an int-sized enum */
    unsigned char rest[512];   /* the release's remaining fields, left at their defaults */
};

typedef struct quantize_params (*default_params_fn)(void);
typedef uint32_t (*quantize_fn)(const char *fname_inp, const char *fname_out, const struct quantize_params *params);
typedef void (*backend_init_fn)(void);

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s LIBLLAMA.so IN.gguf OUT.gguf FTYPE\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "llamacpp-quantize: cannot load %s: %s\n", argv[1], dlerror());
        return 3;
    }
    default_params_fn defaults = (default_params_fn)dlsym(lib, "llama_model_quantize_default_params");
    quantize_fn quantize = (quantize_fn)dlsym(lib, "llama_model_quantize");
    backend_init_fn backend_init = (backend_init_fn)dlsym(lib, "llama_backend_init");
    if (!defaults || !quantize || !backend_init) {
        fprintf(stderr, "llamacpp-quantize: %s lacks llama_model_quantize, its default params or llama_backend_init\n", argv[1]);
        return 3;
    }
    backend_init();
    struct quantize_params p;
    memset(&p, 0, sizeof p);
    p = defaults();
    p.nthread = 1;
    p.ftype = (int32_t)strtol(argv[4], NULL, 10);
    uint32_t rc = quantize(argv[2], argv[3], &p);
    if (rc != 0) {
        fprintf(stderr, "llamacpp-quantize: llama_model_quantize returned %u\n", rc);
        return 4;
    }
    return 0;
}
