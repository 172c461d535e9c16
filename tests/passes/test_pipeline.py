"""Pipeline strings: parsing, typed options, errors that list what exists, and printing back."""

import pytest

from neurodeploy.errors import PipelineError
from neurodeploy.passes import CANONICALIZE, PASSES, build_pipeline, format_pipeline
from neurodeploy.passes.convert_to_snn import ConvertToSNN


def test_options_are_typed_and_round_trip():
    passes = build_pipeline("fold-batchnorm, convert-to-snn{norm=weights,initial=0.25,reset=zero}")
    assert [p.name for p in passes] == ["fold-batchnorm", "convert-to-snn"]
    convert = passes[1]
    assert isinstance(convert, ConvertToSNN)
    assert (convert.norm, convert.initial, convert.reset) == ("weights", 0.25, "zero")
    assert format_pipeline(passes) == "fold-batchnorm,convert-to-snn{norm=weights,reset=zero,initial=0.25}"
    assert format_pipeline(build_pipeline(format_pipeline(passes))) == format_pipeline(passes)


def test_default_canonicalization_names_registered_passes():
    assert [p.name for p in build_pipeline(CANONICALIZE)] == CANONICALIZE.split(",")
    assert set(CANONICALIZE.split(",")) < set(PASSES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fold-batchnorm,teleport", "unknown pass 'teleport'; known passes: canonicalize-flatten"),
        (
            "convert-to-snn{speed=3}",
            r"unknown option 'speed' \(options: norm, percentile, granularity, zeros, reset, initial, maxpool, "
            r"readout, spike-steps, clip, qcfs, coding, fs-steps, mse-steps\)",
        ),
        ("convert-to-snn{initial=half}", "initial='half' is not a valid float"),
        ("convert-to-snn{norm=median}", "norm must be one of max, percentile, mse, spike, weights"),
        ("convert-to-snn{norm=max", "unbalanced"),
        ("convert-to-snn}", "unbalanced"),
        ("convert-to-snn{percentile=0}", "percentile must be in"),
        ("convert-to-snn{granularity=neuron}", "granularity must be one of layer, channel"),
    ],
)
def test_bad_pipelines_say_what_is_wrong(text, message):
    with pytest.raises(PipelineError, match=message):
        build_pipeline(text)
