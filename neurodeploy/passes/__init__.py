"""Graph passes and the pipelines built from them.

``PASSES`` maps every pass name to its class; pipelines are strings over those names (see ``base``).
"""

from neurodeploy.passes.base import Pass, PassContext, PassManager, format_pipeline, parse_pipeline
from neurodeploy.passes.canonicalize_flatten import CanonicalizeFlatten
from neurodeploy.passes.canonicalize_pooling import CanonicalizePooling
from neurodeploy.passes.convert_to_snn import ConvertToSNN
from neurodeploy.passes.detect_qcfs import DetectQCFS
from neurodeploy.passes.drop_softmax import DropSoftmax
from neurodeploy.passes.fold_batchnorm import FoldBatchNorm
from neurodeploy.passes.fold_bias import FoldBias
from neurodeploy.passes.fold_scale import FoldScale, FoldScaleForward
from neurodeploy.passes.fuse_activations import FuseActivations

PASSES: dict[str, type[Pass]] = {
    cls.name: cls
    for cls in (
        FoldBatchNorm,
        FoldBias,
        FuseActivations,
        DetectQCFS,
        FoldScale,
        FoldScaleForward,
        CanonicalizePooling,
        CanonicalizeFlatten,
        DropSoftmax,
        ConvertToSNN,
    )
}

CANONICALIZE = (
    "fold-batchnorm,fold-bias,fuse-activations,detect-qcfs,fold-scale,canonicalize-pooling,canonicalize-flatten,"
    "drop-softmax"
)
"""Target-independent clean-up every pipeline starts with."""


def build_pipeline(text: str) -> list[Pass]:
    """Parse a pipeline string against the registered passes."""
    return parse_pipeline(text, PASSES)


def conversion_pass(options: str | None = None) -> str:
    """The convert-to-snn pass with user options (``"norm=max,granularity=channel"``), checked and written in
    canonical form; defaults are left out."""
    (convert,) = build_pipeline(f"convert-to-snn{{{options or ''}}}")
    return convert.spec()


__all__ = [
    "CANONICALIZE",
    "PASSES",
    "Pass",
    "PassContext",
    "PassManager",
    "build_pipeline",
    "conversion_pass",
    "format_pipeline",
]
