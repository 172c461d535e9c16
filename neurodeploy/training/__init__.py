"""Training-side helpers (need the ``torch`` extra; importing this package imports nothing heavy).

``neurodeploy.training.qcfs``: the QCFS activation for conversion-aware training (Bu et al., ICLR 2022),
swapping a model's ReLUs for it, and an ONNX export that ``detect-qcfs`` recognises.
"""
