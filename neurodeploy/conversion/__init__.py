"""ANN-to-SNN conversion: activation statistics (threshold balancing) and the methods built on them."""
