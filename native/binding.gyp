{
  # Two modules. "recurformer" is the production addon: every .cpp directly under src/ (not its subfolders). SIMD
  # kernels are compiled per function with __attribute__((target("avx2,fma,f16c"))) and chosen at run time, so the
  # baseline build runs on any x86-64. "recurformer_bench" holds the benchmarks' hardware probes (FMA peak, memory
  # bandwidth, src/bench/probes.cpp) with the runtime they run on; only bench/lib/hw.ts loads it.
  "target_defaults": {
    "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-O2", "-O3"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"],
    "ldflags": ["-pthread"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CPLUSPLUSFLAGS": ["-O3"]
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
  },
  "targets": [
    {
      "target_name": "recurformer",
      "sources": ["<!@(node -p \"require('fs').readdirSync('src').filter(f=>f.endsWith('.cpp')).sort().map(f=>'src/'+f).join(' ')\")"]
    },
    {
      "target_name": "recurformer_bench",
      "sources": ["src/bench/probes.cpp", "src/runtime.cpp"]
    }
  ]
}
