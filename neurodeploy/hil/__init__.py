"""Hardware in the loop: an artifact run on a lab board and compared with its emulator, sample by sample.

:mod:`neurodeploy.hil.device` is the contract a backend's board adapter implements (and the errors of a board
run), :mod:`neurodeploy.hil.inventory` reads the lab's board inventory (``hil/boards.toml``), and
:mod:`neurodeploy.hil.harness` runs an artifact on a board, runs the emulator on the same inputs and writes the
report (``neurodeploy hil list`` / ``neurodeploy hil run``). Nothing here imports a vendor SDK.
"""
