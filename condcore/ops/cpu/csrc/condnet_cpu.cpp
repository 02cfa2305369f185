// Whole-CondNet inference on the CPU in one parallel region: every gate, every block-sparse layer and
// the output layer, with no Python, no allocation and no zeros written between them (condnet_forward);
// and one block-sparse layer by the same pairs (pairs_forward).
//
// Why: layer by layer, each block_sparse_linear call validates, routes and allocates in Python, and the
// grouped kernel computes an active output block over every input block, zeros included, so a layer
// with both masks does its output density's share of the work, not the pairs' (about 0.28 against 0.07
// at tau = 0.25). Here each example runs only its (active input block, active output block) pairs, the
// activations stay in block form (layer l's output mask is layer l+1's input mask, so inactive blocks
// are never written nor read), and each gate reads only its input's active blocks.
//
// Weights come packed by condcore/ops/condnet_native.py: per (output block j, input block i), the
// (in_block x out_width) tile W[j, i].T in panels of 16 output columns, each panel kk-major, so the
// micro-kernel streams one panel while up to six examples' rows accumulate in registers.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>
#ifdef __AVX__
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kLanes = 16;  // output columns per panel: two 8-float vectors
constexpr int kMaxRows = 6;  // rows per micro-tile: 12 accumulators + 2 panel vectors + 1 broadcast
constexpr int64_t kRowChunk = 16;  // rows per task where a map has one output block (gates, output)
constexpr int64_t kGroup = 4;  // input blocks summed in registers where there is no input mask
using Vec = float __attribute__((vector_size(32)));

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }

// c[r][0:16] += sum over segments g and kk of a[r][g * a_step + kk] * panel[g * panel_step + kk * 16 +
// 0:16], for R rows: one input block per segment, summed in registers. Few rows carry few FMA chains,
// each waiting on its last FMA's latency: they are split into S partial sums over kk, added at the end.
template <int R>
void tile(const float* const* a, int64_t a_step, const float* panels, int64_t panel_step, int64_t segments,
          int64_t depth, float* const* c) {
  constexpr int S = R == 1 ? 4 : R == 2 ? 2 : 1;
  Vec lo[S][R], hi[S][R];
  for (int r = 0; r < R; ++r) {
    lo[0][r] = load(c[r]);
    hi[0][r] = load(c[r] + 8);
    for (int s = 1; s < S; ++s) lo[s][r] = hi[s][r] = Vec{};
  }
  for (int64_t g = 0; g < segments; ++g) {
    const float* panel = panels + g * panel_step;
    const int64_t offset = g * a_step;
    int64_t kk = 0;
    for (; kk + S <= depth; kk += S) {
      for (int s = 0; s < S; ++s) {
        const Vec b0 = load(panel + (kk + s) * kLanes), b1 = load(panel + (kk + s) * kLanes + 8);
        for (int r = 0; r < R; ++r) {
          const float v = a[r][offset + kk + s];
          lo[s][r] += v * b0;
          hi[s][r] += v * b1;
        }
      }
    }
    for (; kk < depth; ++kk) {
      const Vec b0 = load(panel + kk * kLanes), b1 = load(panel + kk * kLanes + 8);
      for (int r = 0; r < R; ++r) {
        const float v = a[r][offset + kk];
        lo[0][r] += v * b0;
        hi[0][r] += v * b1;
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int s = 1; s < S; ++s) {
      lo[0][r] += lo[s][r];
      hi[0][r] += hi[s][r];
    }
    store(c[r], lo[0][r]);
    store(c[r] + 8, hi[0][r]);
  }
}

// Per-thread phase clock for profiling (condcore.phases): each lap adds the nanoseconds since the last
// one to a phase of this thread's row of timings; with no row (every timed call) it does nothing.
// Laps run back to back from the thread's start, so a thread's phases add up to its busy time.
enum PairPhase { kRoute, kZeroFill, kBias, kGemm, kPairPhases };

class LapClock {
 public:
  explicit LapClock(int64_t* row = nullptr) : row_(row), mark_(row == nullptr ? 0 : now()) {}
  // Laps into `row` from now (a new stage after a barrier: the wait at the barrier is not a lap).
  void restart(int64_t* row) {
    row_ = row;
    if (row_ != nullptr) mark_ = now();
  }
  void lap(PairPhase phase) {
    if (row_ == nullptr) return;
    const int64_t t = now();
    row_[phase] += t - mark_;
    mark_ = t;
  }

 private:
  static int64_t now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  int64_t* row_;
  int64_t mark_;
};

using TileFn = void (*)(const float* const*, int64_t, const float*, int64_t, int64_t, int64_t, float* const*);
constexpr TileFn kTiles[kMaxRows + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

// One packed linear map: weight (n_out, n_in, chunks, in_block, 16); bias (n_out, chunks * 16), or
// undefined: none.
struct Packed {
  const float* weight;
  const float* bias;
  int64_t n_out, n_in, in_block, chunks;

  Packed(const at::Tensor& w, const at::Tensor& b)
      : weight(w.data_ptr<float>()), bias(b.defined() ? b.data_ptr<float>() : nullptr), n_out(w.size(0)),
        n_in(w.size(1)), in_block(w.size(3)), chunks(w.size(2)) {}
  int64_t width() const { return chunks * kLanes; }
};

// Activations in block form: block i of row r starts at data + r * ld + i * stride; mask (rows, blocks)
// says which blocks hold values (null: all of them).
struct Blocks {
  float* data;
  int64_t ld, stride;
  const bool* mask;
};

// Output block j of `map` for `rows` (each of which runs it): its bias plus the products of the rows'
// active input blocks, then relu if asked. `active` is scratch; `clock` takes its laps (bias, route: the
// rows active in an input block, gemm).
void run_out_block(const Packed& map, int64_t j, const std::vector<int32_t>& rows, const Blocks& in,
                   const Blocks& out, bool relu, std::vector<int32_t>& active, LapClock& clock) {
  const int64_t width = map.width();
  for (int32_t r : rows) {
    float* y = out.data + r * out.ld + j * out.stride;
    if (map.bias == nullptr) std::fill(y, y + width, 0.0f);
    else std::memcpy(y, map.bias + j * width, width * sizeof(float));
  }
  clock.lap(kBias);
  const float* a[kMaxRows];
  float* y[kMaxRows];
  float* c[kMaxRows];
  // Without an input mask every row reads every input block: kGroup of them are summed in registers,
  // so each tile of y is loaded and stored once per group instead of once per block.
  const int64_t group = in.mask == nullptr ? kGroup : 1;
  const int64_t panels = map.in_block * kLanes, block_step = map.chunks * panels;
  for (int64_t i = 0; i < map.n_in; i += group) {
    const int64_t segments = std::min(group, map.n_in - i);
    active.clear();
    for (int32_t r : rows)
      if (in.mask == nullptr || in.mask[r * map.n_in + i]) active.push_back(r);
    clock.lap(kRoute);
    if (active.empty()) continue;
    const float* block = map.weight + (j * map.n_in + i) * block_step;
    // Row tiles outside, panels inside: a tile's rows of x stay in L1 across the block's panels, and
    // the block's panels (64 KB at k = 128, one group 256 KB) in L2 across the tiles.
    for (size_t t = 0; t < active.size(); t += kMaxRows) {
      const int n = static_cast<int>(std::min<size_t>(kMaxRows, active.size() - t));
      for (int q = 0; q < n; ++q) {
        const int64_t r = active[t + q];
        a[q] = in.data + r * in.ld + i * in.stride;
        y[q] = out.data + r * out.ld + j * out.stride;
      }
      for (int64_t ch = 0; ch < map.chunks; ++ch) {
        for (int q = 0; q < n; ++q) c[q] = y[q] + ch * kLanes;
        kTiles[n](a, in.stride, block + ch * panels, block_step, segments, map.in_block, c);
      }
    }
    clock.lap(kGemm);
  }
  if (!relu) return;
  for (int32_t r : rows) {
    float* y = out.data + r * out.ld + j * out.stride;
    for (int64_t t = 0; t < width; ++t) y[t] = std::max(y[t], 0.0f);
  }
}

// One example's gate: its blocks' logits to its mask, by threshold or (budget > 0) top-budget.
void decide(const float* logit, int64_t blocks, float threshold, int64_t budget, bool* mask) {
  if (budget <= 0) {
    for (int64_t j = 0; j < blocks; ++j) mask[j] = logit[j] > threshold;
    return;
  }
  std::fill(mask, mask + blocks, false);
  for (int64_t chosen = 0; chosen < std::min(budget, blocks); ++chosen) {
    int64_t best = -1;
    for (int64_t j = 0; j < blocks; ++j)
      if (!mask[j] && (best < 0 || logit[j] > logit[best])) best = j;
    mask[best] = true;
  }
}

constexpr int64_t kStreamBytes = int64_t{4} << 20;

// n floats at p set to 0, by streaming stores where asked and p is 32-byte aligned.
inline void zero(float* p, int64_t n, bool stream) {
#ifdef __AVX__
  if (stream && reinterpret_cast<uintptr_t>(p) % 32 == 0 && n % 8 == 0) {
    for (int64_t t = 0; t < n; t += 8) _mm256_stream_ps(p + t, _mm256_setzero_ps());
    return;
  }
#endif
  std::fill(p, p + n, 0.0f);
}

void chunk_rows(int64_t chunk, int64_t batch, std::vector<int32_t>& rows) {
  rows.clear();
  for (int64_t r = chunk * kRowChunk; r < std::min(batch, (chunk + 1) * kRowChunk); ++r) rows.push_back(static_cast<int32_t>(r));
}

}  // namespace

// logits = the CondNet's output on x, masks[l] = hidden layer l's gate decisions, both written in
// full: a block runs where its policy logit > thresholds[l], or, where budgets[l] > 0, the budgets[l]
// blocks of highest logit run (ties to the lower block). maps: the hidden layers' packed weights and biases, then the
// output layer's; gates: each hidden layer's packed policy. threads: OpenMP threads for the region.
// marks, when given (profiling): 2 * layers + 2 int64 steady-clock nanoseconds, taken as the region
// starts and as every thread has finished each gate, each layer and the output; timings, when given:
// a (threads, 2 * layers + 1, 4) int64 tensor of zeros that each thread's laps (route, zero_fill, bias,
// gemm) of each stage (gate 0, layer 0, ..., output) add to.
void condnet_forward(const at::Tensor& x, const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                     const std::vector<at::Tensor>& gate_weights, const std::vector<at::Tensor>& gate_biases,
                     const std::vector<double>& thresholds, const std::vector<int64_t>& budgets,
                     const std::vector<at::Tensor>& masks, at::Tensor& logits, int64_t threads,
                     const c10::optional<at::Tensor>& marks, const c10::optional<at::Tensor>& timings) {
  const size_t layers = gate_weights.size();
  TORCH_CHECK(layers >= 1 && weights.size() == layers + 1 && biases.size() == layers + 1 &&
                  gate_biases.size() == layers && thresholds.size() == layers && budgets.size() == layers &&
                  masks.size() == layers,
              "one packed map, gate, threshold and mask per hidden layer, plus the output map");
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(), "x must be contiguous 2-D fp32");
  TORCH_CHECK(logits.is_contiguous() && logits.scalar_type() == at::kFloat, "logits must be contiguous fp32");
  std::vector<Packed> maps, gates;
  for (size_t l = 0; l <= layers; ++l) maps.emplace_back(weights[l], biases[l]);
  for (size_t l = 0; l < layers; ++l) gates.emplace_back(gate_weights[l], gate_biases[l]);
  const int64_t batch = x.size(0), n_classes = logits.size(1);
  for (size_t l = 0; l <= layers; ++l) {
    // Each map reads the blocks the one before it wrote (the first: x as one block).
    const int64_t in_blocks = l == 0 ? 1 : maps[l - 1].n_out;
    const int64_t in_width = l == 0 ? x.size(1) : maps[l - 1].width();
    TORCH_CHECK(maps[l].n_in == in_blocks && maps[l].in_block <= in_width, "map ", l, " does not fit its input");
    if (l == layers) break;
    TORCH_CHECK(gates[l].n_out == 1 && gates[l].n_in == in_blocks && gates[l].in_block == maps[l].in_block &&
                    gates[l].width() >= maps[l].n_out, "gate ", l, " does not fit its layer");
    TORCH_CHECK(masks[l].dim() == 2 && masks[l].size(1) == maps[l].n_out, "mask ", l, " must be (batch, blocks)");
  }
  int64_t* mark = nullptr;
  if (marks.has_value()) {
    TORCH_CHECK(marks->scalar_type() == at::kLong && marks->is_contiguous() &&
                    marks->numel() == static_cast<int64_t>(2 * layers + 2), "marks must be 2 * layers + 2 int64");
    mark = marks->data_ptr<int64_t>();
  }
  threads = std::max<int64_t>(1, threads);
  const int64_t stages = static_cast<int64_t>(2 * layers + 1);
  int64_t* timing_rows = nullptr;
  if (timings.has_value()) {
    TORCH_CHECK(timings->scalar_type() == at::kLong && timings->is_contiguous() && timings->dim() == 3 &&
                    timings->size(0) == threads && timings->size(1) == stages && timings->size(2) == kPairPhases,
                "timings must be a contiguous (threads, 2 * layers + 1, 4) int64 tensor of zeros");
    timing_rows = timings->data_ptr<int64_t>();
  }
  // After an omp for's barrier every thread has finished it: the master's clock then marks its end.
  auto stamp = [mark](size_t at) {
    if (mark != nullptr)
      mark[at] = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  TORCH_CHECK(maps[layers].n_out == 1 && maps[layers].width() >= n_classes && logits.size(0) == batch,
              "the output map must be one block as wide as logits");
  int64_t widest = 0;
  for (size_t l = 0; l < layers; ++l) widest = std::max(widest, maps[l].n_out * maps[l].width());
  // Two hidden activations (ping-pong), a gate's logits and the output's, reused from call to call.
  thread_local std::vector<float> workspace;
  const int64_t out_width = maps[layers].width();
  int64_t gate_ld = 0;
  for (const Packed& g : gates) gate_ld = std::max(gate_ld, g.width());
  const size_t needed = static_cast<size_t>(batch * (2 * widest + gate_ld + out_width));
  if (workspace.size() < needed) workspace.resize(needed);
  float* hidden[2] = {workspace.data(), workspace.data() + batch * widest};
  float* gate_out = hidden[1] + batch * widest;
  float* out = gate_out + batch * gate_ld;
  std::vector<bool*> mask_data;
  for (const at::Tensor& m : masks) {
    TORCH_CHECK(m.scalar_type() == at::kBool && m.is_contiguous() && m.size(0) == batch, "masks must be contiguous bool");
    mask_data.push_back(m.data_ptr<bool>());
  }
  float* x_data = const_cast<float*>(x.data_ptr<float>());
  float* logits_data = logits.data_ptr<float>();
  const int64_t row_chunks = (batch + kRowChunk - 1) / kRowChunk;

#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    std::vector<int32_t> rows, active;
    rows.reserve(batch);
    active.reserve(batch);
    int64_t* my_rows = timing_rows == nullptr ? nullptr : timing_rows + omp_get_thread_num() * stages * kPairPhases;
    auto stage_row = [my_rows](int64_t stage) { return my_rows == nullptr ? nullptr : my_rows + stage * kPairPhases; };
    LapClock clock;
#pragma omp master
    stamp(0);
    Blocks in{x_data, x.size(1), x.size(1), nullptr};
    for (size_t l = 0; l < layers; ++l) {
      const Packed& gate = gates[l];
      const Packed& map = maps[l];
      const Blocks scores{gate_out, gate_ld, 0, nullptr};
      const float threshold = static_cast<float>(thresholds[l]);
      bool* mask = mask_data[l];
      clock.restart(stage_row(2 * l));
#pragma omp for schedule(static)
      for (int64_t chunk = 0; chunk < row_chunks; ++chunk) {
        chunk_rows(chunk, batch, rows);
        run_out_block(gate, 0, rows, in, scores, false, active, clock);
        for (int32_t r : rows) decide(gate_out + r * gate_ld, map.n_out, threshold, budgets[l], mask + r * map.n_out);
        clock.lap(kRoute);  // the gate's decisions route the layer's blocks
      }
#pragma omp master
      stamp(2 * l + 1);
      const Blocks h{hidden[l % 2], map.n_out * map.width(), map.width(), mask};
      clock.restart(stage_row(2 * l + 1));
#pragma omp for schedule(dynamic, 1)
      for (int64_t j = 0; j < map.n_out; ++j) {
        rows.clear();
        for (int64_t r = 0; r < batch; ++r)
          if (mask[r * map.n_out + j]) rows.push_back(static_cast<int32_t>(r));
        clock.lap(kRoute);
        if (!rows.empty()) run_out_block(map, j, rows, in, h, true, active, clock);
        clock.lap(kGemm);  // the block's relu
      }
#pragma omp master
      stamp(2 * l + 2);
      in = h;
    }
    const Blocks scores{out, out_width, 0, nullptr};
    clock.restart(stage_row(stages - 1));
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < row_chunks; ++chunk) {
      chunk_rows(chunk, batch, rows);
      run_out_block(maps[layers], 0, rows, in, scores, false, active, clock);
      for (int32_t r : rows) std::memcpy(logits_data + r * n_classes, out + r * out_width, n_classes * sizeof(float));
      clock.lap(kGemm);  // the logits copied out
    }
#pragma omp master
    stamp(2 * layers + 1);
  }
}

// One block-sparse linear layer with the spec's semantics (condcore/ops/reference.py): y[r, block j] =
// bias_j + the products of row r's active input blocks (dropped ones skipped, never read) where
// out_mask[r, j], exactly 0 elsewhere; every element of y written. Each row runs only its (active
// input, active output) pairs. weight packed with in_block = out_block = k, k a multiple of 16 (so a
// block's panels are exactly its columns of y); bias (n_out * k) or none; masks bool, or none (all
// active).
void pairs_forward(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                   const c10::optional<at::Tensor>& in_mask, const c10::optional<at::Tensor>& out_mask, at::Tensor& y,
                   int64_t threads, const c10::optional<at::Tensor>& timings) {
  const Packed map(weight, bias.value_or(at::Tensor()));
  const int64_t batch = x.size(0), k = map.in_block;
  threads = std::max<int64_t>(1, threads);
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous() && x.size(1) == map.n_in * k,
              "x must be contiguous (batch, in_features) fp32");
  TORCH_CHECK(map.width() == k, "blocks must be square, a multiple of 16 wide");
  TORCH_CHECK(y.scalar_type() == at::kFloat && y.is_contiguous() && y.size(0) == batch && y.size(1) == map.n_out * k,
              "y must be contiguous (batch, out_features) fp32");
  TORCH_CHECK(!bias.has_value() || (bias->is_contiguous() && bias->numel() == map.n_out * k), "bias must be (out_features,)");
  TORCH_CHECK(!in_mask.has_value() || (in_mask->size(1) == map.n_in), "in_mask must be (batch, in blocks)");
  TORCH_CHECK(!out_mask.has_value() || (out_mask->size(1) == map.n_out), "out_mask must be (batch, out blocks)");
  for (const c10::optional<at::Tensor>* m : {&in_mask, &out_mask})
    TORCH_CHECK(!m->has_value() || ((*m)->scalar_type() == at::kBool && (*m)->is_contiguous() && (*m)->size(0) == batch),
                "masks must be contiguous bool (batch, blocks)");
  int64_t* timing_rows = nullptr;
  if (timings.has_value()) {
    TORCH_CHECK(timings->scalar_type() == at::kLong && timings->is_contiguous() && timings->size(0) == threads &&
                    timings->size(1) == kPairPhases,
                "timings must be a contiguous (threads, 4) int64 tensor of zeros");
    timing_rows = timings->data_ptr<int64_t>();
  }
  const bool* in_active = in_mask.has_value() ? in_mask->data_ptr<bool>() : nullptr;
  const bool* out_active = out_mask.has_value() ? out_mask->data_ptr<bool>() : nullptr;
  const Blocks in{const_cast<float*>(x.data_ptr<float>()), x.size(1), k, in_active};
  const Blocks out{y.data_ptr<float>(), y.size(1), k, nullptr};
  // Large outputs are zeroed with streaming stores: the lines are not read first and do not evict the
  // weights. At batch 1024, k = 128, d = 0.1 (90% of y zeroed) the kernel ran about 0.1 of its ideal faster
  // (results/ab/pairs-zero-stream-20261202/); software prefetch of the next weight group did not help.
  const bool stream = batch * map.n_out * k * static_cast<int64_t>(sizeof(float)) >= kStreamBytes;
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    std::vector<int32_t> rows, active;
    rows.reserve(batch);
    active.reserve(batch);
    LapClock clock(timing_rows == nullptr ? nullptr : timing_rows + omp_get_thread_num() * kPairPhases);
    // nowait: a thread's last lap is its last block; the region's closing barrier is its wait.
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t j = 0; j < map.n_out; ++j) {
      rows.clear();
      for (int64_t r = 0; r < batch; ++r)
        if (out_active == nullptr || out_active[r * map.n_out + j]) rows.push_back(static_cast<int32_t>(r));
      clock.lap(kRoute);
      if (out_active != nullptr && static_cast<int64_t>(rows.size()) < batch) {
        for (int64_t r = 0; r < batch; ++r)
          if (!out_active[r * map.n_out + j]) zero(out.data + r * out.ld + j * k, k, stream);
#ifdef __AVX__
        if (stream) _mm_sfence();  // streamed zeros are ordered before the region's closing barrier
#endif
        clock.lap(kZeroFill);
      }
      if (!rows.empty()) run_out_block(map, j, rows, in, out, false, active, clock);
    }
  }
}
