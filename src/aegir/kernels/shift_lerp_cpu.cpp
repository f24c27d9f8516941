// The RWKV-7 token shift and its lerps, with the block's pre-norm fused in front, forward and
// backward (CPU). Python: aegir/kernels/tmix_cpu.py (`shift_lerp`); reference: the eager code in
// aegir/model/rwkv7.py (float64 tests).
//
//   out_j = y + (y_prev - y) * mu_j, y_prev = the previous row of the same sequence (zero at t = 0);
//   six rows of mu in the time-mix (r, w, k, v, a, g), one in the channel-mix; y = x, or
//   y = LayerNorm(x) (never written out). Every tensor (R, C) contiguous, R = B * T rows. A sequence
//   starts at every t = 0, or, given `starts` (R,) bool, where it is set (packed sequences).
// Under CPU bf16 autocast chosen outputs are written, and their gradients read, in bf16.

#include "cpu_ops.h"

namespace {

using namespace aegir_cpu;

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
template <typename F, typename H>
struct PerOutput {
  std::vector<F> f;
  std::vector<H> h;
};

// Where sequences start: every Tn-th row, or the rows flagged in `starts` (nullptr: the former).
struct Starts {
  const bool* flag = nullptr;
  int64_t Tn = 1, R = 0;
  bool first(int64_t i) const { return flag != nullptr ? flag[i] : i % Tn == 0; }
  bool last(int64_t i) const { return i + 1 == R || first(i + 1); }
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
void lerp_fwd(const T* x, const T* mu, const PerOutput<T*, uint16_t*>& out, const Norm<T>& ln, const Starts& st,
              int64_t R, int64_t C) {
  const int K = static_cast<int>(out.f.size());
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    std::vector<T> xx(C), ya(C), yb(C);
    T *y_prev = ya.data(), *y_cur = yb.data();  // normalised rows i - 1 and i (with a norm)
    for (int64_t i = begin; i < end; ++i) {
      const T* xi = x + i * C;
      const bool first = st.first(i);
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
void lerp_bwd(const T* x, const T* mu, const PerOutput<const T*, const uint16_t*>& g, const Norm<T>& ln,
              const Starts& st, T* dx, Partials<T>& part, int64_t R, int64_t C) {
  const int K = static_cast<int>(g.f.size());
  const bool norm = ln.w != nullptr;
  at::parallel_for(0, R, GRAIN, [&](int64_t begin, int64_t end) {
    std::vector<T> xx(C), ya(C), yb(C), xh(C), dyb(C), scratch(C);
    T *y_prev = ya.data(), *y_cur = yb.data();
    for (int64_t i = begin; i < end; ++i) {
      const T* xi = x + i * C;
      const bool first = st.first(i), last = st.last(i);
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

}  // namespace

// Checks `starts` ((R,) bool, or empty: sequences start at every t = 0) and wraps it.
Starts make_starts(const at::Tensor& starts, int64_t R, int64_t Tn) {
  if (starts.numel() == 0) return {nullptr, Tn, R};
  TORCH_CHECK(starts.scalar_type() == at::kBool && starts.numel() == R && starts.is_contiguous(),
              "shift_lerp: starts must be a contiguous bool tensor of ", R, " rows");
  return {starts.data_ptr<bool>(), Tn, R};
}

// x (B, T, C), mu (K, C), optional norm ln_w, ln_b (C) (empty tensors: none), starts (B * T,) bool
// or empty ->
// K tensors y + (y_prev - y) * mu[j], each (B, T, C), with y = x or LN(x); then the norm's per-row
// mean and rstd (R,) for the backward (empty without a norm). bf16_out: per output, whether to write
// it in bf16 (fp32 x only; empty: none).
std::vector<at::Tensor> shift_lerp_forward(at::Tensor x, at::Tensor mu, at::Tensor ln_w, at::Tensor ln_b, double eps,
                                           std::vector<bool> bf16_out, at::Tensor starts) {
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
  const Starts st = make_starts(starts, R, Tn);
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
    lerp_fwd<scalar_t>(x.data_ptr<scalar_t>(), mu.data_ptr<scalar_t>(), po, ln, st, R, C);
  });
  out.push_back(mean);
  out.push_back(rstd);
  return out;
}

// grads: K tensors, an empty one where an output got no gradient; ln_w, ln_b, mean, rstd as the
// forward took and returned them (all empty without a norm), starts as the forward took it. Returns (d_x, d_mu, d_ln_w, d_ln_b),
// the last two empty without a norm.
std::vector<at::Tensor> shift_lerp_backward(at::Tensor x, at::Tensor mu, std::vector<at::Tensor> grads,
                                            at::Tensor ln_w, at::Tensor ln_b, at::Tensor mean, at::Tensor rstd,
                                            at::Tensor starts) {
  const int64_t R = x.size(0) * x.size(1), Tn = x.size(1), C = x.size(2), K = mu.size(0);
  const Starts st = make_starts(starts, R, Tn);
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
    lerp_bwd<scalar_t>(x.data_ptr<scalar_t>(), mu.data_ptr<scalar_t>(), pg, ln, st, dx.data_ptr<scalar_t>(), part, R,
                       C);
    auto sums = part.sum();  // (K [+ 2], C)
    dmu = sums.narrow(0, 0, K);
    if (norm) {
      dw = sums[K];
      db = sums[K + 1];
    }
  });
  return {dx, dmu, dw, db};
}

void bind_shift_lerp(pybind11::module_& m) {
  m.def("shift_lerp_forward", &shift_lerp_forward, "RWKV-7 [pre-norm +] token shift + K lerps, forward (CPU)");
  m.def("shift_lerp_backward", &shift_lerp_backward, "RWKV-7 [pre-norm +] token shift + K lerps, backward (CPU)");
}
