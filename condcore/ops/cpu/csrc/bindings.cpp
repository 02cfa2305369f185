// The Python module of the C++ CPU kernels (condcore/ops/cpu_native.py builds it from every source here).
#include <torch/extension.h>

void grouped_forward(const at::Tensor& x, const std::vector<at::Tensor>& blocks, const c10::optional<at::Tensor>& bias,
                     const at::Tensor& rows, const std::vector<int64_t>& offsets,
                     const std::vector<std::vector<int64_t>>& bins, int64_t block_size, bool onednn, at::Tensor& y,
                     const c10::optional<at::Tensor>& timings);

void condnet_forward(const at::Tensor& x, const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                     const std::vector<at::Tensor>& gate_weights, const std::vector<at::Tensor>& gate_biases,
                     const std::vector<double>& thresholds, const std::vector<int64_t>& budgets,
                     const std::vector<at::Tensor>& masks, at::Tensor& logits, int64_t threads,
                     const c10::optional<at::Tensor>& marks, const c10::optional<at::Tensor>& timings);

void pairs_forward(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                   const c10::optional<at::Tensor>& in_mask, const c10::optional<at::Tensor>& out_mask, at::Tensor& y,
                   int64_t threads, const c10::optional<at::Tensor>& timings);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // The GIL is released while a kernel runs: none touches a Python object, and a progress bar or
  // another Python thread may run meanwhile.
  m.def("grouped_forward", &grouped_forward, "block-sparse linear, whole output blocks per thread",
        py::call_guard<py::gil_scoped_release>());
  m.def("condnet_forward", &condnet_forward, "a CondNet's whole inference (threshold or top-k gates), one parallel region",
        py::call_guard<py::gil_scoped_release>());
  // timings last and optional (profiling only): calls written before it existed still run.
  m.def("pairs_forward", &pairs_forward, "block-sparse linear over each row's (active in, active out) block pairs",
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("in_mask"), py::arg("out_mask"), py::arg("y"),
        py::arg("threads"), py::arg("timings") = py::none(), py::call_guard<py::gil_scoped_release>());
}
