// CPU feature detection and the choice of the kernel path (scalar, AVX2, AVX-512) at run time.
//
// The program is built for baseline x86-64; the SIMD kernels (kernels/dot_avx2.cpp,
// kernels/dot_avx512.cpp) are compiled for their instruction sets function by function and only
// ever called when the CPU and the operating system support them. The active path is the best
// one this machine supports, or the one named by the environment variable `HEARTH_CPU`
// (`scalar`, `avx2`, `avx512`), read once, at the first use.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hearth::kernels {

/// The kernel families, from slowest to fastest. A path's kernels fall back to those of the
/// path below it for the types it has no kernel of its own for.
enum class CpuPath : int {
  scalar = 0,  ///< the portable reference kernels (kernels/dot_scalar.h)
  avx2 = 1,    ///< AVX2 + FMA + F16C (Haswell, Zen 1 and later)
  avx512 = 2,  ///< AVX-512 F/BW/VL + VNNI (Ice Lake, Cascade Lake, Zen 4 and later); BF16 if present
};

/// Number of CpuPath values.
inline constexpr int kCpuPathCount = 3;

/// What the CPU reports (cpuid) and what the OS has enabled (xgetbv). On non-x86 builds every
/// field is false.
struct CpuFeatures {
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx512_vbmi = false;
  bool os_ymm = false;  ///< XCR0 enables the AVX (YMM) register state
  bool os_zmm = false;  ///< XCR0 enables the AVX-512 opmask and ZMM register state
};

/// This machine's features, detected once (cpuid + xgetbv).
const CpuFeatures& cpu_features();

/// Space-separated names of the features that are present, e.g.
/// "avx avx2 fma f16c avx512f ... os_ymm os_zmm"; "none" if there are none.
std::string cpu_feature_names(const CpuFeatures& f);

/// True if a CPU with features `f` (and its OS) can run the kernels of `path`:
/// scalar always; avx2 needs avx, avx2, fma, f16c and os_ymm; avx512 needs those plus
/// avx512f, avx512bw, avx512vl, avx512_vnni and os_zmm (avx512_bf16 is used when present).
bool cpu_supports(CpuPath path, const CpuFeatures& f);

/// cpu_supports(path, cpu_features()).
bool cpu_supports(CpuPath path);

/// The best path a CPU with features `f` supports.
CpuPath best_cpu_path(const CpuFeatures& f);

/// "scalar", "avx2" or "avx512".
const char* cpu_path_name(CpuPath path);

/// The path named `name` ("scalar", "avx2", "avx512"; exact, lower case), or nothing.
std::optional<CpuPath> parse_cpu_path(std::string_view name);

/// The path to use on a CPU with features `f` when `HEARTH_CPU` has the value `hearth_cpu`
/// (nullptr or "" when unset: the best supported path).
/// Throws hearth::Error naming the value and the CPU's features if the value is not a path
/// name or names a path this CPU cannot run.
CpuPath select_cpu_path(const char* hearth_cpu, const CpuFeatures& f);

/// The active path of this process: select_cpu_path(getenv("HEARTH_CPU"), cpu_features()),
/// computed at the first call and kept. Throws hearth::Error as select_cpu_path does (on every
/// call, as long as the variable is wrong).
CpuPath active_cpu_path();

}  // namespace hearth::kernels
