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
// Three ops here, each a forward and a backward, every tensor (R, C) contiguous with R = B * T rows
// and C = H * N channels (heads are contiguous runs of N channels); the fourth, the token shift and
// lerps with the pre-norm, is shift_lerp_cpu.cpp, and the shared helpers are cpu_ops.h:
//
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

#include "cpu_ops.h"

namespace {

using namespace aegir_cpu;

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

}  // namespace

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
  m.def("prep_forward", &tmix_prep_forward, "RWKV-7 time-mix: projections -> WKV inputs, forward (CPU)");
  m.def("prep_backward", &tmix_prep_backward, "RWKV-7 time-mix: projections -> WKV inputs, backward (CPU)");
  m.def("post_forward", &tmix_post_forward, "RWKV-7 time-mix: GroupNorm + bonus + gate, forward (CPU)");
  m.def("post_backward", &tmix_post_backward, "RWKV-7 time-mix: GroupNorm + bonus + gate, backward (CPU)");
  m.def("relu_square_forward", &relu_square_forward, "relu(x)^2, forward (CPU)");
  m.def("relu_square_backward", &relu_square_backward, "relu(x)^2, backward (CPU)");
  m.def("relu_square_bf16_forward", &relu_square_bf16_forward, "relu(x)^2 on bf16, forward (CPU)");
  m.def("relu_square_bf16_backward", &relu_square_bf16_backward, "relu(x)^2 on bf16, backward (CPU)");
}
