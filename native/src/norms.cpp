// Placeholder: kernels of this file are not written yet; the TS side falls back to the reference backend.
#include "common.h"

void register_norms(Napi::Env, Napi::Object) {}
