// RWKV-7 WKV on the CPU: the recurrence itself, forward and backward, one (sequence, head) per task.
//
// Per head, with the state M (K x V, key rows, value columns) and w = exp(log_w):
//     u_t = a_t M_{t-1}                                   (V)
//     M_t = diag(w_t) M_{t-1} + b_t^T u_t + k_t^T v_t     (K x V)
//     o_t = r_t M_t                                       (V)
// the same update as aegir.model.wkv.wkv_naive. Why a kernel: the chunked PyTorch form does ~3x the
// FLOPs of this recurrence in small batched GEMMs plus ~40 full-size elementwise passes; here the
// state (16 KB at K = V = 64 in fp32) stays in cache and every input is read once per pass.
//
// Backward, walking t downwards with dM = dL/dM_t (starting from the final state's gradient):
//     dM += r_t^T dO_t;  dr_t = M_t dO_t^T
//     dlog_w_t = w_t * rowsum(dM * M_{t-1});  db_t = dM u_t^T;  dk_t = dM v_t^T
//     dv_t = k_t dM;  du = b_t dM;  da_t = M_{t-1} du^T;  dM <- diag(w_t) dM + a_t^T du
// The forward pass stores M every `seg` steps (SEGMENT = 16 in wkv_cpu.py); the backward recomputes
// the states (and u) of one segment at a time into a per-task buffer, then walks that segment backwards.
//
// Layout: every sequence input is (B, T, H, N) contiguous, states are (S, H, K, V) per sequence: the
// B rows, or the packed sequences of one row given by cu_seqlens (see Seqs). The math runs in
// the input dtype: fp32 for training, float64 for the equivalence tests. The decay arrives as
// w = exp(log_w) (one vectorised exp by the caller, not a scalar exp per element here).
//
// Two inner-loop forms: value sizes 32 and 64 (the model's head sizes) keep the per-step vectors
// (u, v, dO, du, ...) and the row accumulators in registers as 64-byte GCC/Clang vector-extension
// values, lowered to the CPU's widest units; other sizes run plain loops. Both are instantiated
// for float64 too, so the equivalence tests exercise the same code as fp32 training.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// 64-byte vectors (16 floats or 8 doubles).
template <typename T>
struct Vec {
  static constexpr int L = 64 / sizeof(T);
  typedef T type __attribute__((vector_size(64)));
  typedef T half __attribute__((vector_size(32)));
  typedef T quarter __attribute__((vector_size(16)));
};
template <typename T> using vec_t = typename Vec<T>::type;

template <typename T>
inline vec_t<T> vload(const T* p) {
  vec_t<T> x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}
template <typename T>
inline void vstore(T* p, vec_t<T> x) { std::memcpy(p, &x, sizeof(x)); }
template <typename T>
inline vec_t<T> vbroadcast(T s) { return vec_t<T>{} + s; }
template <typename T>
inline T hsum(vec_t<T> x) {  // halve twice in vector registers, then add the last lanes
  typename Vec<T>::half lo, hi;
  std::memcpy(&lo, &x, 32);
  std::memcpy(&hi, reinterpret_cast<const char*>(&x) + 32, 32);
  lo += hi;
  typename Vec<T>::quarter a, b;
  std::memcpy(&a, &lo, 16);
  std::memcpy(&b, reinterpret_cast<const char*>(&lo) + 16, 16);
  a += b;
  T s = 0;
  for (int l = 0; l < static_cast<int>(16 / sizeof(T)); ++l) s += a[l];
  return s;
}

// The sums of L vectors at once: lane i of the result is the sum of acc[i]'s lanes. A transpose-add
// tree (L - 1 shuffle pairs in all) instead of L horizontal sums: with five row reductions per state
// row, the per-row horizontal sums took about a third of the backward pass.
inline vec_t<float> reduce_rows(const vec_t<float>* acc) {  // L = 16
  typedef int32_t mask __attribute__((vector_size(64)));
  const mask a1 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const mask b1 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const mask a2 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
  const mask b2 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
  const mask a3 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29};
  const mask b3 = {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31};
  const mask a4 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
  const mask b4 = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
  vec_t<float> x1[8], x2[4], x3[2];
  for (int p = 0; p < 8; ++p)  // [row 2p: 8 partial sums | row 2p+1: 8]
    x1[p] = __builtin_shuffle(acc[2 * p], acc[2 * p + 1], a1) + __builtin_shuffle(acc[2 * p], acc[2 * p + 1], b1);
  for (int p = 0; p < 4; ++p)  // rows 4p .. 4p+3, 4 partial sums each
    x2[p] = __builtin_shuffle(x1[2 * p], x1[2 * p + 1], a2) + __builtin_shuffle(x1[2 * p], x1[2 * p + 1], b2);
  for (int p = 0; p < 2; ++p)  // rows 8p .. 8p+7, 2 partial sums each
    x3[p] = __builtin_shuffle(x2[2 * p], x2[2 * p + 1], a3) + __builtin_shuffle(x2[2 * p], x2[2 * p + 1], b3);
  return __builtin_shuffle(x3[0], x3[1], a4) + __builtin_shuffle(x3[0], x3[1], b4);  // rows 0 .. 15
}

inline vec_t<double> reduce_rows(const vec_t<double>* acc) {  // L = 8
  typedef int64_t mask __attribute__((vector_size(64)));
  const mask a1 = {0, 1, 2, 3, 8, 9, 10, 11}, b1 = {4, 5, 6, 7, 12, 13, 14, 15};
  const mask a2 = {0, 1, 4, 5, 8, 9, 12, 13}, b2 = {2, 3, 6, 7, 10, 11, 14, 15};
  const mask a3 = {0, 2, 4, 6, 8, 10, 12, 14}, b3 = {1, 3, 5, 7, 9, 11, 13, 15};
  vec_t<double> x1[4], x2[2];
  for (int p = 0; p < 4; ++p)  // [row 2p: 4 partial sums | row 2p+1: 4]
    x1[p] = __builtin_shuffle(acc[2 * p], acc[2 * p + 1], a1) + __builtin_shuffle(acc[2 * p], acc[2 * p + 1], b1);
  for (int p = 0; p < 2; ++p)  // rows 4p .. 4p+3, 2 partial sums each
    x2[p] = __builtin_shuffle(x1[2 * p], x1[2 * p + 1], a2) + __builtin_shuffle(x1[2 * p], x1[2 * p + 1], b2);
  return __builtin_shuffle(x2[0], x2[1], a3) + __builtin_shuffle(x2[0], x2[1], b3);  // rows 0 .. 7
}

// ---------------------------------------------------------------------------------------------
// One step of the recurrence for one (batch, head), fused into a single pass over the state:
//   Mout = diag(w) Min + b^T u + k^T v,  o = r Mout (when o != nullptr),
//   u_next = a_next Mout (the next step's u; zero when a_next == nullptr, the last step).
// Min and Mout may alias (in-place update). NV > 0 fixes V at compile time (the vector form).
template <typename T, int NV>
inline void step(const T* __restrict r, const T* __restrict w, const T* __restrict k, const T* __restrict v,
                 const T* __restrict b, const T* __restrict a_next, const T* Min, T* Mout, const T* __restrict u,
                 T* __restrict u_next, T* __restrict o, int64_t K, int64_t V) {
  if constexpr (NV > 0) {
    using vec = vec_t<T>;
    constexpr int L = Vec<T>::L, Q = NV / L;
    vec uR[Q], vR[Q], un[Q], oR[Q];
    for (int q = 0; q < Q; ++q) {
      uR[q] = vload(u + q * L);
      vR[q] = vload(v + q * L);
      un[q] = vec{};
      oR[q] = vec{};
    }
    for (int64_t i = 0; i < K; ++i) {
      const vec wi = vbroadcast(w[i]), bi = vbroadcast(b[i]), ki = vbroadcast(k[i]);
      const vec ri = vbroadcast(o != nullptr ? r[i] : T(0));
      const vec ai = vbroadcast(a_next != nullptr ? a_next[i] : T(0));
#pragma GCC unroll 8
      for (int q = 0; q < Q; ++q) {
        const vec m = wi * vload(Min + i * NV + q * L) + bi * uR[q] + ki * vR[q];
        vstore(Mout + i * NV + q * L, m);
        oR[q] += ri * m;
        un[q] += ai * m;
      }
    }
    for (int q = 0; q < Q; ++q) {
      vstore(u_next + q * L, un[q]);
      if (o != nullptr) vstore(o + q * L, oR[q]);
    }
  } else {
    for (int64_t j = 0; j < V; ++j) u_next[j] = 0;
    if (o != nullptr)
      for (int64_t j = 0; j < V; ++j) o[j] = 0;
    for (int64_t i = 0; i < K; ++i) {
      const T wi = w[i], bi = b[i], ki = k[i], ri = o != nullptr ? r[i] : T(0);
      const T ai = a_next != nullptr ? a_next[i] : T(0);
      const T* in = Min + i * V;
      T* out = Mout + i * V;
      for (int64_t j = 0; j < V; ++j) {
        const T m = wi * in[j] + bi * u[j] + ki * v[j];
        out[j] = m;
        if (o != nullptr) o[j] += ri * m;
        u_next[j] += ai * m;
      }
    }
  }
}

// One backward step over the rows of the state. On entry dM = dL/dM_t except for the update
// deferred from step t+1, applied here row by row: dM <- diag(w_next) dM + a_next^T du_next + r^T dO.
// Writes dr, dw_raw (= rowsum(dM * M_{t-1}); the caller multiplies by w), db, dk, and, when
// da_next != nullptr, da_{t+1} = M_t du_{t+1}^T; returns dv and du (the latter for step t-1).
template <typename T, int NV>
inline void backward_step(int64_t K, int64_t V, T* __restrict dM, const T* __restrict Mt, const T* __restrict Mp,
                          const T* __restrict u, const T* __restrict dun, const T* __restrict dO,
                          const T* __restrict v, const T* __restrict r, const T* __restrict k, const T* __restrict b,
                          const T* __restrict w_next, const T* __restrict a_next, T* __restrict dr,
                          T* __restrict dw_raw, T* __restrict db, T* __restrict dk, T* __restrict da_next,
                          T* __restrict dv, T* __restrict du) {
  if constexpr (NV > 0) {
    using vec = vec_t<T>;
    constexpr int L = Vec<T>::L, Q = NV / L;
    vec dunR[Q], dOR[Q], uR[Q], vR[Q], dvA[Q], duA[Q];
    for (int q = 0; q < Q; ++q) {
      dunR[q] = vload(dun + q * L);
      dOR[q] = vload(dO + q * L);
      uR[q] = vload(u + q * L);
      vR[q] = vload(v + q * L);
      dvA[q] = vec{};
      duA[q] = vec{};
    }
    // Rows in blocks of L: each row's five reductions (da_next, dr, dw_raw, db, dk) stay as vectors
    // of partial sums until the block's end, then reduce_rows sums L rows at once.
    vec acc[5][L];
    for (int64_t i0 = 0; i0 < K; i0 += L) {
      const int rows = static_cast<int>(std::min<int64_t>(L, K - i0));
      for (int di = 0; di < rows; ++di) {
        const int64_t i = i0 + di;
        const vec wn = vbroadcast(w_next[i]), an = vbroadcast(a_next[i]), ri = vbroadcast(r[i]);
        const vec ki = vbroadcast(k[i]), bi = vbroadcast(b[i]);
        vec acc_an{}, acc_r{}, acc_w{}, acc_b{}, acc_k{};
#pragma GCC unroll 8
        for (int q = 0; q < Q; ++q) {
          const vec g = wn * vload(dM + i * NV + q * L) + an * dunR[q] + ri * dOR[q];  // dL/dM_t
          vstore(dM + i * NV + q * L, g);
          const vec m = vload(Mt + i * NV + q * L);
          acc_an += m * dunR[q];
          acc_r += m * dOR[q];
          acc_w += g * vload(Mp + i * NV + q * L);
          acc_b += g * uR[q];
          acc_k += g * vR[q];
          dvA[q] += ki * g;
          duA[q] += bi * g;
        }
        acc[0][di] = acc_an;
        acc[1][di] = acc_r;
        acc[2][di] = acc_w;
        acc[3][di] = acc_b;
        acc[4][di] = acc_k;
      }
      T* outs[5] = {da_next, dr, dw_raw, db, dk};
      for (int j = 0; j < 5; ++j) {
        if (outs[j] == nullptr) continue;  // da_next at the last step
        if (rows == L) vstore(outs[j] + i0, reduce_rows(acc[j]));
        else
          for (int di = 0; di < rows; ++di) outs[j][i0 + di] = hsum<T>(acc[j][di]);
      }
    }
    for (int q = 0; q < Q; ++q) {
      vstore(dv + q * L, dvA[q]);
      vstore(du + q * L, duA[q]);
    }
  } else {
    for (int64_t j = 0; j < V; ++j) dv[j] = du[j] = 0;
    for (int64_t i = 0; i < K; ++i) {
      T* dMi = dM + i * V;
      const T *Mti = Mt + i * V, *Mpi = Mp + i * V;
      const T wn = w_next[i], an = a_next[i], ri = r[i], ki = k[i], bi = b[i];
      T acc_an = 0, acc_r = 0, acc_w = 0, acc_b = 0, acc_k = 0;
      for (int64_t j = 0; j < V; ++j) {
        const T g = wn * dMi[j] + an * dun[j] + ri * dO[j];
        dMi[j] = g;
        acc_an += Mti[j] * dun[j];
        acc_r += Mti[j] * dO[j];
        acc_w += g * Mpi[j];
        acc_b += g * u[j];
        acc_k += g * v[j];
        dv[j] += ki * g;
        du[j] += bi * g;
      }
      if (da_next != nullptr) da_next[i] = acc_an;
      dr[i] = acc_r;
      dw_raw[i] = acc_w;
      db[i] = acc_b;
      dk[i] = acc_k;
    }
  }
}

// The sequences the recurrence runs over: by default the B rows of (B, T); with cu_seqlens (S + 1,)
// packed sequences of one row (B = 1), sequence s covering positions cu[s] .. cu[s+1] - 1, whose
// state starts at zero (the stacks pack padded batches: no step is spent on padding). Positions are
// flat (p = b * T + t), so one offset formula serves both. Checkpoints: each sequence keeps
// max(1, ceil(len / seg)) slots per head, laid out [sequence][head][slot].
struct Seqs {
  std::vector<int64_t> start, len, slot;  // first flat position, length, first checkpoint slot
  int64_t slots = 0;                      // all sequences' slots (per head)
  int64_t size() const { return static_cast<int64_t>(start.size()); }
};

inline int64_t n_segments(int64_t len, int64_t seg) { return std::max<int64_t>(1, (len + seg - 1) / seg); }

Seqs make_seqs(const at::Tensor& cu, int64_t B, int64_t T, int64_t seg) {
  Seqs q;
  const auto add = [&](int64_t start, int64_t len) {
    q.start.push_back(start);
    q.len.push_back(len);
    q.slot.push_back(q.slots);
    q.slots += n_segments(len, seg);
  };
  if (cu.numel() == 0) {
    for (int64_t b = 0; b < B; ++b) add(b * T, T);
    return q;
  }
  TORCH_CHECK(B == 1, "wkv7_cpu: packed sequences (cu_seqlens) need B = 1, got B = ", B);
  TORCH_CHECK(cu.dim() == 1 && cu.numel() >= 2 && cu.scalar_type() == at::kLong && cu.is_contiguous() &&
                  cu.device().is_cpu(),
              "wkv7_cpu: cu_seqlens must be a contiguous int64 CPU tensor (S + 1,)");
  const int64_t* c = cu.data_ptr<int64_t>();
  const int64_t S = cu.numel() - 1;
  TORCH_CHECK(c[0] == 0 && c[S] == T, "wkv7_cpu: cu_seqlens must run from 0 to T = ", T);
  for (int64_t s = 0; s < S; ++s) {
    TORCH_CHECK(c[s + 1] >= c[s], "wkv7_cpu: cu_seqlens must not decrease");
    add(c[s], c[s + 1] - c[s]);
  }
  return q;
}

// The (sequence, head) tasks, longest sequences first, handed out one at a time to the threads as
// they free up: packed sequences differ in length, and ATen's static split of a task range would
// leave one thread idle while another finishes a longer share. (Equal lengths: the same work.)
class TaskQueue {
 public:
  TaskQueue(const Seqs& q, int64_t H) {
    std::vector<int64_t> seqs(q.size());
    for (int64_t s = 0; s < q.size(); ++s) seqs[s] = s;
    std::stable_sort(seqs.begin(), seqs.end(), [&](int64_t x, int64_t y) { return q.len[x] > q.len[y]; });
    for (int64_t s : seqs)
      for (int64_t h = 0; h < H; ++h) order_.push_back(s * H + h);
  }
  int64_t workers() const { return std::min<int64_t>(at::get_num_threads(), static_cast<int64_t>(order_.size())); }
  int64_t pop() {  // the next task (s * H + h), or -1 when none is left
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    return i < static_cast<int64_t>(order_.size()) ? order_[i] : -1;
  }

 private:
  std::vector<int64_t> order_;
  std::atomic<int64_t> next_{0};
};

template <typename T, int NV>
void forward_impl(const at::Tensor& r, const at::Tensor& w, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& a, const at::Tensor& b, at::Tensor& o, at::Tensor& ckpts,
                  at::Tensor& final_state, const Seqs& q, int64_t seg) {
  const int64_t H = r.size(2), K = r.size(3), V = v.size(3);
  const T *rp = r.data_ptr<T>(), *wp = w.data_ptr<T>(), *kp = k.data_ptr<T>();
  const T *vp = v.data_ptr<T>(), *ap = a.data_ptr<T>(), *bp = b.data_ptr<T>();
  T *op = o.data_ptr<T>(), *cp = ckpts.data_ptr<T>(), *fp = final_state.data_ptr<T>();
  TaskQueue tasks(q, H);
  at::parallel_for(0, tasks.workers(), 1, [&](int64_t, int64_t) {
    std::vector<T> M(K * V), u(V), u_next(V);
    for (int64_t sh; (sh = tasks.pop()) >= 0;) {
      const int64_t s = sh / H, h = sh % H, len = q.len[s];
      const int64_t offk = (q.start[s] * H + h) * K, offv = (q.start[s] * H + h) * V;  // position t adds t*H*N
      T* ck = cp + (q.slot[s] * H + h * n_segments(len, seg)) * K * V;  // this (sequence, head)'s slots
      std::fill(M.begin(), M.end(), T(0));
      std::fill(u.begin(), u.end(), T(0));  // u_0 = a_0 M_{-1} = 0
      if (len == 0) std::copy(M.begin(), M.end(), ck);  // the one checkpoint of an empty sequence
      for (int64_t t = 0; t < len; ++t) {
        if (t % seg == 0) std::copy(M.begin(), M.end(), ck + (t / seg) * K * V);
        const int64_t tk = offk + t * H * K, tv = offv + t * H * V;
        const T* a_next = t + 1 < len ? ap + tk + H * K : nullptr;
        step<T, NV>(rp + tk, wp + tk, kp + tk, vp + tv, bp + tk, a_next, M.data(), M.data(), u.data(), u_next.data(),
                    op + tv, K, V);
        std::swap(u, u_next);
      }
      std::copy(M.begin(), M.end(), fp + sh * K * V);
    }
  });
}

// The backward walks t downwards in one pass over the state per step. The update of dM by step
// t+1 (dM <- diag(w_{t+1}) dM + a_{t+1}^T du_{t+1}) and da_{t+1} = M_t du_{t+1}^T are deferred into
// step t's pass, which reads M_t anyway (for dr_t): three state-sized arrays per step, not five.
template <typename T, int NV>
void backward_impl(const at::Tensor& r, const at::Tensor& w, const at::Tensor& k, const at::Tensor& v,
                   const at::Tensor& a, const at::Tensor& b, const at::Tensor& ckpts, const at::Tensor& d_o,
                   const at::Tensor& d_state, at::Tensor& dr, at::Tensor& dlw, at::Tensor& dk, at::Tensor& dv,
                   at::Tensor& da, at::Tensor& db, const Seqs& q, int64_t seg) {
  const int64_t H = r.size(2), K = r.size(3), V = v.size(3);
  const bool has_dstate = d_state.defined() && d_state.numel() > 0;
  if (r.size(0) * r.size(1) == 0) return;  // no positions: every input gradient is empty
  const T *rp = r.data_ptr<T>(), *wp = w.data_ptr<T>(), *kp = k.data_ptr<T>();
  const T *vp = v.data_ptr<T>(), *ap = a.data_ptr<T>(), *bp = b.data_ptr<T>();
  const T *cp = ckpts.data_ptr<T>(), *dop = d_o.data_ptr<T>();
  const T* dsp = has_dstate ? d_state.data_ptr<T>() : nullptr;
  T *drp = dr.data_ptr<T>(), *dlwp = dlw.data_ptr<T>(), *dkp = dk.data_ptr<T>();
  T *dvp = dv.data_ptr<T>(), *dap = da.data_ptr<T>(), *dbp = db.data_ptr<T>();
  TaskQueue tasks(q, H);
  at::parallel_for(0, tasks.workers(), 1, [&](int64_t, int64_t) {
    // S holds the states M_{t0-1}, M_{t0}, ... of one segment; U the matching u_t (U[j] = u_{t0+j}).
    std::vector<T> S((seg + 1) * K * V), U((seg + 1) * V), dM(K * V), du(V), du_next(V);
    std::vector<T> w_next(K), a_next(K);
    for (int64_t sh; (sh = tasks.pop()) >= 0;) {
      const int64_t seq = sh / H, h = sh % H, T_ = q.len[seq], n_seg = n_segments(T_, seg);
      if (T_ == 0) continue;  // an empty sequence: no positions, no gradients
      const int64_t offk = (q.start[seq] * H + h) * K, offv = (q.start[seq] * H + h) * V;
      const T* cks = cp + (q.slot[seq] * H + h * n_seg) * K * V;  // this (sequence, head)'s checkpoints
      if (has_dstate) std::copy(dsp + sh * K * V, dsp + (sh + 1) * K * V, dM.begin());
      else std::fill(dM.begin(), dM.end(), T(0));
      // The update deferred from "step T" is the identity (w = 1, a = 0, du = 0).
      std::fill(w_next.begin(), w_next.end(), T(1));
      std::fill(a_next.begin(), a_next.end(), T(0));
      std::fill(du_next.begin(), du_next.end(), T(0));
      for (int64_t s = n_seg - 1; s >= 0; --s) {
        const int64_t t0 = s * seg, len = std::min(seg, T_ - t0);
        const T* ck = cks + s * K * V;
        std::copy(ck, ck + K * V, S.begin());
        // u_{t0} = a_{t0} M_{t0-1}, then the segment's states, each step also giving the next u.
        const T* at0 = ap + offk + t0 * H * K;
        std::fill(U.begin(), U.begin() + V, T(0));
        for (int64_t i = 0; i < K; ++i)
          for (int64_t j = 0; j < V; ++j) U[j] += at0[i] * S[i * V + j];
        for (int64_t j = 0; j < len; ++j) {
          const int64_t tk = offk + (t0 + j) * H * K, tv = offv + (t0 + j) * H * V;
          const T* an = t0 + j + 1 < T_ ? ap + tk + H * K : nullptr;
          step<T, NV>(rp + tk, wp + tk, kp + tk, vp + tv, bp + tk, an, S.data() + j * K * V,
                      S.data() + (j + 1) * K * V, U.data() + j * V, U.data() + (j + 1) * V, nullptr, K, V);
        }
        for (int64_t j = len - 1; j >= 0; --j) {
          const int64_t t = t0 + j;
          const int64_t tk = offk + t * H * K, tv = offv + t * H * V;
          T* da_next = t + 1 < T_ ? dap + tk + H * K : nullptr;  // da_{t+1}, finished in this pass
          backward_step<T, NV>(K, V, dM.data(), S.data() + (j + 1) * K * V, S.data() + j * K * V, U.data() + j * V,
                               du_next.data(), dop + tv, vp + tv, rp + tk, kp + tk, bp + tk, w_next.data(),
                               a_next.data(), drp + tk, dlwp + tk, dbp + tk, dkp + tk, da_next, dvp + tv, du.data());
          for (int64_t i = 0; i < K; ++i) {
            dlwp[tk + i] *= wp[tk + i];  // d/dlog_w = w * d/dw
            w_next[i] = wp[tk + i];
            a_next[i] = ap[tk + i];
          }
          std::swap(du, du_next);
        }
      }
      // da_0 = M_{-1} du_0^T = 0: the state starts at zero.
      for (int64_t i = 0; i < K; ++i) dap[offk + i] = 0;
    }
  });
}

void check_inputs(const std::vector<at::Tensor>& xs) {
  const auto& r = xs[0];
  TORCH_CHECK(r.dim() == 4, "wkv7_cpu: inputs must be (B, T, H, N)");
  for (const auto& x : xs) {
    TORCH_CHECK(x.device().is_cpu(), "wkv7_cpu: CPU tensors only");
    TORCH_CHECK(x.is_contiguous(), "wkv7_cpu: inputs must be contiguous");
    TORCH_CHECK(x.scalar_type() == r.scalar_type(), "wkv7_cpu: all inputs must share one dtype");
    TORCH_CHECK(x.dim() == 4 && x.size(0) == r.size(0) && x.size(1) == r.size(1) && x.size(2) == r.size(2),
                "wkv7_cpu: inputs must share (B, T, H)");
  }
}

}  // namespace

// Takes the decay w = exp(log_w) and cu_seqlens (empty: the B rows are the sequences). Returns
// (o (B, T, H, V), checkpoints (slots * H, K, V), final state per sequence (S, H, K, V)).
std::vector<at::Tensor> wkv7_forward(at::Tensor r, at::Tensor w, at::Tensor k, at::Tensor v, at::Tensor a,
                                     at::Tensor b, int64_t seg, at::Tensor cu_seqlens) {
  check_inputs({r, w, k, v, a, b});
  TORCH_CHECK(seg >= 1, "wkv7_cpu: segment length must be >= 1");
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), K = r.size(3), V = v.size(3);
  const Seqs q = make_seqs(cu_seqlens, B, T, seg);
  // Every element of all three is written below (o at every step, one checkpoint per segment, the
  // final state per task): no zero fill (the checkpoints alone are 16.8 MB per tiny stage-0 layer).
  auto o = at::empty({B, T, H, V}, v.options());
  auto ckpts = at::empty({q.slots * H, K, V}, v.options());
  auto fin = at::empty({q.size(), H, K, V}, v.options());
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "wkv7_forward", [&] {
    if (V == 64) forward_impl<scalar_t, 64>(r, w, k, v, a, b, o, ckpts, fin, q, seg);
    else if (V == 32) forward_impl<scalar_t, 32>(r, w, k, v, a, b, o, ckpts, fin, q, seg);
    else forward_impl<scalar_t, 0>(r, w, k, v, a, b, o, ckpts, fin, q, seg);
  });
  return {o, ckpts, fin};
}

// Takes the decay w = exp(log_w) (computed once, vectorised, by the caller) and the forward's
// checkpoints and cu_seqlens. Returns (dr, dlog_w, dk, dv, da, db), each shaped like its input.
std::vector<at::Tensor> wkv7_backward(at::Tensor r, at::Tensor w, at::Tensor k, at::Tensor v, at::Tensor a,
                                      at::Tensor b, at::Tensor ckpts, at::Tensor d_o, at::Tensor d_state,
                                      int64_t seg, at::Tensor cu_seqlens) {
  check_inputs({r, w, k, v, a, b, d_o});
  const Seqs q = make_seqs(cu_seqlens, r.size(0), r.size(1), seg);
  TORCH_CHECK(ckpts.numel() == q.slots * r.size(2) * r.size(3) * v.size(3),
              "wkv7_cpu: checkpoints do not match these sequences");
  TORCH_CHECK(ckpts.is_contiguous() && d_o.is_contiguous(), "wkv7_cpu: checkpoints and grads must be contiguous");
  if (d_state.numel() > 0) TORCH_CHECK(d_state.is_contiguous(), "wkv7_cpu: state grad must be contiguous");
  auto dr = at::empty_like(r), dlw = at::empty_like(w), dk = at::empty_like(k);
  auto dv = at::empty_like(v), da = at::empty_like(a), db = at::empty_like(b);
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "wkv7_backward", [&] {
    const int64_t V = v.size(3);
    if (V == 64) backward_impl<scalar_t, 64>(r, w, k, v, a, b, ckpts, d_o, d_state, dr, dlw, dk, dv, da, db, q, seg);
    else if (V == 32) backward_impl<scalar_t, 32>(r, w, k, v, a, b, ckpts, d_o, d_state, dr, dlw, dk, dv, da, db, q, seg);
    else backward_impl<scalar_t, 0>(r, w, k, v, a, b, ckpts, d_o, d_state, dr, dlw, dk, dv, da, db, q, seg);
  });
  return {dr, dlw, dk, dv, da, db};
}

void bind_time_mix(pybind11::module_& m);    // tmix_cpu.cpp: the time-mix's fused elementwise ops, relu²
void bind_shift_lerp(pybind11::module_& m);  // shift_lerp_cpu.cpp: pre-norm + token shift + lerps

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &wkv7_forward, "RWKV-7 WKV forward (CPU)");
  m.def("backward", &wkv7_backward, "RWKV-7 WKV backward (CPU)");
  bind_time_mix(m);
  bind_shift_lerp(m);
}
