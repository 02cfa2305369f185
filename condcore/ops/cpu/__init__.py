"""The CPU kernels: the torch-ops paths (grouped, union) and the C++ ones (native: the grouped kernel and
the build; pairs: the pair kernels), with their sources under csrc/."""
