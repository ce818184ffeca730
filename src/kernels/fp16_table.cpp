#include "kernels/fp16_table.h"

#include <vector>

#include "quant/fp16.h"

namespace hearth::kernels {

const float* fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = quant::fp16_to_fp32(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

}  // namespace hearth::kernels
