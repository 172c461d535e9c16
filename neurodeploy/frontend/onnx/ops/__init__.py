"""One module per family of ONNX ops; importing this package registers every handler."""

from neurodeploy.frontend.onnx.ops import (  # noqa: F401  (imported for their registrations)
    activation,
    batchnorm,
    constant_folding,
    conv,
    elementwise,
    gemm,
    merge,
    passthrough,
    pool,
    shape,
)
