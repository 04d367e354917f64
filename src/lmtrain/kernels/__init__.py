"""Optional fast paths, chosen once per process by one switch (``trainer.cpu_kernels``).

Models import the kernels from here; each dispatches to lmtrain's CPU kernels
(:mod:`lmtrain.kernels.cpu`) or to PyTorch's own op, as :mod:`lmtrain.kernels.select` decided.
"""

from lmtrain.kernels.ops import Dropout, Linear, attend, dropout, linear, matmul_t, prepacked_linears
from lmtrain.kernels.select import CPU_KERNEL_CHOICES, cpu_kernels, select_cpu_kernels, use_cpu_kernels

__all__ = [
    "CPU_KERNEL_CHOICES",
    "Dropout",
    "Linear",
    "attend",
    "cpu_kernels",
    "dropout",
    "linear",
    "matmul_t",
    "prepacked_linears",
    "select_cpu_kernels",
    "use_cpu_kernels",
]
