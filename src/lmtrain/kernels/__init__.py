"""Optional fast paths, chosen once per process by one switch (``trainer.cpu_kernels``).

Models import the kernels from here; each dispatches to lmtrain's CPU kernels
(:mod:`lmtrain.kernels.cpu`) or to PyTorch's own op, as :mod:`lmtrain.kernels.select` decided
(``onednn``: oneDNN products and lmtrain's dropout; ``torch-matmul``: PyTorch's products and
lmtrain's dropout; ``torch``: PyTorch's ops throughout). A training run on CPU with lmtrain's kernels
also keeps freed memory for reuse (:mod:`lmtrain.kernels.cpu.heap`).
"""

from lmtrain.kernels.cpu.heap import keep_freed_cpu_memory
from lmtrain.kernels.ops import Dropout, Linear, attend, dropout, linear, matmul_t, prepacked_linears, weight_gradient
from lmtrain.kernels.select import (
    CPU_KERNEL_CHOICES,
    KERNEL_SETS,
    active_cpu_kernels,
    cpu_kernels,
    select_cpu_kernels,
    use_cheap_dropout,
    use_cpu_kernels,
    use_onednn_products,
)

__all__ = [
    "CPU_KERNEL_CHOICES",
    "KERNEL_SETS",
    "Dropout",
    "Linear",
    "active_cpu_kernels",
    "attend",
    "cpu_kernels",
    "dropout",
    "keep_freed_cpu_memory",
    "linear",
    "matmul_t",
    "prepacked_linears",
    "select_cpu_kernels",
    "use_cheap_dropout",
    "use_cpu_kernels",
    "use_onednn_products",
    "weight_gradient",
]
