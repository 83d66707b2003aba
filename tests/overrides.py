"""Command-line overrides several test files share."""

# Diverges within the first epoch whatever the batch order: weights drawn with std 10 make
# activations grow by orders of magnitude per layer, and SGD at the largest allowed learning rate
# turns the loss NaN by the second batch. (std 1.0 diverged only for some batch orders.)
DIVERGENT = ("--set", "tune.enabled=false", "--set", "train.epochs=3", "--set", "train.optimizer=sgd",
             "--set", "train.learning_rate=10", "--set", "model.init_std=10", "--set", "model.layers=3",
             "--set", "model.batch_norm=false", "--set", "model.dropout=0", "-q")
