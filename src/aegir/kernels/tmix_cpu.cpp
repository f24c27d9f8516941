// The RWKV-7 time-mix's elementwise stretches, fused, forward and backward (CPU).
//
// Why: in eager PyTorch a tiny stage-0 time-mix (B=8, T=1024, C=128) spends about half of its
// fwd+bwd time in ~150 full-size elementwise passes (token shift and six lerps, decay, value
// residual, in-context learning rate, removal-key normalisation, key update, WKV input prep,
// per-head GroupNorm, bonus and gate, and all their backward ops); the GEMMs and the WKV kernel
// take the other half. Each op below reads its inputs once and writes its outputs once, per row,
// with the per-head vectors (N values) in cache. Python (aegir/kernels/tmix_cpu.py) wires them
// into autograd; the eager code in aegir/model/rwkv7.py stays the reference (float64 tests).
//
// Four ops, each a forward and a backward, every tensor (R, C) contiguous with R = B * T rows
// and C = H * N channels (heads are contiguous runs of N channels):
//
//   shift_lerp: out_j = y + (y_prev - y) * mu_j, y_prev = the previous row of the same sequence
//           (zero at t = 0); six rows of mu in the time-mix (r, w, k, v, a, g), one in the channel-mix;
//           y = x, or y = LayerNorm(x) with the block's pre-norm fused in (y is never written out).
//   prep:   from the projections to the WKV inputs, per row and head (S = -exp(-0.5)):
//             log w = S sigmoid(w0 + w_l);  ic = sigmoid(a0 + a_l)
//             kk = normalize(k_raw * k_k) over the head;  k' = k_raw (1 + (ic - 1) k_a)
//             v' = v + (v_first - v) sigmoid(v0 + v_l)   (layers after the first; else v' = v)
//             WKV inputs: w = exp(log w), k', v', a = -kk, b = kk ic
//           Padded rows (mask 0) become identity steps of the WKV (w = 1, k = v = a = b = 0),
//           as aegir.model.wkv._mask_inputs does; k' and v' are also returned unmasked for the bonus.
//   post:   out = (layer_norm_N(o) * ln_w + ln_b + (sum_N r k' r_k) v') * g, per row and head.
//   relu_square: the channel-mix activation relu(x)^2, one pass each way, keeping only its output
//           (bf16 activations under CPU bf16 autocast: keeping its input).
//
// Parameter gradients (per-channel vectors) are summed per thread, then over threads.
// The math runs in the input dtype: fp32 in training, float64 in the equivalence tests.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace {

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

void check_rows(const std::vector<at::Tensor>& xs, int64_t R, int64_t C, const char* what) {
  for (const auto& x : xs) {
    TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), what, ": CPU, contiguous tensors only");
    TORCH_CHECK(x.numel() == R * C, what, ": expected ", R, " x ", C, " values, got ", x.sizes());
    TORCH_CHECK(x.scalar_type() == xs[0].scalar_type(), what, ": all inputs must share one dtype");
  }
}

// ---------------------------------------------------------------------------------------------
// shift_lerp (K = 6 in the time-mix, 1 in the channel-mix), optionally behind the block's pre-norm:
// with a LayerNorm, the lerps read y = LN(x) (computed per row, never written out) instead of x,
// and the backward returns d x through the norm. This saves the norm's full-size output in the
// forward and its separate backward pass (read d y and x, write d x) in the backward.
template <typename T>
struct Norm {  // the optional LayerNorm: w == nullptr means none
  const T* w = nullptr;
  const T* b = nullptr;
  T eps = 0;
  T* mean = nullptr;  // (R,) per-row statistics: written by the forward, read by the backward
  T* rstd = nullptr;
};

// y = (x - mean) rstd w + b over one row (C values), with F.layer_norm's biased variance; the
// statistics are stored where mean/rstd point (nullptr: recomputing a neighbour row, not stored).
template <typename T>
inline void layer_norm_row(const T* __restrict x, const Norm<T>& ln, int64_t C, T* __restrict y, T* mean_out,
                           T* rstd_out) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < C; ++c) s += x[c];
  const T mean = s / T(C);
  T var = 0;
#pragma omp simd reduction(+ : var)
  for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);  // two passes: no cancellation
  const T rstd = T(1) / std::sqrt(var / T(C) + ln.eps);
  const T *__restrict w = ln.w, *__restrict b = ln.b;
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - mean) * rstd * w[c] + b[c];
  if (mean_out != nullptr) *mean_out = mean;
  if (rstd_out != nullptr) *rstd_out = rstd;
}

// xhat = (x - mean) rstd and y = xhat w + b of row i from its stored statistics.
template <typename T>
inline void apply_norm(const T* __restrict x, const Norm<T>& ln, int64_t i, int64_t C, T* __restrict xhat,
                       T* __restrict y) {
  const T mean = ln.mean[i], rstd = ln.rstd[i];
  const T *__restrict w = ln.w, *__restrict b = ln.b;
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) {
    xhat[c] = (x[c] - mean) * rstd;
    y[c] = xhat[c] * w[c] + b[c];
  }
}

// The lerps' outputs and their gradients: per output j, either in the compute dtype (f[j]) or in bf16
// bits (h[j]); exactly one of the two is set (both null for a gradient that never arrived). bf16 is for CPU
// bf16 autocast: the op writes what autocast would otherwise cast its output to before the projection
// (the same round-to-nearest-even), and reads the bf16 gradient the projection's backward returns.
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
template <typename T> inline T as_compute(T v) { return v; }
template <typename T> inline T as_compute(uint16_t b) { return static_cast<T>(bf16_value(b)); }
template <typename O, typename T> inline O as_output(T v) { return static_cast<O>(v); }
template <> inline uint16_t as_output<uint16_t, float>(float v) { return bf16_bits(v); }

template <typename F, typename H>
struct PerOutput {
  std::vector<F> f;
  std::vector<H> h;
};

template <typename T, typename O>
inline void lerp_row(const T* __restrict y, const T* __restrict xx, const T* __restrict m, O* __restrict o,
                     int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) o[c] = as_output<O>(y[c] + xx[c] * m[c]);
}

// d += g (1 - m) (+ g_next m where the row has a successor); dm += g xx. G: the gradient's dtype.
template <typename T, typename G>
inline void lerp_grad_row(const G* __restrict gi, bool has_next, const T* __restrict m, const T* __restrict xx,
                          T* __restrict d, T* __restrict dm, int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) {
    const T gc = as_compute<T>(gi[c]);
    d[c] += gc * (T(1) - m[c]);
    dm[c] += gc * xx[c];
  }
  if (has_next) {
    const G* __restrict gn = gi + C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) d[c] += as_compute<T>(gn[c]) * m[c];
  }
}

template <typename T>
void lerp_fwd(const T* x, const T* mu, const PerOutput<T*, uint16_t*>& out, const Norm<T>& ln, int64_t R,
              int64_t Tn, int64_t C) {
  const int K = static_cast<int>(out.f.size());
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    std::vector<T> xx(C), ya(C), yb(C);
    T *y_prev = ya.data(), *y_cur = yb.data();  // normalised rows i - 1 and i (with a norm)
    for (int64_t i = begin; i < end; ++i) {
      const T* xi = x + i * C;
      const bool first = i % Tn == 0;
      const T* yi = xi;                            // the row the lerps read
      const T* yp = first ? nullptr : xi - C;      // and its predecessor (nullptr: t = 0)
      if (ln.w != nullptr) {
        // A task's first row re-normalises its predecessor (another task's row, same arithmetic).
        if (!first && i == begin) layer_norm_row<T>(xi - C, ln, C, y_prev, nullptr, nullptr);
        layer_norm_row<T>(xi, ln, C, y_cur, ln.mean + i, ln.rstd + i);
        yi = y_cur;
        yp = first ? nullptr : y_prev;
      }
      for (int64_t c = 0; c < C; ++c) xx[c] = (yp == nullptr ? T(0) : yp[c]) - yi[c];
      for (int j = 0; j < K; ++j) {
        if (out.h[j] != nullptr) lerp_row(yi, xx.data(), mu + j * C, out.h[j] + i * C, C);
        else lerp_row(yi, xx.data(), mu + j * C, out.f[j] + i * C, C);
      }
      std::swap(y_prev, y_cur);
    }
  });
}

// With y the lerps' input (x, or LN(x)):
// d_y[t] = sum_j g_j[t] (1 - mu_j) + sum_j g_j[t+1] mu_j;  d_mu_j = sum_rows g_j[t] (y[t-1] - y[t]);
// through the norm: d_w += d_y xhat, d_b += d_y, d_x = rstd (d_xhat - mean(d_xhat) - xhat mean(d_xhat xhat))
// with d_xhat = d_y w. g[j] == nullptr: that output got no gradient. part: rows 0..K-1 d_mu, then
// (with a norm) d_w, d_b.
template <typename T>
void lerp_bwd(const T* x, const T* mu, const PerOutput<const T*, const uint16_t*>& g, const Norm<T>& ln, T* dx,
              Partials<T>& part, int64_t R, int64_t Tn, int64_t C) {
  const int K = static_cast<int>(g.f.size());
  const bool norm = ln.w != nullptr;
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    std::vector<T> xx(C), ya(C), yb(C), xh(C), dyb(C), scratch(C);
    T *y_prev = ya.data(), *y_cur = yb.data();
    for (int64_t i = begin; i < end; ++i) {
      const T* xi = x + i * C;
      const bool first = i % Tn == 0, last = (i + 1) % Tn == 0;
      const T* yi = xi;
      const T* yp = first ? nullptr : xi - C;
      if (norm) {
        if (!first && i == begin) apply_norm(xi - C, ln, i - 1, C, scratch.data(), y_prev);
        apply_norm(xi, ln, i, C, xh.data(), y_cur);
        yi = y_cur;
        yp = first ? nullptr : y_prev;
      }
      T* __restrict d = norm ? dyb.data() : dx + i * C;  // d_y: a row buffer when the norm follows
      for (int64_t c = 0; c < C; ++c) {
        xx[c] = (yp == nullptr ? T(0) : yp[c]) - yi[c];
        d[c] = 0;
      }
      for (int j = 0; j < K; ++j) {
        if (g.h[j] != nullptr) lerp_grad_row(g.h[j] + i * C, !last, mu + j * C, xx.data(), d, part.mine(j), C);
        else if (g.f[j] != nullptr) lerp_grad_row(g.f[j] + i * C, !last, mu + j * C, xx.data(), d, part.mine(j), C);
      }
      if (norm) {
        const T* __restrict w = ln.w;
        const T* __restrict xhat = xh.data();
        T *__restrict dw = part.mine(K), *__restrict db = part.mine(K + 1);
        T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t c = 0; c < C; ++c) {
          const T dxh = d[c] * w[c];
          dw[c] += d[c] * xhat[c];
          db[c] += d[c];
          s1 += dxh;
          s2 += dxh * xhat[c];
        }
        const T m1 = s1 / T(C), m2 = s2 / T(C), rstd = ln.rstd[i];
        T* __restrict o = dx + i * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) o[c] = rstd * (d[c] * w[c] - m1 - xhat[c] * m2);
      }
      std::swap(y_prev, y_cur);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// prep
struct PrepPtrs {
  const void *k_raw, *w_l, *a_l, *v, *v_first, *v_l, *w0, *a0, *v0, *k_k, *k_a;
  const bool* mask;  // nullptr: no padding
};

constexpr double LOG_W_SCALE = -0.60653065971263342;  // -exp(-0.5)
constexpr double NORM_EPS = 1e-12;                      // F.normalize's default eps

// |k_raw * k_k| over one head: the removal key's norm before F.normalize's clamp.
template <typename T, typename I>
inline T key_norm(const I* __restrict k_raw, const T* __restrict k_k, int64_t N) {
  T ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t n = 0; n < N; ++n) {
    const T q = as_compute<T>(k_raw[n]) * k_k[n];
    ss += q * q;
  }
  return std::sqrt(ss);
}

// RES: the layer has a value residual (v_first, v_l, v0); SPLIT: there is padding, so the WKV's
// k and v (masked) are separate from the bonus's k' and v' (unmasked). Both are template
// arguments so that the per-channel loops are branch-free and vectorise. I: the dtype of the
// projection outputs k_raw, a_l, v, v_first, v_l (T, or bf16 bits under CPU bf16 autocast); w_l
// (the decay's fp32 LoRA), the outputs and the math are T.
template <typename T, typename I, bool RES, bool SPLIT>
void prep_fwd_t(const PrepPtrs& p, T* w, T* kw, T* vw, T* a, T* b, T* kb, T* vb, int64_t R, int64_t H, int64_t N) {
  const int64_t C = H * N;
  const I *k_raw = (const I*)p.k_raw, *a_l = (const I*)p.a_l, *v = (const I*)p.v;
  const I *vf = (const I*)p.v_first, *v_l = (const I*)p.v_l;
  const T *w_l = (const T*)p.w_l, *w0 = (const T*)p.w0, *a0 = (const T*)p.a0;
  const T *v0 = (const T*)p.v0, *k_k = (const T*)p.k_k, *k_a = (const T*)p.k_a;
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T m = p.mask == nullptr || p.mask[i] ? T(1) : T(0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = i * C + h * N, c0 = h * N;
        const T inv = T(1) / std::max(key_norm(k_raw + o, k_k + c0, N), T(NORM_EPS));
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const int64_t x = o + n, c = c0 + n;
          const T ic = sigmoid(a0[c] + as_compute<T>(a_l[x]));
          const T kr = as_compute<T>(k_raw[x]), vx = as_compute<T>(v[x]);
          const T kk = kr * k_k[c] * inv;
          const T kp = kr * (T(1) + (ic - T(1)) * k_a[c]);
          T vp = vx;
          if constexpr (RES) vp = vx + (as_compute<T>(vf[x]) - vx) * sigmoid(v0[c] + as_compute<T>(v_l[x]));
          // masked rows: w = 1 (m * e + 1 - m is e itself when m = 1)
          w[x] = m * fast_exp(T(LOG_W_SCALE) * sigmoid(w0[c] + w_l[x])) + (T(1) - m);
          a[x] = -kk * m;
          b[x] = kk * ic * m;
          kb[x] = kp;
          vb[x] = vp;
          if constexpr (SPLIT) {
            kw[x] = kp * m;
            vw[x] = vp * m;
          }
        }
      }
    }
  });
}

template <typename T, typename I>
void prep_fwd(const PrepPtrs& p, T* w, T* kw, T* vw, T* a, T* b, T* kb, T* vb, int64_t R, int64_t H, int64_t N) {
  const bool res = p.v_first != nullptr, split = kw != kb;
  if (res && split) prep_fwd_t<T, I, true, true>(p, w, kw, vw, a, b, kb, vb, R, H, N);
  else if (res) prep_fwd_t<T, I, true, false>(p, w, kw, vw, a, b, kb, vb, R, H, N);
  else if (split) prep_fwd_t<T, I, false, true>(p, w, kw, vw, a, b, kb, vb, R, H, N);
  else prep_fwd_t<T, I, false, false>(p, w, kw, vw, a, b, kb, vb, R, H, N);
}

// Takes the WKV's gradients (d log w, d k, d v, d a, d b, all with respect to its masked inputs)
// and the bonus's (d k', d v'); returns those of k_raw, w_l, a_l, v, v_first, v_l and the
// parameters w0, a0, v0, k_k, k_a (as rows 0..4 of the partials).
// The gradients of the I-typed inputs (k_raw, a_l, v, v_first, v_l) are written in I, each rounded
// once from its T value (as autograd's cast of a T gradient would round it).
template <typename T, typename I, bool RES>
void prep_bwd_t(const PrepPtrs& p, const T* dlw, const T* dkw, const T* dkb, const T* dvw, const T* dvb,
                const T* da, const T* db, I* dk_raw, T* dw_l, I* da_l, I* dv, I* dvf, I* dv_l, Partials<T>& dpar,
                int64_t R, int64_t H, int64_t N) {
  const int64_t C = H * N;
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    // Local restrict copies: read through the lambda's captures, every pointer would be reloaded
    // after each store and the per-channel loop would not vectorise.
    const I *__restrict k_raw = (const I*)p.k_raw, *__restrict a_l = (const I*)p.a_l, *__restrict v = (const I*)p.v;
    const I *__restrict vf = (const I*)p.v_first, *__restrict v_l = (const I*)p.v_l;
    const T *__restrict w_l = (const T*)p.w_l, *__restrict w0 = (const T*)p.w0, *__restrict a0 = (const T*)p.a0;
    const T *__restrict v0 = (const T*)p.v0, *__restrict k_k = (const T*)p.k_k, *__restrict k_a = (const T*)p.k_a;
    const T *__restrict dlw_ = dlw, *__restrict dkw_ = dkw, *__restrict dkb_ = dkb, *__restrict dvw_ = dvw;
    const T *__restrict dvb_ = dvb, *__restrict da_ = da, *__restrict db_ = db;
    I *__restrict dk_raw_ = dk_raw, *__restrict da_l_ = da_l, *__restrict dv_ = dv;
    I *__restrict dvf_ = dvf, *__restrict dv_l_ = dv_l;
    T* __restrict dw_l_ = dw_l;
    std::vector<T> dkk_buf(N), kk_buf(N), dkr_buf(N);
    T* __restrict dkk = dkk_buf.data();
    T* __restrict kk = kk_buf.data();
    T* __restrict dkr = dkr_buf.data();  // d k_raw through k' (completed by the normalisation's part)
    T *__restrict dw0 = dpar.mine(0), *__restrict da0 = dpar.mine(1), *__restrict dv0 = dpar.mine(2);
    T *__restrict dk_k = dpar.mine(3), *__restrict dk_a = dpar.mine(4);
    for (int64_t i = begin; i < end; ++i) {
      const T m = p.mask == nullptr || p.mask[i] ? T(1) : T(0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = i * C + h * N, c0 = h * N;
        const T nrm = key_norm(k_raw + o, k_k + c0, N);
        const bool clamped = nrm < T(NORM_EPS);
        const T inv = T(1) / (clamped ? T(NORM_EPS) : nrm);
        T dot = 0;  // sum_n d_kk kk: the normalisation's backward projects it out
#pragma omp simd reduction(+ : dot)
        for (int64_t n = 0; n < N; ++n) {
          const int64_t x = o + n, c = c0 + n;
          const T ic = sigmoid(a0[c] + as_compute<T>(a_l[x]));
          const T kr = as_compute<T>(k_raw[x]);
          kk[n] = kr * k_k[c] * inv;
          // a = -kk m, b = kk ic m, k' = k_raw (1 + (ic - 1) k_a), k_wkv = k' m
          const T dk_total = dkb_[x] + dkw_[x] * m;
          const T dbm = db_[x] * m;
          dkk[n] = -da_[x] * m + dbm * ic;
          const T dic = dbm * kk[n] + dk_total * kr * k_a[c];
          dkr[n] = dk_total * (T(1) + (ic - T(1)) * k_a[c]);
          dk_a[c] += dk_total * kr * (ic - T(1));
          const T dal = dic * ic * (T(1) - ic);
          da_l_[x] = as_output<I>(dal);
          da0[c] += dal;
          const T sw = sigmoid(w0[c] + w_l[x]);
          const T dwh = dlw_[x] * m * T(LOG_W_SCALE) * sw * (T(1) - sw);
          dw_l_[x] = dwh;
          dw0[c] += dwh;
          const T dv_total = dvb_[x] + dvw_[x] * m;
          if constexpr (RES) {
            const T sv = sigmoid(v0[c] + as_compute<T>(v_l[x]));
            dv_[x] = as_output<I>(dv_total * (T(1) - sv));
            dvf_[x] = as_output<I>(dv_total * sv);
            const T dvl = dv_total * (as_compute<T>(vf[x]) - as_compute<T>(v[x])) * sv * (T(1) - sv);
            dv_l_[x] = as_output<I>(dvl);
            dv0[c] += dvl;
          } else {
            dv_[x] = as_output<I>(dv_total);
          }
          dot += dkk[n] * kk[n];
        }
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const int64_t x = o + n, c = c0 + n;
          // kk = q / max(|q|, eps): d_q = (d_kk - kk <d_kk, kk>) / |q|, or d_kk / eps when clamped.
          const T dq = clamped ? dkk[n] * inv : (dkk[n] - kk[n] * dot) * inv;
          dk_raw_[x] = as_output<I>(dkr[n] + dq * k_k[c]);
          dk_k[c] += dq * as_compute<T>(k_raw[x]);
        }
      }
    }
  });
}

template <typename T, typename I>
void prep_bwd(const PrepPtrs& p, const T* dlw, const T* dkw, const T* dkb, const T* dvw, const T* dvb,
              const T* da, const T* db, I* dk_raw, T* dw_l, I* da_l, I* dv, I* dvf, I* dv_l, Partials<T>& dpar,
              int64_t R, int64_t H, int64_t N) {
  if (p.v_first != nullptr)
    prep_bwd_t<T, I, true>(p, dlw, dkw, dkb, dvw, dvb, da, db, dk_raw, dw_l, da_l, dv, dvf, dv_l, dpar, R, H, N);
  else
    prep_bwd_t<T, I, false>(p, dlw, dkw, dkb, dvw, dvb, da, db, dk_raw, dw_l, da_l, dv, dvf, dv_l, dpar, R, H, N);
}

// ---------------------------------------------------------------------------------------------
// post
// One head of one row: the layer norm's mean and 1 / std of o, and the bonus scale sum_N r k' r_k.
template <typename T>
struct HeadStats {
  T mean, rstd, bonus;
};

template <typename T>
inline HeadStats<T> head_stats(const T* __restrict o, const T* __restrict r, const T* __restrict kb,
                               const T* __restrict r_k, int64_t N, T eps) {
  T mean = 0, s = 0;
#pragma omp simd reduction(+ : mean, s)
  for (int64_t n = 0; n < N; ++n) {
    mean += o[n];
    s += r[n] * kb[n] * r_k[n];
  }
  mean /= T(N);
  T var = 0;
#pragma omp simd reduction(+ : var)
  for (int64_t n = 0; n < N; ++n) var += (o[n] - mean) * (o[n] - mean);
  return {mean, T(1) / std::sqrt(var / T(N) + eps), s};
}

// Both post ops take their pointers into local restrict copies inside the parallel lambda (see prep_bwd_t).
// I: the dtype of the gate g (a projection output), of out (the output projection's input) and of
// their gradients: T, or bf16 bits under CPU bf16 autocast (rounded once, as autocast's casts would).
template <typename T, typename I>
void post_fwd(const T* o_, const T* r_, const T* kb_, const T* vb_, const I* g_, const T* lnw_, const T* lnb_,
              const T* r_k_, I* out_, T eps, int64_t R, int64_t H, int64_t N) {
  const int64_t C = H * N;
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    const T *__restrict o = o_, *__restrict r = r_, *__restrict kb = kb_, *__restrict vb = vb_;
    const I* __restrict g = g_;
    const T *__restrict lnw = lnw_, *__restrict lnb = lnb_, *__restrict r_k = r_k_;
    I* __restrict out = out_;
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t s0 = i * C + h * N, c0 = h * N;
        const HeadStats<T> st = head_stats(o + s0, r + s0, kb + s0, r_k + c0, N, eps);
        const T mean = st.mean, rstd = st.rstd, s = st.bonus;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const int64_t x = s0 + n, c = c0 + n;
          out[x] = as_output<I>(((o[x] - mean) * rstd * lnw[c] + lnb[c] + s * vb[x]) * as_compute<T>(g[x]));
        }
      }
    }
  });
}

// Returns d_o, d_r, d_k', d_v', d_g and, as rows 0..2 of the partials, d_ln_w, d_ln_b, d_r_k.
template <typename T, typename I>
void post_bwd(const I* dout_, const T* o_, const T* r_, const T* kb_, const T* vb_, const I* g_, const T* lnw_,
              const T* lnb_, const T* r_k_, T* d_o_, T* dr_, T* dkb_, T* dvb_, I* dg_, Partials<T>& dpar, T eps,
              int64_t R, int64_t H, int64_t N) {
  const int64_t C = H * N;
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    const I *__restrict dout = dout_, *__restrict g = g_;
    const T *__restrict o = o_, *__restrict r = r_, *__restrict kb = kb_;
    const T *__restrict vb = vb_, *__restrict lnw = lnw_, *__restrict lnb = lnb_;
    const T* __restrict r_k = r_k_;
    T *__restrict d_o = d_o_, *__restrict dr = dr_, *__restrict dkb = dkb_, *__restrict dvb = dvb_;
    I* __restrict dg = dg_;
    std::vector<T> oh_buf(N), doh_buf(N);
    T* __restrict oh = oh_buf.data();
    T* __restrict doh = doh_buf.data();
    T *__restrict dlnw = dpar.mine(0), *__restrict dlnb = dpar.mine(1), *__restrict drk = dpar.mine(2);
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t s0 = i * C + h * N, c0 = h * N;
        const HeadStats<T> st = head_stats(o + s0, r + s0, kb + s0, r_k + c0, N, eps);
        const T mean = st.mean, rstd = st.rstd, s = st.bonus;
        T ds = 0, m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : ds, m1, m2)
        for (int64_t n = 0; n < N; ++n) {
          const int64_t x = s0 + n, c = c0 + n;
          oh[n] = (o[x] - mean) * rstd;
          const T y = oh[n] * lnw[c] + lnb[c] + s * vb[x];
          const T dox = as_compute<T>(dout[x]);
          dg[x] = as_output<I>(dox * y);
          const T dy = dox * as_compute<T>(g[x]);
          dlnw[c] += dy * oh[n];
          dlnb[c] += dy;
          ds += dy * vb[x];
          dvb[x] = dy * s;
          doh[n] = dy * lnw[c];
          m1 += doh[n];
          m2 += doh[n] * oh[n];
        }
        m1 /= T(N);
        m2 /= T(N);
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const int64_t x = s0 + n, c = c0 + n;
          d_o[x] = rstd * (doh[n] - m1 - oh[n] * m2);
          dr[x] = ds * kb[x] * r_k[c];
          dkb[x] = ds * r[x] * r_k[c];
          drk[c] += ds * r[x] * kb[x];
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// relu_square (the channel-mix activation): out = relu(x)^2. The backward reads the output, which
// the next projection keeps for its own backward anyway: d out / dx = 2 relu(x) = 2 sqrt(out), exact
// because a correctly rounded square root of a correctly rounded square gives back |x| in binary
// floating point (for relu(x) below ~1e-19 in fp32, where the square underflows, the gradient is off
// by less than 1e-19). So no second (B, T, 4C) tensor is kept.
// S: the storage dtype (T, or bf16 bits: computed in T = fp32 and rounded once). NaN stays NaN, as
// in torch.relu.
template <typename T, typename S>
void relu_square_fwd(const S* x_, S* out_, int64_t n) {
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    const S* __restrict x = x_;
    S* __restrict out = out_;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const T xi = as_compute<T>(x[i]);
      const T v = xi < T(0) ? T(0) : xi;
      out[i] = as_output<S>(v * v);
    }
  });
}

template <typename T>
void relu_square_bwd(const T* g_, const T* out_, T* dx_, int64_t n) {
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    const T *__restrict g = g_, *__restrict out = out_;
    T* __restrict dx = dx_;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dx[i] = g[i] * (T(2) * std::sqrt(out[i]));
  });
}

// bf16 activations (CPU bf16 autocast: the key projection's output): out = relu(x)^2 (the forward
// above with bf16 storage) and d x = d out * 2 relu(x), each computed in fp32 from the bf16 values
// and rounded once, as torch's bf16 elementwise ops round (so equal to the eager relu -> square ->
// backward in bf16). The square root trick of the fp32 backward does not hold once out is rounded to
// bf16: this backward reads x.
void relu_square_bf16_bwd(const uint16_t* g_, const uint16_t* x_, uint16_t* dx_, int64_t n) {
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    const uint16_t *__restrict g = g_, *__restrict x = x_;
    uint16_t* __restrict dx = dx_;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float xi = bf16_value(x[i]), r = xi < 0.0f ? 0.0f : xi;  // NaN stays NaN
      dx[i] = bf16_bits(bf16_value(g[i]) * (r + r));
    }
  });
}

const void* ptr_or_null(const at::Tensor& t) { return t.numel() > 0 ? t.data_ptr() : nullptr; }

// Whether the projection outputs (`proj`) arrive in bf16 beside fp32 compute tensors (`ref`): CPU bf16
// autocast. Otherwise both must share the compute dtype (fp32 or float64).
bool low_inputs(const at::Tensor& proj, const at::Tensor& ref) {
  if (proj.scalar_type() == at::kBFloat16) {
    TORCH_CHECK(ref.scalar_type() == at::kFloat, "tmix: bf16 projection outputs need fp32 compute tensors");
    return true;
  }
  TORCH_CHECK(proj.scalar_type() == ref.scalar_type(), "tmix: projection outputs must be in the compute dtype or bf16");
  return false;
}

}  // namespace

// x (B, T, C), mu (K, C), optional norm ln_w, ln_b (C) (empty tensors: none) ->
// K tensors y + (y_prev - y) * mu[j], each (B, T, C), with y = x or LN(x); then the norm's per-row
// mean and rstd (R,) for the backward (empty without a norm). bf16_out: per output, whether to write
// it in bf16 (fp32 x only; empty: none).
std::vector<at::Tensor> shift_lerp_forward(at::Tensor x, at::Tensor mu, at::Tensor ln_w, at::Tensor ln_b, double eps,
                                           std::vector<bool> bf16_out) {
  TORCH_CHECK(x.dim() == 3 && mu.dim() == 2 && mu.size(1) == x.size(2),
              "shift_lerp: x must be (B, T, C) and mu (K, C)");
  const int64_t R = x.size(0) * x.size(1), Tn = x.size(1), C = x.size(2), K = mu.size(0);
  check_rows({x}, R, C, "shift_lerp");
  TORCH_CHECK(mu.is_contiguous() && mu.scalar_type() == x.scalar_type(), "shift_lerp: mu must be contiguous, x's dtype");
  const bool norm = ln_w.numel() > 0;
  if (norm) check_rows({x.new_empty({C}), ln_w, ln_b}, 1, C, "shift_lerp (norm weight and bias)");
  TORCH_CHECK(bf16_out.empty() || static_cast<int64_t>(bf16_out.size()) == K,
              "shift_lerp: bf16_out needs one flag per row of mu");
  const auto low = [&](int64_t j) { return !bf16_out.empty() && bf16_out[j]; };
  std::vector<at::Tensor> out;
  for (int64_t j = 0; j < K; ++j) {
    TORCH_CHECK(!low(j) || x.scalar_type() == at::kFloat, "shift_lerp: bf16 outputs need an fp32 input");
    out.push_back(low(j) ? at::empty_like(x, x.options().dtype(at::kBFloat16)) : at::empty_like(x));
  }
  auto mean = x.new_empty({norm ? R : 0}), rstd = x.new_empty({norm ? R : 0});
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "shift_lerp_forward", [&] {
    PerOutput<scalar_t*, uint16_t*> po;
    for (int64_t j = 0; j < K; ++j) {
      po.f.push_back(low(j) ? nullptr : out[j].data_ptr<scalar_t>());
      po.h.push_back(low(j) ? reinterpret_cast<uint16_t*>(out[j].data_ptr<at::BFloat16>()) : nullptr);
    }
    Norm<scalar_t> ln;
    if (norm) ln = {ln_w.data_ptr<scalar_t>(), ln_b.data_ptr<scalar_t>(), static_cast<scalar_t>(eps),
                    mean.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>()};
    lerp_fwd<scalar_t>(x.data_ptr<scalar_t>(), mu.data_ptr<scalar_t>(), po, ln, R, Tn, C);
  });
  out.push_back(mean);
  out.push_back(rstd);
  return out;
}

// grads: K tensors, an empty one where an output got no gradient; ln_w, ln_b, mean, rstd as the
// forward took and returned them (all empty without a norm). Returns (d_x, d_mu, d_ln_w, d_ln_b),
// the last two empty without a norm.
std::vector<at::Tensor> shift_lerp_backward(at::Tensor x, at::Tensor mu, std::vector<at::Tensor> grads,
                                            at::Tensor ln_w, at::Tensor ln_b, at::Tensor mean, at::Tensor rstd) {
  const int64_t R = x.size(0) * x.size(1), Tn = x.size(1), C = x.size(2), K = mu.size(0);
  TORCH_CHECK(static_cast<int64_t>(grads.size()) == K, "shift_lerp: one gradient per row of mu expected");
  const bool norm = ln_w.numel() > 0;
  if (norm) TORCH_CHECK(mean.numel() == R && rstd.numel() == R, "shift_lerp: the norm's statistics must be (B * T,)");
  auto dx = at::empty_like(x);
  at::Tensor dmu, dw = x.new_empty({0}), db = x.new_empty({0});
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "shift_lerp_backward", [&] {
    PerOutput<const scalar_t*, const uint16_t*> pg;  // a bf16 gradient for an output written in bf16
    for (auto& g : grads) {
      const bool low = g.numel() > 0 && g.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kFloat;
      if (g.numel() > 0) {
        TORCH_CHECK(g.is_contiguous() && g.numel() == R * C && (low || g.scalar_type() == x.scalar_type()),
                    "shift_lerp: each gradient must be contiguous, shaped like x, in x's dtype or bf16");
      }
      pg.f.push_back(g.numel() > 0 && !low ? g.data_ptr<scalar_t>() : nullptr);
      pg.h.push_back(low ? reinterpret_cast<const uint16_t*>(g.data_ptr<at::BFloat16>()) : nullptr);
    }
    Norm<scalar_t> ln;
    if (norm) ln = {ln_w.data_ptr<scalar_t>(), ln_b.data_ptr<scalar_t>(), scalar_t(0), mean.data_ptr<scalar_t>(),
                    rstd.data_ptr<scalar_t>()};
    Partials<scalar_t> part(K + (norm ? 2 : 0), C, x.options());
    lerp_bwd<scalar_t>(x.data_ptr<scalar_t>(), mu.data_ptr<scalar_t>(), pg, ln, dx.data_ptr<scalar_t>(), part, R,
                       Tn, C);
    auto sums = part.sum();  // (K [+ 2], C)
    dmu = sums.narrow(0, 0, K);
    if (norm) {
      dw = sums[K];
      db = sums[K + 1];
    }
  });
  return {dx, dmu, dw, db};
}

// The prep inputs as raw pointers (optional ones, passed as empty tensors, as nullptr).
PrepPtrs prep_ptrs(const at::Tensor& k_raw, const at::Tensor& w_l, const at::Tensor& a_l, const at::Tensor& v,
                   const at::Tensor& v_first, const at::Tensor& v_l, const at::Tensor& mask, const at::Tensor& w0,
                   const at::Tensor& a0, const at::Tensor& v0, const at::Tensor& k_k, const at::Tensor& k_a) {
  return {k_raw.data_ptr(), w_l.data_ptr(), a_l.data_ptr(), v.data_ptr(), ptr_or_null(v_first), ptr_or_null(v_l),
          w0.data_ptr(), a0.data_ptr(), ptr_or_null(v0), k_k.data_ptr(), k_a.data_ptr(),
          mask.numel() > 0 ? mask.data_ptr<bool>() : nullptr};
}

// Rows (R, C): k_raw, w_l, a_l, v, and for layers after the first v_first, v_l (else empty);
// mask (R,) bool or empty; parameters (C): w0, a0, v0 (or empty), k_k, k_a.
// Returns (w, k_wkv, v_wkv, a, b, k', v'); k_wkv / v_wkv are k' / v' themselves when there is no mask.
std::vector<at::Tensor> tmix_prep_forward(at::Tensor k_raw, at::Tensor w_l, at::Tensor a_l, at::Tensor v,
                                          at::Tensor v_first, at::Tensor v_l, at::Tensor mask, at::Tensor w0,
                                          at::Tensor a0, at::Tensor v0, at::Tensor k_k, at::Tensor k_a,
                                          int64_t head_size) {
  const int64_t C = k_raw.size(-1), R = k_raw.numel() / C, N = head_size, H = C / N;
  TORCH_CHECK(H * N == C, "tmix prep: width ", C, " is not a multiple of the head size ", N);
  low_inputs(k_raw, w_l);  // k_raw, a_l, v, v_first, v_l: w_l's dtype, or bf16 (autocast)
  check_rows({k_raw, a_l, v}, R, C, "tmix prep");
  check_rows({w_l}, R, C, "tmix prep");
  const bool res = v_first.numel() > 0;
  if (res) check_rows({k_raw, v_first, v_l}, R, C, "tmix prep");
  check_rows({w0, a0, k_k, k_a}, 1, C, "tmix prep");
  if (res) check_rows({w0, v0}, 1, C, "tmix prep");
  const bool has_mask = mask.numel() > 0;
  if (has_mask) TORCH_CHECK(mask.scalar_type() == at::kBool && mask.numel() == R && mask.is_contiguous(),
                            "tmix prep: mask must be a contiguous bool tensor of ", R, " rows");
  auto w = at::empty_like(w_l), a = at::empty_like(w_l), b = at::empty_like(w_l);
  auto kb = at::empty_like(w_l), vb = at::empty_like(w_l);
  auto kw = has_mask ? at::empty_like(w_l) : kb, vw = has_mask ? at::empty_like(w_l) : vb;
  const PrepPtrs p = prep_ptrs(k_raw, w_l, a_l, v, v_first, v_l, mask, w0, a0, v0, k_k, k_a);
  const auto run = [&](auto t, auto i) {
    using T = decltype(t);
    prep_fwd<T, decltype(i)>(p, w.data_ptr<T>(), kw.data_ptr<T>(), vw.data_ptr<T>(), a.data_ptr<T>(),
                             b.data_ptr<T>(), kb.data_ptr<T>(), vb.data_ptr<T>(), R, H, N);
  };
  if (low_inputs(k_raw, w_l)) run(float(0), uint16_t(0));
  else AT_DISPATCH_FLOATING_TYPES(w_l.scalar_type(), "tmix_prep_forward", [&] { run(scalar_t(0), scalar_t(0)); });
  return {w, kw, vw, a, b, kb, vb};
}

// The forward's inputs, then the gradients of its outputs: d log w (the WKV's gradient for its
// decay, taken as log w), d k_wkv, d k', d v_wkv, d v', d a, d b.
// Returns (d k_raw, d w_l, d a_l, d v, d v_first, d v_l, d w0, d a0, d v0, d k_k, d k_a); d v_first,
// d v_l and d v0 are empty for the first layer.
std::vector<at::Tensor> tmix_prep_backward(at::Tensor k_raw, at::Tensor w_l, at::Tensor a_l, at::Tensor v,
                                           at::Tensor v_first, at::Tensor v_l, at::Tensor mask, at::Tensor w0,
                                           at::Tensor a0, at::Tensor v0, at::Tensor k_k, at::Tensor k_a,
                                           int64_t head_size, at::Tensor dlw, at::Tensor dkw, at::Tensor dkb,
                                           at::Tensor dvw, at::Tensor dvb, at::Tensor da, at::Tensor db) {
  const int64_t C = k_raw.size(-1), R = k_raw.numel() / C, N = head_size, H = C / N;
  check_rows({w_l, dlw, dkw, dkb, dvw, dvb, da, db}, R, C, "tmix prep backward");
  const bool low = low_inputs(k_raw, w_l);
  check_rows({k_raw, a_l, v}, R, C, "tmix prep backward");
  const bool res = v_first.numel() > 0;
  // the projection outputs' gradients in their dtype (k_raw's), w_l's in the compute dtype
  auto dk_raw = at::empty_like(k_raw), dw_l = at::empty_like(w_l), da_l = at::empty_like(k_raw);
  auto dv = at::empty_like(k_raw);
  auto dvf = res ? at::empty_like(k_raw) : at::Tensor(), dv_l = res ? at::empty_like(k_raw) : at::Tensor();
  const PrepPtrs p = prep_ptrs(k_raw, w_l, a_l, v, v_first, v_l, mask, w0, a0, v0, k_k, k_a);
  at::Tensor par;
  const auto run = [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    const auto in = [&](at::Tensor& x) { return x.defined() ? static_cast<I*>(x.data_ptr()) : nullptr; };
    Partials<T> part(5, C, w_l.options());
    prep_bwd<T, I>(p, dlw.data_ptr<T>(), dkw.data_ptr<T>(), dkb.data_ptr<T>(), dvw.data_ptr<T>(), dvb.data_ptr<T>(),
                   da.data_ptr<T>(), db.data_ptr<T>(), in(dk_raw), dw_l.data_ptr<T>(), in(da_l), in(dv), in(dvf),
                   in(dv_l), part, R, H, N);
    par = part.sum();
  };
  if (low) run(float(0), uint16_t(0));
  else AT_DISPATCH_FLOATING_TYPES(w_l.scalar_type(), "tmix_prep_backward", [&] { run(scalar_t(0), scalar_t(0)); });
  auto empty = w_l.new_empty({0});
  return {dk_raw, dw_l, da_l, dv, res ? dvf : empty, res ? dv_l : empty,
          par[0], par[1], res ? par[2] : empty, par[3], par[4]};
}

// Rows (R, C): o (the WKV output), r, k', v', g; parameters (C): ln_w, ln_b, r_k. Returns out (R, C).
at::Tensor tmix_post_forward(at::Tensor o, at::Tensor r, at::Tensor kb, at::Tensor vb, at::Tensor g, at::Tensor lnw,
                             at::Tensor lnb, at::Tensor r_k, double eps, int64_t head_size) {
  const int64_t C = o.size(-1), R = o.numel() / C, N = head_size, H = C / N;
  TORCH_CHECK(H * N == C, "tmix post: width ", C, " is not a multiple of the head size ", N);
  check_rows({o, r, kb, vb}, R, C, "tmix post");
  check_rows({lnw, lnb, r_k}, 1, C, "tmix post");
  const bool low = low_inputs(g, o);
  check_rows({g}, R, C, "tmix post");
  auto out = at::empty_like(g);  // in the gate's dtype: what the output projection reads
  const auto run = [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    post_fwd<T, I>(o.data_ptr<T>(), r.data_ptr<T>(), kb.data_ptr<T>(), vb.data_ptr<T>(),
                   static_cast<const I*>(g.data_ptr()), lnw.data_ptr<T>(), lnb.data_ptr<T>(), r_k.data_ptr<T>(),
                   static_cast<I*>(out.data_ptr()), T(eps), R, H, N);
  };
  if (low) run(float(0), uint16_t(0));
  else AT_DISPATCH_FLOATING_TYPES(o.scalar_type(), "tmix_post_forward", [&] { run(scalar_t(0), scalar_t(0)); });
  return out;
}

// Returns (d o, d r, d k', d v', d g, d ln_w, d ln_b, d r_k).
std::vector<at::Tensor> tmix_post_backward(at::Tensor dout, at::Tensor o, at::Tensor r, at::Tensor kb, at::Tensor vb,
                                           at::Tensor g, at::Tensor lnw, at::Tensor lnb, at::Tensor r_k, double eps,
                                           int64_t head_size) {
  const int64_t C = o.size(-1), R = o.numel() / C, N = head_size, H = C / N;
  check_rows({o, r, kb, vb}, R, C, "tmix post backward");
  const bool low = low_inputs(g, o);
  TORCH_CHECK(dout.scalar_type() == g.scalar_type(), "tmix post backward: the output's gradient must be in g's dtype");
  check_rows({dout, g}, R, C, "tmix post backward");
  auto d_o = at::empty_like(o), dr = at::empty_like(o), dkb = at::empty_like(o), dvb = at::empty_like(o);
  auto dg = at::empty_like(g);
  at::Tensor par;
  const auto run = [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    Partials<T> part(3, C, o.options());
    post_bwd<T, I>(static_cast<const I*>(dout.data_ptr()), o.data_ptr<T>(), r.data_ptr<T>(), kb.data_ptr<T>(),
                   vb.data_ptr<T>(), static_cast<const I*>(g.data_ptr()), lnw.data_ptr<T>(), lnb.data_ptr<T>(),
                   r_k.data_ptr<T>(), d_o.data_ptr<T>(), dr.data_ptr<T>(), dkb.data_ptr<T>(), dvb.data_ptr<T>(),
                   static_cast<I*>(dg.data_ptr()), part, T(eps), R, H, N);
    par = part.sum();
  };
  if (low) run(float(0), uint16_t(0));
  else AT_DISPATCH_FLOATING_TYPES(o.scalar_type(), "tmix_post_backward", [&] { run(scalar_t(0), scalar_t(0)); });
  return {d_o, dr, dkb, dvb, dg, par[0], par[1], par[2]};
}

// x -> relu(x)^2, shaped like x.
at::Tensor relu_square_forward(at::Tensor x) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), "relu_square: CPU, contiguous tensors only");
  auto out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_square_forward", [&] {
    relu_square_fwd<scalar_t, scalar_t>(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), x.numel());
  });
  return out;
}

// (d out, out) -> d x = d out * 2 sqrt(out).
at::Tensor relu_square_backward(at::Tensor g, at::Tensor out) {
  TORCH_CHECK(g.is_contiguous() && out.is_contiguous() && g.numel() == out.numel() &&
                  g.scalar_type() == out.scalar_type(),
              "relu_square: gradient and saved output must match");
  auto dx = at::empty_like(out);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "relu_square_backward", [&] {
    relu_square_bwd<scalar_t>(g.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>(), out.numel());
  });
  return dx;
}

// bf16 x -> relu(x)^2 in bf16; (d out, x) -> d x, both bf16 (the caller keeps x for the backward).
at::Tensor relu_square_bf16_forward(at::Tensor x) {
  TORCH_CHECK(x.is_contiguous() && x.scalar_type() == at::kBFloat16, "relu_square_bf16: a contiguous bf16 tensor");
  auto out = at::empty_like(x);
  relu_square_fwd<float, uint16_t>(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
                                   reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()), x.numel());
  return out;
}

at::Tensor relu_square_bf16_backward(at::Tensor g, at::Tensor x) {
  TORCH_CHECK(g.is_contiguous() && x.is_contiguous() && g.numel() == x.numel() &&
                  g.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kBFloat16,
              "relu_square_bf16: gradient and saved input must be contiguous bf16 tensors of one size");
  auto dx = at::empty_like(x);
  relu_square_bf16_bwd(reinterpret_cast<const uint16_t*>(g.data_ptr<at::BFloat16>()),
                       reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
                       reinterpret_cast<uint16_t*>(dx.data_ptr<at::BFloat16>()), x.numel());
  return dx;
}

void bind_time_mix(pybind11::module_& m) {
  m.def("shift_lerp_forward", &shift_lerp_forward, "RWKV-7 [pre-norm +] token shift + K lerps, forward (CPU)");
  m.def("shift_lerp_backward", &shift_lerp_backward, "RWKV-7 [pre-norm +] token shift + K lerps, backward (CPU)");
  m.def("prep_forward", &tmix_prep_forward, "RWKV-7 time-mix: projections -> WKV inputs, forward (CPU)");
  m.def("prep_backward", &tmix_prep_backward, "RWKV-7 time-mix: projections -> WKV inputs, backward (CPU)");
  m.def("post_forward", &tmix_post_forward, "RWKV-7 time-mix: GroupNorm + bonus + gate, forward (CPU)");
  m.def("post_backward", &tmix_post_backward, "RWKV-7 time-mix: GroupNorm + bonus + gate, backward (CPU)");
  m.def("relu_square_forward", &relu_square_forward, "relu(x)^2, forward (CPU)");
  m.def("relu_square_backward", &relu_square_backward, "relu(x)^2, backward (CPU)");
  m.def("relu_square_bf16_forward", &relu_square_bf16_forward, "relu(x)^2 on bf16, forward (CPU)");
  m.def("relu_square_bf16_backward", &relu_square_bf16_backward, "relu(x)^2 on bf16, backward (CPU)");
}
