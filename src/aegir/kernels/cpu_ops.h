// Helpers shared by the fused CPU ops (tmix_cpu.cpp, shift_lerp_cpu.cpp): a vectorisable exp and
// sigmoid, bf16 <-> fp32 conversion as bit arithmetic, per-thread parameter-gradient partials, and
// shape checks. Everything is inline: each source includes its own copy.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace aegir_cpu {

constexpr int64_t GRAIN = 32;  // rows per parallel task: a row is only C = 128..1024 values

// exp as straight-line arithmetic, so that the compiler vectorises the loops that call it (a libm
// call per element made `prep` ~20x slower than a full-size multiply). exp(x) = 2^n exp(r) with
// n = round(x / ln 2) and |r| <= ln 2 / 2; exp(r) by its Taylor polynomial, degree 7 in float
// (truncation < 0.1 ulp) and 12 in double (< 2 ulp); 2^n written into the exponent bits. Inputs
// are clamped to the normal range (results below it are flushed to the smallest normal, which
// no caller here can tell from zero).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2): 1.5 * 2^23 trick
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;  // ln 2 in two parts
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline double fast_exp(double x) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double n = (x * 1.4426950408889634074 + 6755399441055744.0) - 6755399441055744.0;  // 1.5 * 2^52 trick
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 479001600;  // 1 / 12!
  const double inv_fact[] = {1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720,
                             1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
  for (double c : inv_fact) p = p * r + c;
  const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + fast_exp(-x)); }

// Per-thread accumulators for parameter gradients: (threads, n, C), summed over threads at the end.
template <typename T>
struct Partials {
  at::Tensor buf;
  int64_t n, C;
  Partials(int64_t n_, int64_t C_, const at::TensorOptions& opt) : n(n_), C(C_) {
    buf = at::zeros({at::get_num_threads(), n, C}, opt);
  }
  T* mine(int64_t j) { return buf.data_ptr<T>() + (at::get_thread_num() * n + j) * C; }
  at::Tensor sum() const { return buf.sum(0); }  // (n, C)
};

inline void check_rows(const std::vector<at::Tensor>& xs, int64_t R, int64_t C, const char* what) {
  for (const auto& x : xs) {
    TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), what, ": CPU, contiguous tensors only");
    TORCH_CHECK(x.numel() == R * C, what, ": expected ", R, " x ", C, " values, got ", x.sizes());
    TORCH_CHECK(x.scalar_type() == xs[0].scalar_type(), what, ": all inputs must share one dtype");
  }
}

// bf16 as raw bits (uint16_t), converted with integer arithmetic that vectorises (c10::BFloat16's
// branchy conversion kept the loops scalar: twice the time of the fp32 write it replaces). Rounding
// as c10's round_to_nearest_even, NaN -> 0x7FC0: bit-identical to tensor.to(torch.bfloat16).
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return f != f ? uint16_t(0x7FC0) : static_cast<uint16_t>(rounded);
}
inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
// Storage <-> compute: as_compute<T>(x) reads a stored value (T itself, or bf16 bits) as T;
// as_output<S>(v) stores T v as S (T itself, or bf16 bits rounded from fp32). The entry points refuse
// bf16 storage beside float64 math; the double -> bf16 form exists only so that the float64
// instantiations of the shared loops compile.
template <typename T> inline T as_compute(T v) { return v; }
template <typename T> inline T as_compute(uint16_t b) { return static_cast<T>(bf16_value(b)); }
template <typename O, typename T> inline O as_output(T v) { return static_cast<O>(v); }
template <> inline uint16_t as_output<uint16_t, float>(float v) { return bf16_bits(v); }
template <> inline uint16_t as_output<uint16_t, double>(double v) { return bf16_bits(static_cast<float>(v)); }

inline const void* ptr_or_null(const at::Tensor& t) { return t.numel() > 0 ? t.data_ptr() : nullptr; }

// Whether the projection outputs (`proj`) arrive in bf16 beside fp32 compute tensors (`ref`): CPU bf16
// autocast. Otherwise both must share the compute dtype (fp32 or float64).
inline bool low_inputs(const at::Tensor& proj, const at::Tensor& ref) {
  if (proj.scalar_type() == at::kBFloat16) {
    TORCH_CHECK(ref.scalar_type() == at::kFloat, "tmix: bf16 projection outputs need fp32 compute tensors");
    return true;
  }
  TORCH_CHECK(proj.scalar_type() == ref.scalar_type(), "tmix: projection outputs must be in the compute dtype or bf16");
  return false;
}

}  // namespace aegir_cpu
