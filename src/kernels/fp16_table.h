// A 65536-entry F16 -> F32 lookup table for scalar loops over F16 data.
#pragma once

namespace hearth::kernels {

/// table[h] == quant::fp16_to_fp32(h) for every half bit pattern h (built once, thread-safe).
const float* fp16_table();

}  // namespace hearth::kernels
