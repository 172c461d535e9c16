#!/bin/sh
# Compile the bundled MNIST CNN for every installed first-party target (brainscales2: the MLP that fits one chip,
# examples/mnist_bss2), then emulate it on the bundled test images and print accuracy. Run from the repository
# root (`make demo` does, with the environment on PATH).
set -eu
here=examples/mnist
out=demo-out
steps=${STEPS:-64}
installed=$(neurodeploy targets | awk 'NR > 1 {print $1}')
for target in reference loihi speck spinnaker brainscales2; do
    echo "$installed" | grep -qx "$target" || continue
    echo "== $target"
    model="$here/mnist_cnn.onnx"
    if [ "$target" = brainscales2 ]; then  # one chip holds 512 neurons: the MLP of examples/mnist_bss2 (9x9 pixels)
        model=examples/mnist_bss2/mnist_bss2.onnx
    fi
    neurodeploy compile "$model" --target "$target" --calibration "$here/calibration.npz" -o "$out/$target"
    if [ "$target" = speck ]; then
        echo "note: the warning above concerns the chip's event-driven mode (one spike per input event). The demo"
        echo "      emulates the default binned mode; on this model --mode event reaches the same accuracy from"
        echo "      T = 32 on (backends/speck/README.md, Measured), so the demo leaves spikes_per_event off."
    fi
    if [ "$target" = reference ]; then
        neurodeploy emulate "$out/$target" --input "$here/test_images.npz" --mode ann
    fi
    if [ "$target" = loihi ]; then  # graded spikes: the 8-bit quantized ANN, one step after the pipeline delay
        neurodeploy emulate "$out/$target" --input "$here/test_images.npz" --mode graded --steps 1
    fi
    neurodeploy emulate "$out/$target" --input "$here/test_images.npz" --steps "$steps" \
        --output "$out/$target-outputs.npz"
done
echo "reports: $out/<target>/report.html (open in a browser) and report.md; \`neurodeploy inspect $out/loihi\` prints one"
