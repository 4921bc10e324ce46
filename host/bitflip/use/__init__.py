"""Using a trained model: the model file (.bfm), export from a run directory (also as C),
push/pull to a board's flash, predictions on the host or a board, the scikit-learn
estimator. docs/use-the-model.md is the user's guide."""
