// RWKV-7 WKV on the CPU: the recurrence itself, forward and backward, one (batch, head) per task.
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
// The forward pass stores M every `ckpt` steps; the backward recomputes the states (and u) of one
// segment at a time into a per-task buffer, then walks that segment backwards.
//
// Layout: every sequence input is (B, T, H, N) contiguous, states are (B, H, K, V). The math runs in
// the input dtype: fp32 for training, float64 for the equivalence tests.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

// One step of the recurrence for one (batch, head), fused into a single pass over the state:
//   Mout = diag(w) Min + b^T u + k^T v,  o = r Mout (when o != nullptr),
//   u_next = a_next Mout (the next step's u, when a_next != nullptr; else u_next is zeroed).
// Min and Mout may alias (in-place update). NV > 0 fixes V at compile time (unrolled inner loops).
template <typename scalar_t, int NV>
inline void step(const scalar_t* __restrict r, const scalar_t* __restrict lw, const scalar_t* __restrict k,
                 const scalar_t* __restrict v, const scalar_t* __restrict b, const scalar_t* __restrict a_next,
                 const scalar_t* Min, scalar_t* Mout, const scalar_t* __restrict u, scalar_t* __restrict u_next,
                 scalar_t* __restrict o, int64_t K, int64_t V_) {
  const int64_t V = NV > 0 ? NV : V_;
  for (int64_t j = 0; j < V; ++j) u_next[j] = 0;
  if (o != nullptr)
    for (int64_t j = 0; j < V; ++j) o[j] = 0;
  for (int64_t i = 0; i < K; ++i) {
    const scalar_t wi = std::exp(lw[i]), bi = b[i], ki = k[i], ri = r[i];
    const scalar_t ani = a_next != nullptr ? a_next[i] : scalar_t(0);
    const scalar_t* in = Min + i * V;
    scalar_t* out = Mout + i * V;
    if (o != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) {
        const scalar_t m = wi * in[j] + bi * u[j] + ki * v[j];
        out[j] = m;
        o[j] += ri * m;
        u_next[j] += ani * m;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) {
        const scalar_t m = wi * in[j] + bi * u[j] + ki * v[j];
        out[j] = m;
        u_next[j] += ani * m;
      }
    }
  }
}

template <typename scalar_t, int NV>
void forward_impl(const at::Tensor& r, const at::Tensor& lw, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& a, const at::Tensor& b, at::Tensor& o, at::Tensor& ckpts,
                  at::Tensor& final_state, int64_t seg) {
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), K = r.size(3), V = v.size(3);
  const int64_t n_seg = ckpts.size(2);
  const scalar_t *rp = r.data_ptr<scalar_t>(), *lwp = lw.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>();
  const scalar_t *vp = v.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
  scalar_t *op = o.data_ptr<scalar_t>(), *cp = ckpts.data_ptr<scalar_t>(), *fp = final_state.data_ptr<scalar_t>();
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> M(K * V), u(V), u_next(V);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t bi = bh / H, h = bh % H;
      const int64_t offk = (bi * T * H + h) * K, offv = (bi * T * H + h) * V;  // position t adds t*H*N
      std::fill(M.begin(), M.end(), scalar_t(0));
      std::fill(u.begin(), u.end(), scalar_t(0));  // u_0 = a_0 M_{-1} = 0
      for (int64_t t = 0; t < T; ++t) {
        if (t % seg == 0) std::copy(M.begin(), M.end(), cp + (bh * n_seg + t / seg) * K * V);
        const int64_t tk = offk + t * H * K, tv = offv + t * H * V;
        const scalar_t* a_next = t + 1 < T ? ap + tk + H * K : nullptr;
        step<scalar_t, NV>(rp + tk, lwp + tk, kp + tk, vp + tv, bp + tk, a_next, M.data(), M.data(), u.data(),
                           u_next.data(), op + tv, K, V);
        std::swap(u, u_next);
      }
      std::copy(M.begin(), M.end(), fp + bh * K * V);
    }
  });
}

// The backward walks t downwards in one pass over the state per step. The update of dM by step
// t+1 (dM <- diag(w_{t+1}) dM + a_{t+1}^T du_{t+1}) and da_{t+1} = M_t du_{t+1}^T are deferred into
// step t's pass, which reads M_t anyway (for dr_t): three state-sized arrays per step, not five.
template <typename scalar_t, int NV>
void backward_impl(const at::Tensor& r, const at::Tensor& lw, const at::Tensor& k, const at::Tensor& v,
                   const at::Tensor& a, const at::Tensor& b, const at::Tensor& ckpts, const at::Tensor& d_o,
                   const at::Tensor& d_state, at::Tensor& dr, at::Tensor& dlw, at::Tensor& dk, at::Tensor& dv,
                   at::Tensor& da, at::Tensor& db, int64_t seg) {
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), K = r.size(3), V_ = v.size(3);
  const int64_t V = NV > 0 ? NV : V_;
  const int64_t n_seg = ckpts.size(2);
  const bool has_dstate = d_state.defined() && d_state.numel() > 0;
  const scalar_t *rp = r.data_ptr<scalar_t>(), *lwp = lw.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>();
  const scalar_t *vp = v.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
  const scalar_t *cp = ckpts.data_ptr<scalar_t>(), *dop = d_o.data_ptr<scalar_t>();
  const scalar_t* dsp = has_dstate ? d_state.data_ptr<scalar_t>() : nullptr;
  scalar_t *drp = dr.data_ptr<scalar_t>(), *dlwp = dlw.data_ptr<scalar_t>(), *dkp = dk.data_ptr<scalar_t>();
  scalar_t *dvp = dv.data_ptr<scalar_t>(), *dap = da.data_ptr<scalar_t>(), *dbp = db.data_ptr<scalar_t>();
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    // S holds the states M_{t0-1}, M_{t0}, ... of one segment; U the matching u_t (U[j] = u_{t0+j}).
    std::vector<scalar_t> S((seg + 1) * K * V), U((seg + 1) * V), dM(K * V), du(V), du_next(V), dvt(V);
    std::vector<scalar_t> w_next(K), a_next(K);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t bi = bh / H, h = bh % H;
      const int64_t offk = (bi * T * H + h) * K, offv = (bi * T * H + h) * V;
      if (has_dstate) std::copy(dsp + bh * K * V, dsp + (bh + 1) * K * V, dM.begin());
      else std::fill(dM.begin(), dM.end(), scalar_t(0));
      // Deferred update from "step T": identity (w = 1, a = 0, du = 0).
      std::fill(w_next.begin(), w_next.end(), scalar_t(1));
      std::fill(a_next.begin(), a_next.end(), scalar_t(0));
      std::fill(du_next.begin(), du_next.end(), scalar_t(0));
      int64_t t_next = -1;  // the step whose da is still to be written (-1: none)
      for (int64_t s = n_seg - 1; s >= 0; --s) {
        const int64_t t0 = s * seg, len = std::min(seg, T - t0);
        const scalar_t* ck = cp + (bh * n_seg + s) * K * V;
        std::copy(ck, ck + K * V, S.begin());
        // u_{t0} = a_{t0} M_{t0-1}, then the segment's states, each step also giving the next u.
        {
          const scalar_t* at0 = ap + offk + t0 * H * K;
          for (int64_t j = 0; j < V; ++j) U[j] = 0;
          for (int64_t i = 0; i < K; ++i)
            for (int64_t j = 0; j < V; ++j) U[j] += at0[i] * S[i * V + j];
        }
        for (int64_t j = 0; j < len; ++j) {
          const int64_t tk = offk + (t0 + j) * H * K, tv = offv + (t0 + j) * H * V;
          const scalar_t* an = t0 + j + 1 < T ? ap + tk + H * K : nullptr;
          step<scalar_t, NV>(rp + tk, lwp + tk, kp + tk, vp + tv, bp + tk, an, S.data() + j * K * V,
                             S.data() + (j + 1) * K * V, U.data() + j * V, U.data() + (j + 1) * V, nullptr, K, V);
        }
        for (int64_t j = len - 1; j >= 0; --j) {
          const int64_t t = t0 + j;
          const int64_t tk = offk + t * H * K, tv = offv + t * H * V;
          const scalar_t *rt = rp + tk, *lwt = lwp + tk, *kt = kp + tk, *vt = vp + tv, *at_ = ap + tk,
                         *bt = bp + tk, *dot = dop + tv;
          const scalar_t* __restrict Mprev = S.data() + j * K * V;
          const scalar_t* __restrict Mt = S.data() + (j + 1) * K * V;
          const scalar_t* __restrict u = U.data() + j * V;
          const scalar_t* __restrict dun = du_next.data();
          scalar_t* __restrict dup = du.data();
          scalar_t* __restrict dvp_ = dvt.data();
          for (int64_t jj = 0; jj < V; ++jj) dup[jj] = dvp_[jj] = 0;
          for (int64_t i = 0; i < K; ++i) {
            scalar_t* __restrict dMi = dM.data() + i * V;
            const scalar_t* __restrict Mti = Mt + i * V;
            const scalar_t* __restrict Mpi = Mprev + i * V;
            const scalar_t ri = rt[i], ki = kt[i], bi_ = bt[i], wn = w_next[i], an = a_next[i];
            scalar_t acc_an = 0, acc_r = 0, acc_w = 0, acc_b = 0, acc_k = 0;
#pragma omp simd reduction(+ : acc_an, acc_r, acc_w, acc_b, acc_k)
            for (int64_t jj = 0; jj < V; ++jj) {
              const scalar_t g = wn * dMi[jj] + an * dun[jj] + ri * dot[jj];  // dL/dM_t
              dMi[jj] = g;
              const scalar_t m = Mti[jj];
              acc_an += m * dun[jj];
              acc_r += m * dot[jj];
              acc_w += g * Mpi[jj];
              acc_b += g * u[jj];
              acc_k += g * vt[jj];
              dvp_[jj] += ki * g;
              dup[jj] += bi_ * g;
            }
            if (t_next >= 0) dap[tk + H * K + i] = acc_an;  // da_{t+1} = M_t du_{t+1}^T
            drp[tk + i] = acc_r;
            const scalar_t wi = std::exp(lwt[i]);
            dlwp[tk + i] = acc_w * wi;
            dbp[tk + i] = acc_b;
            dkp[tk + i] = acc_k;
            w_next[i] = wi;
            a_next[i] = at_[i];
          }
          std::copy(dvt.begin(), dvt.begin() + V, dvp + tv);
          std::swap(du, du_next);
          t_next = t;
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

// Returns (o (B, T, H, V), checkpoints (B, H, n_seg, K, V), final state (B, H, K, V)).
std::vector<at::Tensor> wkv7_forward(at::Tensor r, at::Tensor lw, at::Tensor k, at::Tensor v, at::Tensor a,
                                     at::Tensor b, int64_t seg) {
  check_inputs({r, lw, k, v, a, b});
  TORCH_CHECK(seg >= 1, "wkv7_cpu: segment length must be >= 1");
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), K = r.size(3), V = v.size(3);
  const int64_t n_seg = std::max<int64_t>(1, (T + seg - 1) / seg);
  auto o = at::zeros({B, T, H, V}, v.options());
  auto ckpts = at::zeros({B, H, n_seg, K, V}, v.options());
  auto fin = at::zeros({B, H, K, V}, v.options());
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "wkv7_forward", [&] {
    if (V == 64) forward_impl<scalar_t, 64>(r, lw, k, v, a, b, o, ckpts, fin, seg);
    else if (V == 32) forward_impl<scalar_t, 32>(r, lw, k, v, a, b, o, ckpts, fin, seg);
    else forward_impl<scalar_t, 0>(r, lw, k, v, a, b, o, ckpts, fin, seg);
  });
  return {o, ckpts, fin};
}

// Returns (dr, dlog_w, dk, dv, da, db), each shaped like its input.
std::vector<at::Tensor> wkv7_backward(at::Tensor r, at::Tensor lw, at::Tensor k, at::Tensor v, at::Tensor a,
                                      at::Tensor b, at::Tensor ckpts, at::Tensor d_o, at::Tensor d_state,
                                      int64_t seg) {
  check_inputs({r, lw, k, v, a, b, d_o});
  TORCH_CHECK(ckpts.is_contiguous() && d_o.is_contiguous(), "wkv7_cpu: checkpoints and grads must be contiguous");
  if (d_state.numel() > 0) TORCH_CHECK(d_state.is_contiguous(), "wkv7_cpu: state grad must be contiguous");
  auto dr = at::empty_like(r), dlw = at::empty_like(lw), dk = at::empty_like(k);
  auto dv = at::empty_like(v), da = at::empty_like(a), db = at::empty_like(b);
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "wkv7_backward", [&] {
    const int64_t V = v.size(3);
    if (V == 64) backward_impl<scalar_t, 64>(r, lw, k, v, a, b, ckpts, d_o, d_state, dr, dlw, dk, dv, da, db, seg);
    else if (V == 32) backward_impl<scalar_t, 32>(r, lw, k, v, a, b, ckpts, d_o, d_state, dr, dlw, dk, dv, da, db, seg);
    else backward_impl<scalar_t, 0>(r, lw, k, v, a, b, ckpts, d_o, d_state, dr, dlw, dk, dv, da, db, seg);
  });
  return {dr, dlw, dk, dv, da, db};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &wkv7_forward, "RWKV-7 WKV forward (CPU)");
  m.def("backward", &wkv7_backward, "RWKV-7 WKV backward (CPU)");
}
