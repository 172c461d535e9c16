"""The parts of ``neurodeploy evaluate`` (:mod:`neurodeploy.evaluate`), one concern a module: the data
(:mod:`.data`), the ANN reference (:mod:`.reference`), statistics merged chunk by chunk (:mod:`.statistics`),
the simulation in worker processes (:mod:`.runner`), the report and its table (:mod:`.report`) and the plot
(:mod:`.plot`)."""
