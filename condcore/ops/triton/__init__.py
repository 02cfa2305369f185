"""The Triton GPU kernels (on the CPU under TRITON_INTERPRET=1): grouped, union and what they share."""
