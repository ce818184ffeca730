// CPU feature detection (cpuid, xgetbv) and the HEARTH_CPU override.
// Sources: Intel SDM vol. 2A "CPUID" (leaf 1 ECX: FMA bit 12, OSXSAVE 27, AVX 28, F16C 29;
// leaf 7.0 EBX: AVX2 5, AVX512F 16, AVX512DQ 17, AVX512BW 30, AVX512VL 31; leaf 7.0 ECX:
// AVX512_VBMI 1, AVX512_VNNI 11; leaf 7.1 EAX: AVX512_BF16 5) and vol. 1 §13.3 (XCR0 bits 1-2:
// SSE/AVX state, bits 5-7: opmask, ZMM_Hi256, Hi16_ZMM state).
#include "kernels/cpu.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "hearth/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#define HEARTH_X86 1
#endif

namespace hearth::kernels {
namespace {

#ifdef HEARTH_X86
bool bit(uint32_t word, int b) { return ((word >> b) & 1u) != 0; }

uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = bit(c, 27);
  f.fma = bit(c, 12);
  f.avx = bit(c, 28);
  f.f16c = bit(c, 29);
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;
    f.os_zmm = f.os_ymm && (xcr0 & 0xE0) == 0xE0;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_sub = a;
    f.avx2 = bit(b, 5);
    f.avx512f = bit(b, 16);
    f.avx512dq = bit(b, 17);
    f.avx512bw = bit(b, 30);
    f.avx512vl = bit(b, 31);
    f.avx512_vbmi = bit(c, 1);
    f.avx512_vnni = bit(c, 11);
    if (max_sub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx512_bf16 = bit(a, 5);
    }
  }
  return f;
}
#else
CpuFeatures detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_feature_names(const CpuFeatures& f) {
  const std::pair<bool, const char*> all[] = {
      {f.avx, "avx"},           {f.avx2, "avx2"},           {f.fma, "fma"},
      {f.f16c, "f16c"},         {f.avx512f, "avx512f"},     {f.avx512bw, "avx512bw"},
      {f.avx512vl, "avx512vl"}, {f.avx512dq, "avx512dq"},   {f.avx512_vnni, "avx512_vnni"},
      {f.avx512_bf16, "avx512_bf16"}, {f.avx512_vbmi, "avx512_vbmi"}, {f.os_ymm, "os_ymm"},
      {f.os_zmm, "os_zmm"},
  };
  std::string out;
  for (const auto& [present, name] : all) {
    if (!present) continue;
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out.empty() ? "none" : out;
}

bool cpu_supports(CpuPath path, const CpuFeatures& f) {
  const bool avx2 = f.avx && f.avx2 && f.fma && f.f16c && f.os_ymm;
  switch (path) {
    case CpuPath::scalar:
      return true;
    case CpuPath::avx2:
      return avx2;
    case CpuPath::avx512:
      return avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512_vnni && f.os_zmm;
  }
  return false;
}

bool cpu_supports(CpuPath path) { return cpu_supports(path, cpu_features()); }

CpuPath best_cpu_path(const CpuFeatures& f) {
  if (cpu_supports(CpuPath::avx512, f)) return CpuPath::avx512;
  if (cpu_supports(CpuPath::avx2, f)) return CpuPath::avx2;
  return CpuPath::scalar;
}

const char* cpu_path_name(CpuPath path) {
  switch (path) {
    case CpuPath::scalar:
      return "scalar";
    case CpuPath::avx2:
      return "avx2";
    case CpuPath::avx512:
      return "avx512";
  }
  return "unknown";
}

std::optional<CpuPath> parse_cpu_path(std::string_view name) {
  for (int i = 0; i < kCpuPathCount; ++i) {
    const auto path = static_cast<CpuPath>(i);
    if (name == cpu_path_name(path)) return path;
  }
  return std::nullopt;
}

CpuPath select_cpu_path(const char* hearth_cpu, const CpuFeatures& f) {
  if (hearth_cpu == nullptr || *hearth_cpu == '\0') return best_cpu_path(f);
  const std::optional<CpuPath> path = parse_cpu_path(hearth_cpu);
  if (!path)
    throw Error(std::string("HEARTH_CPU=") + hearth_cpu +
                " is not a kernel path (use scalar, avx2 or avx512); this CPU has: " + cpu_feature_names(f));
  if (!cpu_supports(*path, f)) {
    const char* needs = *path == CpuPath::avx2
                            ? "avx avx2 fma f16c os_ymm"
                            : "avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni os_ymm os_zmm";
    throw Error(std::string("HEARTH_CPU=") + hearth_cpu + " asks for kernels this CPU cannot run (they need " +
                needs + "); this CPU has: " + cpu_feature_names(f));
  }
  return *path;
}

CpuPath active_cpu_path() {
  // A throwing initializer leaves the static uninitialized: every call reports the error.
  static const CpuPath path = select_cpu_path(std::getenv("HEARTH_CPU"), cpu_features());
  return path;
}

}  // namespace hearth::kernels
